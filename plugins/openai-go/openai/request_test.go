package openai

import (
	"reflect"
	"strings"
	"testing"

	"batchllm/sdk"
	"batchllm/sdk/jsonvalue"
)

func item(prompt, params string, endpoint *string) sdk.Item {
	return sdk.Item{ID: "job-1", Prompt: prompt, Params: params, Endpoint: endpoint}
}

func chatBody(t *testing.T, c Config, i sdk.Item, state []sdk.StateEntry) string {
	t.Helper()
	body, err := BuildBody(c, i, ChatCompletions, state)
	if err != nil {
		t.Fatal(err)
	}
	return jsonvalue.Stringify(body)
}

func TestURLJoining(t *testing.T) {
	for base, want := range map[string]string{
		"http://h:1/v1":                "http://h:1/v1/chat/completions",
		"http://h:1/v1/":               "http://h:1/v1/chat/completions",
		"http://h:1":                   "http://h:1/v1/chat/completions",
		"https://openrouter.ai/api/v1": "https://openrouter.ai/api/v1/chat/completions",
		"https://generativelanguage.googleapis.com/v1beta/openai/": "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
	} {
		c := mustParse(t, `{"base_url":"`+base+`"}`)
		if got := JoinURL(c, ChatCompletions); got != want {
			t.Errorf("%s: %s", base, got)
		}
	}
	if got := JoinURL(mustParse(t, `{"base_url":"http://h:1/"}`), Embeddings); got != "http://h:1/v1/embeddings" {
		t.Error(got)
	}
	if got := JoinURL(DefaultConfig(), Embeddings); got != "https://api.openai.com/v1/embeddings" {
		t.Error(got)
	}
}

func TestEndpointResolution(t *testing.T) {
	for raw, want := range map[string]Endpoint{"/v1/chat/completions": ChatCompletions, "/v1/embeddings": Embeddings, "/embeddings/": Embeddings, " chat/completions ": ChatCompletions} {
		if got, err := ResolveEndpoint(&raw); err != nil || got != want {
			t.Errorf("%q: %v %v", raw, got, err)
		}
	}
	if got, err := ResolveEndpoint(nil); err != nil || got != ChatCompletions {
		t.Error("no endpoint is chat")
	}
	raw := "/v1/responses"
	_, err := ResolveEndpoint(&raw)
	if err == nil || err.Class != sdk.ClientError ||
		err.Message != `unsupported endpoint "/v1/responses": the openai strategy supports /v1/chat/completions and /v1/embeddings` {
		t.Errorf("%v", err)
	}
}

func TestPromptOnlyChatBody(t *testing.T) {
	if got := chatBody(t, DefaultConfig(), item("Hi", "{}", nil), nil); got != `{"messages":[{"content":"Hi","role":"user"}],"model":"gpt-4o-mini"}` {
		t.Error(got)
	}
}

func TestParamsMergeOverDefaults(t *testing.T) {
	c := mustParse(t, `{"model": "m-default", "default_params": {"temperature": 0.2, "max_tokens": 10, "model": "from-defaults"}}`)
	got := chatBody(t, c, item("Hi", `{"temperature": 0.9}`, nil), nil)
	if got != `{"max_tokens":10,"messages":[{"content":"Hi","role":"user"}],"model":"from-defaults","temperature":0.9}` {
		t.Error(got)
	}
	c = mustParse(t, `{"model": "m-default"}`)
	if got := chatBody(t, c, item("Hi", `{"model": "job-model"}`, nil), nil); !strings.Contains(got, `"model":"job-model"`) {
		t.Error(got)
	}
	if got := chatBody(t, c, item("Hi", `{"model": null}`, nil), nil); !strings.Contains(got, `"model":"m-default"`) {
		t.Error(got)
	}
}

func TestBatchLineMessagesAndPromptAppend(t *testing.T) {
	params := `{"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Q1"}]}`
	endpoint := "/v1/chat/completions"
	got := chatBody(t, DefaultConfig(), item("", params, &endpoint), nil)
	if got != `{"messages":[{"content":"Be brief.","role":"system"},{"content":"Q1","role":"user"}],"model":"gpt-4o"}` {
		t.Error(got)
	}
	got = chatBody(t, DefaultConfig(), item("Q2", params, nil), nil)
	if !strings.HasSuffix(got, `{"content":"Q2","role":"user"}],"model":"gpt-4o"}`) {
		t.Error(got)
	}
	// The configuration's own messages are never changed by an append.
	c := mustParse(t, `{"default_params": {"messages": [{"role":"system","content":"S"}]}}`)
	chatBody(t, c, item("A", "{}", nil), nil)
	if got := chatBody(t, c, item("B", "{}", nil), nil); strings.Contains(got, `"A"`) {
		t.Error(got)
	}
}

