package openai

import (
	"strings"
	"testing"

	"batchllm/sdk"
	"batchllm/sdk/serdejson"
)

const chatOK = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18",
        "choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":0}}}`

func chat(status uint16, body string) (sdk.Success, *sdk.StrategyError) {
	return Interpret(ChatCompletions, status, nil, []byte(body))
}

func failure(t *testing.T, status uint16, body string) *sdk.StrategyError {
	t.Helper()
	_, err := chat(status, body)
	if err == nil {
		t.Fatalf("HTTP %d %s: no error", status, body)
	}
	return err
}

func TestChatSuccess(t *testing.T) {
	s, err := chat(200, chatOK)
	if err != nil || s.Output != "Hello!" || *s.ResponseBody != chatOK ||
		*s.Metadata != `{"finish_reason":"stop","id":"chatcmpl-1","model":"gpt-4o-mini-2024-07-18"}` {
		t.Fatalf("%+v %v", s, err)
	}
	if u := s.Usage; u.InputTokens != 9 || u.OutputTokens != 3 || *u.CachedInputTokens != 0 {
		t.Errorf("%+v", u)
	}
}

func TestToolCallsOutputTheMessage(t *testing.T) {
	body := `{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`
	s, err := chat(200, body)
	if err != nil || s.Output != `{"content":null,"role":"assistant","tool_calls":[{"function":{"arguments":"{}","name":"f"},"id":"c1","type":"function"}]}` ||
		s.Usage != nil || *s.Metadata != `{"finish_reason":"tool_calls"}` {
		t.Errorf("%+v %v", s, err)
	}
}

func TestContentPartsAndEmptyContent(t *testing.T) {
	if s, _ := chat(200, `{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"},"c",{"x":1}]}}]}`); s.Output != "abc" {
		t.Error(s.Output)
	}
	if s, err := chat(200, `{"choices":[{"message":{"content":""},"finish_reason":"length"}]}`); err != nil || s.Output != "" {
		t.Error(err)
	}
}

func TestInvalidResponses(t *testing.T) {
	e := failure(t, 200, "<html>oops</html>")
	if e.Class != sdk.InvalidResponse || *e.HTTPStatus != 200 || e.ResponseBody != nil ||
		e.Message != "HTTP 200 response is not valid JSON (expected value at line 1 column 1); body: <html>oops</html>" {
		t.Errorf("%+v", e)
	}
	if e := failure(t, 200, "x"+strings.Repeat("y", 10_000)); len(e.Message) >= 2300 {
		t.Errorf("%d", len(e.Message))
	}
	if e := failure(t, 200, ""); !strings.HasSuffix(e.Message, "the body is empty") {
		t.Error(e.Message)
	}
	body := `{"id":"x","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":0}}`
	e = failure(t, 200, body)
	if e.Class != sdk.InvalidResponse || e.Message != "response has no choices" || *e.ResponseBody != body || e.Usage.InputTokens != 5 {
		t.Errorf("%+v", e)
	}
	for body, want := range map[string]string{
		`{"object":"chat.completion"}`: "response has no choices",
		`[1,2]`:                        "HTTP 200 response is an array, expected an object",
		`{"choices":[{"message":{"content":null,"refusal":"I can't"}}]}`: "the model refused: I can't",
		`{"choices":[{"message":{"content":null}}]}`:                     "choices[0].message has no content and no tool calls",
		`{"choices":[{"finish_reason":"stop"}]}`:                         "choices[0] has no message",
	} {
		if e := failure(t, 200, body); e.Message != want {
			t.Errorf("%s: %q", body, e.Message)
		}
	}
}

func TestEmbeddingsSuccess(t *testing.T) {
	body := `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":2,"total_tokens":2}}`
	s, err := Interpret(Embeddings, 200, nil, []byte(body))
	if err != nil || s.Output != `[{"embedding":[0.1,0.2],"index":0,"object":"embedding"}]` || s.Usage.InputTokens != 2 ||
		s.Usage.OutputTokens != 0 || *s.Metadata != `{"model":"text-embedding-3-small"}` {
		t.Errorf("%+v %v", s, err)
	}
	if _, err := Interpret(Embeddings, 200, nil, []byte(chatOK)); err == nil || err.Class != sdk.InvalidResponse {
		t.Errorf("%v", err)
	}
}

func openaiError(t *testing.T, status uint16, code, kind, message string) *sdk.StrategyError {
	t.Helper()
	body := serdejson.Stringify(serdejson.Object{"error": serdejson.Object{"message": message, "type": kind, "param": nil, "code": code}})
	return failure(t, status, body)
}

func TestErrorRefinements(t *testing.T) {
	e := openaiError(t, 429, "insufficient_quota", "insufficient_quota", "You exceeded your current quota.")
	if e.Class != sdk.QuotaExhausted || *e.HTTPStatus != 429 || e.ResponseBody == nil {
		t.Errorf("%+v", e)
	}
	e = openaiError(t, 429, "rate_limit_exceeded", "tokens", "Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Requested 45000.")
	if e.Class != sdk.TooLarge || e.RetryAfterMs != nil {
		t.Errorf("%+v", e)
	}
	e = openaiError(t, 429, "rate_limit_exceeded", "tokens", "Rate limit reached for gpt-4o-mini on tokens per min (TPM): Limit 200000. Please try again in 644ms.")
	if e.Class != sdk.RateLimited || *e.RetryAfterMs != 644 {
		t.Errorf("%+v", e)
	}
	if e := openaiError(t, 400, "context_length_exceeded", "invalid_request_error", "This model's maximum context length is 128000 tokens."); e.Class != sdk.TooLarge {
		t.Errorf("%+v", e)
	}
	if e := failure(t, 400, `{"object":"error","message":"This model's maximum context length is 2048 tokens. However, you requested 4000 tokens","type":"BadRequestError","code":400}`); e.Class != sdk.TooLarge {
		t.Errorf("%+v", e)
	}
	if e := failure(t, 400, `{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}`); e.Class != sdk.TooLarge {
		t.Errorf("%+v", e)
	}
	if e := openaiError(t, 400, "invalid_value", "invalid_request_error", "bad temperature"); e.Class != sdk.ClientError {
		t.Errorf("%+v", e)
	}
	if e := openaiError(t, 401, "invalid_api_key", "invalid_request_error", "Incorrect API key provided"); e.Class != sdk.Auth {
		t.Errorf("%+v", e)
	}
	if e := failure(t, 402, `{"error":{"code":402,"message":"Insufficient credits"}}`); e.Class != sdk.QuotaExhausted {
		t.Errorf("%+v", e)
	}
	if e := failure(t, 503, "upstream connect error"); e.Class != sdk.Overloaded || e.ResponseBody != nil ||
		e.Message != "HTTP 503 Service Unavailable: upstream connect error" {
		t.Errorf("%+v", e)
	}
}

func TestErrorInsideA2xxBody(t *testing.T) {
	e := failure(t, 200, `{"error":{"code":502,"message":"Provider returned error"},"user_id":"u"}`)
	if e.Class != sdk.Overloaded || *e.HTTPStatus != 200 || e.Message != "HTTP 200 response carries an error: Provider returned error" {
		t.Errorf("%+v", e)
	}
	if e := failure(t, 200, `{"error":{"message":"weird"}}`); e.Class != sdk.Other {
		t.Errorf("%+v", e)
	}
	if e := failure(t, 200, `{"error":{"code":"insufficient_quota","message":"no money"}}`); e.Class != sdk.QuotaExhausted {
		t.Errorf("%+v", e)
	}
}
