// Package usage reads token usage from provider responses, normalised to
// sdk.Usage, as the Rust SDK's `usage` module does.
package usage

import (
	"math"

	"batchllm/sdk"
	"batchllm/sdk/serdejson"
)

// FromOpenAI is the usage of an OpenAI-style `usage` object, given it or
// the whole response (a top-level `usage` object is used when present).
//
// prompt_tokens → input (cached included), completion_tokens → output,
// prompt_tokens_details.cached_tokens → cached input,
// completion_tokens_details.reasoning_tokens → reasoning, cache_write_tokens
// (top level or in prompt_tokens_details, as OpenRouter reports it) → cache
// writes; the Responses API names (input_tokens, output_tokens,
// input_tokens_details, output_tokens_details) are understood too. nil when
// there is no such object or it reports neither input nor output tokens;
// embeddings report only prompt_tokens, so output is then 0.
func FromOpenAI(value serdejson.Value) *sdk.Usage {
	u := value
	if inner, ok := serdejson.Get(value, "usage"); ok && serdejson.IsObject(inner) {
		u = inner
	}
	obj, ok := u.(serdejson.Object)
	if !ok {
		return nil
	}
	input := first(count(obj, "prompt_tokens"), count(obj, "input_tokens"))
	output := first(count(obj, "completion_tokens"), count(obj, "output_tokens"))
	if input == nil && output == nil {
		return nil
	}
	// Option::or: a present member counts even when it is null.
	promptDetails, hasPrompt := obj["prompt_tokens_details"]
	if !hasPrompt {
		promptDetails = obj["input_tokens_details"]
	}
	completionDetails, hasCompletion := obj["completion_tokens_details"]
	if !hasCompletion {
		completionDetails = obj["output_tokens_details"]
	}
	detail := func(d serdejson.Value, key string) *uint64 {
		o, _ := d.(serdejson.Object)
		return count(o, key)
	}
	return &sdk.Usage{
		InputTokens:       orZero(input),
		OutputTokens:      orZero(output),
		CachedInputTokens: detail(promptDetails, "cached_tokens"),
		CacheWriteTokens:  first(count(obj, "cache_write_tokens"), detail(promptDetails, "cache_write_tokens")),
		ReasoningTokens:   detail(completionDetails, "reasoning_tokens"),
	}
}

// count is obj[key] as a token count: a non-negative integer, or an
// integral float as some servers send (below 1e18).
func count(obj serdejson.Object, key string) *uint64 {
	v, ok := obj[key]
	if !ok {
		return nil
	}
	if n, ok := serdejson.AsU64(v); ok {
		return &n
	}
	f, ok := serdejson.AsF64(v)
	if !ok || math.IsInf(f, 0) || math.IsNaN(f) || f < 0 || f != math.Trunc(f) || f >= 1e18 {
		return nil
	}
	n := uint64(f)
	return &n
}

func first(a, b *uint64) *uint64 {
	if a != nil {
		return a
	}
	return b
}

func orZero(n *uint64) uint64 {
	if n == nil {
		return 0
	}
	return *n
}
