package openai

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"batchllm/sdk"
)

func mustParse(t *testing.T, doc string) Config {
	t.Helper()
	c, err := ParseConfig(doc)
	if err != nil {
		t.Fatalf("ParseConfig(%s): %v", doc, err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	for _, doc := range []string{"{}", "", "null"} {
		if c := mustParse(t, doc); !reflect.DeepEqual(c, DefaultConfig()) {
			t.Errorf("%q: %+v", doc, c)
		}
	}
	c := DefaultConfig()
	if c.BaseURL != "https://api.openai.com/v1" || *c.APIKeySecret != "api-key" || c.Model != "gpt-4o-mini" {
		t.Errorf("%+v", c)
	}
}

func TestFullConfig(t *testing.T) {
	c := mustParse(t, `{"base_url": "http://127.0.0.1:8080/", "model": "llama", "api_key_secret": null,
		"default_params": {"temperature": 0}, "extra_headers": {"x-title": "batch", "a-first": "1"}}`)
	if c.BaseURL != "http://127.0.0.1:8080" || c.BaseHasPath || c.Model != "llama" || c.APIKeySecret != nil {
		t.Errorf("%+v", c)
	}
	if c.DefaultParams["temperature"] != json.Number("0") {
		t.Errorf("%+v", c.DefaultParams)
	}
	// In key order, as serde_json's map iterates.
	want := []sdk.Header{{Name: "a-first", Value: "1"}, {Name: "x-title", Value: "batch"}}
	if !reflect.DeepEqual(c.ExtraHeaders, want) {
		t.Errorf("%+v", c.ExtraHeaders)
	}
	if c := mustParse(t, `{"api_key_secret": ""}`); c.APIKeySecret != nil {
		t.Error("empty secret disables authorization")
	}
	if c := mustParse(t, `{"api_key_secret": "openrouter"}`); *c.APIKeySecret != "openrouter" {
		t.Error("named secret")
	}
}

func TestUnknownKeyIsNamed(t *testing.T) {
	_, err := ParseConfig(`{"base_ulr": "http://x", "zzz": 1}`)
	want := `invalid openai plugin configuration: unknown key "base_ulr" (known keys: base_url, model, api_key_secret, default_params, extra_headers)`
	if err == nil || err.Class != sdk.ClientError || err.Message != want {
		t.Errorf("%v", err)
	}
}

func TestInvalidValues(t *testing.T) {
	for _, doc := range []string{
		`{"base_url": "api.openai.com/v1"}`, `{"base_url": "ftp://h/v1"}`, `{"base_url": "http://"}`,
		`{"base_url": "http:///v1"}`, `{"base_url": "http://h/v1?x=1"}`, `{"base_url": "http://h /v1"}`,
		`{"base_url": 5}`, `{"model": ""}`, `{"model": 3}`, `{"api_key_secret": 1}`, `{"api_key_secret": "a}}b"}`,
		`{"default_params": []}`, `{"extra_headers": {"bad header": "x"}}`, `{"extra_headers": {"x-a": 1}}`,
		`{"extra_headers": {"x-a": "a\r\nb"}}`, `[]`,
	} {
		_, err := ParseConfig(doc)
		if err == nil || err.Class != sdk.ClientError {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		if doc != "[]" && !strings.HasPrefix(err.Message, "invalid openai plugin configuration: ") {
			t.Errorf("%s: %s", doc, err.Message)
		}
	}
	if _, err := ParseConfig("{"); err == nil {
		t.Error("unparsable configuration accepted")
	}
	_, err := ParseConfig(`{"extra_headers": {"bad header": "x"}}`)
	if err.Message != `invalid openai plugin configuration: extra_headers: "bad header" is not a valid header name` {
		t.Error(err.Message)
	}
	_, err = ParseConfig(`{"base_url": "ftp://h/v1"}`)
	if err.Message != `invalid openai plugin configuration: base_url "ftp://h/v1" must be an absolute http:// or https:// URL` {
		t.Error(err.Message)
	}
}

func TestBaseURLPaths(t *testing.T) {
	for url, want := range map[string][2]any{
		"http://h:1/v1":                 {"http://h:1/v1", true},
		"http://h:1":                    {"http://h:1", false},
		"http://h:1/":                   {"http://h:1", false},
		"https://openrouter.ai/api/v1/": {"https://openrouter.ai/api/v1", true},
		"https://user@h:1//":            {"https://user@h:1", false},
	} {
		base, hasPath, message := ValidateBaseURL(url)
		if message != "" || base != want[0] || hasPath != want[1] {
			t.Errorf("%s: %q %v %q", url, base, hasPath, message)
		}
	}
}
