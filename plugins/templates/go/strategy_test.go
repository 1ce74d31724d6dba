package main

// Unit tests of the plugin's logic, run natively with the pinned Go:
//   ../../sdk-go/go-test.sh .
// (outside a component the sdk's host imports are stand-ins, so nothing here
// needs a WebAssembly runtime). `batchllm-host plugin check` tests the built
// component against the mock provider.

import (
	"testing"

	"batchllm/sdk"
)

func TestConfig(t *testing.T) {
	c, err := parseConfig(`{"base_url": "http://127.0.0.1:8000/v1/", "model": null}`)
	if err != nil || c.BaseURL != "http://127.0.0.1:8000/v1" || c.Model != defaultModel {
		t.Fatalf("%+v %v", c, err)
	}
	for _, doc := range []string{`{"base_ulr": "x"}`, `{"model": ""}`, `{"base_url": "ftp://h"}`, `[]`, `{} x`} {
		if _, err := parseConfig(doc); err == nil || err.Class != sdk.ClientError {
			t.Errorf("%s: %v", doc, err)
		}
	}
}

func TestRequestBody(t *testing.T) {
	c := config{BaseURL: defaultBaseURL, Model: defaultModel}
	body, err := requestBody(c, sdk.Item{ID: "a", Prompt: "Hi", Params: `{"temperature": 0.20, "seed": 12345678901234567}`})
	want := `{"messages":[{"content":"Hi","role":"user"}],"model":"gpt-4o-mini","seed":12345678901234567,"temperature":0.20}`
	if err != nil || string(body) != want {
		t.Fatalf("%s %v", body, err)
	}
	embeddings := "/v1/embeddings"
	for _, item := range []sdk.Item{
		{ID: "a", Prompt: "Hi", Endpoint: &embeddings},
		{ID: "a", Prompt: "Hi", Params: `{"stream": true}`},
		{ID: "a", Params: `{}`},
		{ID: "a", Prompt: "Hi", Params: `[1]`},
	} {
		if _, err := requestBody(c, item); err == nil || err.Class != sdk.ClientError {
			t.Errorf("%+v: %v", item, err)
		}
	}
}
