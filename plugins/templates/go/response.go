package main

import (
	"encoding/json"
	"strconv"

	"batchllm/sdk"
	"batchllm/sdk/classify"
	"batchllm/sdk/text"
)

// chatResponse is the part of a chat completion this plugin reads.
type chatResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens        *uint64 `json:"prompt_tokens"`
		CompletionTokens    uint64  `json:"completion_tokens"`
		PromptTokensDetails *struct {
			CachedTokens *uint64 `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
		CompletionTokensDetails *struct {
			ReasoningTokens *uint64 `json:"reasoning_tokens"`
		} `json:"completion_tokens_details"`
	} `json:"usage"`
}

// interpret turns the provider's answer into a success or a classified error.
func interpret(response sdk.Response) (sdk.Success, *sdk.StrategyError) {
	body := text.BodyText(response.Body)
	if response.Status < 200 || response.Status > 299 {
		return sdk.Success{}, classifyError(response, body)
	}
	var answer chatResponse
	if err := json.Unmarshal([]byte(body), &answer); err != nil {
		// Retried at once by the host (no backoff): the next answer may be fine.
		e := sdk.NewError(sdk.InvalidResponse, "HTTP "+strconv.Itoa(int(response.Status))+
			" response is not valid JSON ("+err.Error()+"): "+text.Excerpt(text.Trim(body), classify.MaxMessageBytes))
		e.HTTPStatus = sdk.Ptr(response.Status)
		return sdk.Success{}, e
	}
	if len(answer.Choices) == 0 || answer.Choices[0].Message.Content == nil || *answer.Choices[0].Message.Content == "" {
		e := sdk.NewError(sdk.InvalidResponse, "the response has no choices[0].message.content")
		e.HTTPStatus = sdk.Ptr(response.Status)
		e.Usage = usageOf(answer) // an unusable answer may still be billed
		e.ResponseBody = sdk.Ptr(body)
		return sdk.Success{}, e
	}
	metadata, _ := json.Marshal(map[string]any{"model": answer.Model, "finish_reason": answer.Choices[0].FinishReason})
	return sdk.Success{
		Output: *answer.Choices[0].Message.Content,
		Usage:  usageOf(answer),
		// Written to the results file as `response.body`.
		ResponseBody: sdk.Ptr(body),
		Metadata:     sdk.Ptr(string(metadata)),
	}, nil
}

// usageOf is the token usage, normalised: InputTokens is the whole prompt,
// cached tokens included (OpenAI's prompt_tokens already is); cached and
// reasoning tokens are subsets of input and output. nil when not reported.
func usageOf(answer chatResponse) *sdk.Usage {
	u := answer.Usage
	if u == nil || u.PromptTokens == nil {
		return nil
	}
	usage := &sdk.Usage{InputTokens: *u.PromptTokens, OutputTokens: u.CompletionTokens}
	if u.PromptTokensDetails != nil {
		usage.CachedInputTokens = u.PromptTokensDetails.CachedTokens
	}
	if u.CompletionTokensDetails != nil {
		usage.ReasoningTokens = u.CompletionTokensDetails.ReasoningTokens
	}
	return usage
}

// classifyError classifies a non-2xx answer. The host's retry policy is keyed on
// the class, so be honest: a transient failure must be retryable, a wrong
// request must not be.
//
// classify.FromHTTP does what every HTTP API shares: 429 rate-limited (with
// the wait from retry-after-ms, retry-after or a "try again in" phrase),
// 401/403 auth, 413 too-large, 408 timeout, other 4xx client-error, 409 and
// 5xx overloaded, the provider's message, the body when it is JSON. Then the
// provider's own knowledge: OpenAI answers "out of credit" with a 429
// (insufficient_quota), and some proxies with a 402; retrying cannot help.
func classifyError(response sdk.Response, body string) *sdk.StrategyError {
	e := classify.FromHTTP(response.Status, response.Headers, body)
	var parsed struct {
		Error struct {
			Code any `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &parsed) // not JSON: no code
	if parsed.Error.Code == "insufficient_quota" || response.Status == 402 {
		e.Class = sdk.QuotaExhausted
		e.RetryAfterMs = nil // not retried, so a wait would only mislead
	}
	return e
}
