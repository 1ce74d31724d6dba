package usage

import (
	"testing"

	"batchllm/sdk"
	"batchllm/sdk/serdejson"
)

func parse(t *testing.T, doc string) serdejson.Value {
	t.Helper()
	v, err := serdejson.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func opt(p *uint64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestOpenAIChatUsage(t *testing.T) {
	u := FromOpenAI(parse(t, `{"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
		"prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
		"completion_tokens_details": {"reasoning_tokens": 8}}`))
	if u == nil || u.InputTokens != 100 || u.OutputTokens != 20 || opt(u.CachedInputTokens) != uint64(64) ||
		opt(u.ReasoningTokens) != uint64(8) || u.CacheWriteTokens != nil {
		t.Fatalf("%+v", u)
	}
}

func TestWholeResponseEmbeddingsAndResponsesAPI(t *testing.T) {
	u := FromOpenAI(parse(t, `{"object":"list","usage":{"prompt_tokens":7,"total_tokens":7}}`))
	if u == nil || *u != (sdk.Usage{InputTokens: 7}) {
		t.Fatalf("%+v", u)
	}
	u = FromOpenAI(parse(t, `{"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 9}}`))
	if opt(u.CacheWriteTokens) != uint64(9) {
		t.Fatalf("%+v", u)
	}
	u = FromOpenAI(parse(t, `{"prompt_tokens": 10, "completion_tokens": 1, "cache_write_tokens": 3}`))
	if opt(u.CacheWriteTokens) != uint64(3) {
		t.Fatalf("%+v", u)
	}
	u = FromOpenAI(parse(t, `{"input_tokens": 5, "output_tokens": 6, "input_tokens_details": {"cached_tokens": 2},
		"output_tokens_details": {"reasoning_tokens": 4}}`))
	if u.InputTokens != 5 || u.OutputTokens != 6 || opt(u.CachedInputTokens) != uint64(2) || opt(u.ReasoningTokens) != uint64(4) {
		t.Fatalf("%+v", u)
	}
}

func TestAbsentUsage(t *testing.T) {
	for _, doc := range []string{`null`, `{"usage": null}`, `{"total_tokens": 3}`, `{"prompt_tokens": -1}`, `{"prompt_tokens": 1.5}`} {
		if u := FromOpenAI(parse(t, doc)); u != nil {
			t.Errorf("%s: %+v", doc, u)
		}
	}
	if u := FromOpenAI(parse(t, `{"prompt_tokens": 2.0}`)); u == nil || u.InputTokens != 2 {
		t.Errorf("an integral float counts: %+v", u)
	}
}
