package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"strings"

	"batchllm/sdk"
)

// Where requests go unless the configuration says otherwise.
const defaultBaseURL = "https://api.openai.com/v1"

// The model used when neither the job nor the configuration names one.
const defaultModel = "gpt-4o-mini"

// config is the plugin's settings.
type config struct {
	BaseURL string
	Model   string
}

// parseConfig parses the plugin's settings: a JSON object from
// `--plugin-config KEY=VALUE` and the [plugin-config] table of the config
// file. Unknown keys are refused, so that a misspelt setting is an error
// instead of being silently ignored.
func parseConfig(doc string) (config, *sdk.StrategyError) {
	invalid := func(why string) (config, *sdk.StrategyError) {
		return config{}, sdk.NewError(sdk.ClientError, "invalid plugin configuration: "+why)
	}
	var settings map[string]json.RawMessage
	if strings.TrimSpace(doc) != "" {
		if err := decodeObject(doc, &settings); err != nil {
			return invalid("expected a JSON object: " + err.Error())
		}
	}
	keys := make([]string, 0, len(settings))
	for key := range settings {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if key != "base_url" && key != "model" {
			return invalid("unknown key " + quote(key) + " (known keys: base_url, model)")
		}
	}
	setting := func(key, fallback string) (string, bool) {
		raw, ok := settings[key]
		if !ok || bytes.Equal(raw, []byte("null")) {
			return fallback, true
		}
		var value string
		if json.Unmarshal(raw, &value) != nil || strings.TrimSpace(value) == "" {
			return "", false
		}
		return strings.TrimSpace(value), true
	}
	baseURL, ok := setting("base_url", defaultBaseURL)
	if !ok {
		return invalid("base_url must be a non-empty string")
	}
	if !strings.HasPrefix(baseURL, "http://") && !strings.HasPrefix(baseURL, "https://") {
		return invalid("base_url must start with http:// or https://, got " + quote(baseURL))
	}
	model, ok := setting("model", defaultModel)
	if !ok {
		return invalid("model must be a non-empty string")
	}
	return config{BaseURL: strings.TrimRight(baseURL, "/"), Model: model}, nil
}

// decodeObject decodes the JSON document doc into out (a map), keeping
// numbers as written (json.Number) and refusing anything after the value.
func decodeObject(doc string, out any) error {
	decoder := json.NewDecoder(strings.NewReader(doc))
	decoder.UseNumber()
	if err := decoder.Decode(out); err != nil {
		return err
	}
	if _, err := decoder.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// quote is s as a JSON string, for messages.
func quote(s string) string {
	out, _ := json.Marshal(s)
	return string(out)
}