func TestBadParamsAreClientErrors(t *testing.T) {
	for _, tc := range [][2]string{{"Hi", "[1]"}, {"Hi", "{"}, {"Hi", `{"messages": "x"}`}, {"", "{}"}} {
		_, err := BuildBody(DefaultConfig(), item(tc[0], tc[1], nil), ChatCompletions, nil)
		if err == nil || err.Class != sdk.ClientError {
			t.Errorf("%v: %v", tc, err)
		}
	}
	_, err := BuildBody(DefaultConfig(), item("Hi", `{"stream":true}`, nil), ChatCompletions, nil)
	if err == nil || err.Message != `item "job-1": streaming (stream: true) is not supported; the strategy needs the whole response` {
		t.Errorf("%v", err)
	}
}

func TestStateOverrides(t *testing.T) {
	state := []sdk.StateEntry{
		{Key: "param.temperature", Value: "1.1"}, {Key: "param.model", Value: "gpt-4o"},
		{Key: "param.response_format", Value: `{"type":"json_object"}`}, {Key: "param.stop", Value: "not json"},
		{Key: "mock.failures", Value: "3"}, {Key: "param.", Value: "ignored"},
	}
	got := chatBody(t, DefaultConfig(), item("Hi", `{"temperature":0}`, nil), state)
	want := `{"messages":[{"content":"Hi","role":"user"}],"model":"gpt-4o","response_format":{"type":"json_object"},"stop":"not json","temperature":1.1}`
	if got != want {
		t.Error(got)
	}
}

func TestEmbeddingsBody(t *testing.T) {
	c := mustParse(t, `{"model": "text-embedding-3-small", "default_params": {"dimensions": 8}}`)
	body, err := BuildBody(c, item("hello", "{}", nil), Embeddings, nil)
	if err != nil || jsonvalue.Stringify(body) != `{"dimensions":8,"input":"hello","model":"text-embedding-3-small"}` {
		t.Errorf("%v %v", jsonvalue.Stringify(body), err)
	}
	body, _ = BuildBody(c, item("", `{"input":["a","b"],"model":"e5"}`, nil), Embeddings, nil)
	if jsonvalue.Stringify(body) != `{"dimensions":8,"input":["a","b"],"model":"e5"}` {
		t.Error(jsonvalue.Stringify(body))
	}
	if _, err := BuildBody(c, item("", "{}", nil), Embeddings, nil); err == nil {
		t.Error("no prompt and no input accepted")
	}
}

func TestHeadersAndSecrets(t *testing.T) {
	want := []sdk.Header{{Name: "content-type", Value: "application/json"}, {Name: "authorization", Value: "Bearer {{secret:api-key}}"}}
	if got := Headers(DefaultConfig()); !reflect.DeepEqual(got, want) {
		t.Errorf("%+v", got)
	}
	c := mustParse(t, `{"api_key_secret": null, "extra_headers": {"api-key": "{{secret:azure}}", "Content-Type": "application/json; charset=utf-8"}}`)
	want = []sdk.Header{{Name: "Content-Type", Value: "application/json; charset=utf-8"}, {Name: "api-key", Value: "{{secret:azure}}"}}
	if got := Headers(c); !reflect.DeepEqual(got, want) {
		t.Errorf("%+v", got)
	}
}

func TestFullRequest(t *testing.T) {
	c := mustParse(t, `{"base_url": "http://127.0.0.1:9/v1"}`)
	endpoint, r, err := BuildRequest(c, item("Hi", "{}", nil), nil, 1234)
	if err != nil || endpoint != ChatCompletions || r.Method != "POST" || r.URL != "http://127.0.0.1:9/v1/chat/completions" ||
		r.TimeoutMs == nil || *r.TimeoutMs != 1234 || string(r.Body) != `{"messages":[{"content":"Hi","role":"user"}],"model":"gpt-4o-mini"}` {
		t.Errorf("%+v %v", r, err)
	}
	completions := "/v1/completions"
	if _, _, err := BuildRequest(c, item("Hi", "{}", &completions), nil, 1); err == nil || err.Class != sdk.ClientError {
		t.Errorf("%v", err)
	}
}
