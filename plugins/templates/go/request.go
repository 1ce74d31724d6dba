package main

import (
	"bytes"
	"encoding/json"
	"strings"

	"batchllm/sdk"
)

// The host's name for the key given with `--api-key-env VAR` (or `--secret
// api-key=env:VAR`). The plugin never sees the key: it writes
// {{secret:api-key}} into a header and the host substitutes it, only for
// hosts the secret is granted for.
const apiKeySecret = "api-key"

// requestBody is the chat-completions request body for item.
//
// Both input shapes work: a simple line gives a prompt (and maybe params
// such as temperature); an OpenAI Batch line gives the whole request body in
// params (with messages) and an empty prompt. The job's params win over the
// configuration; the prompt is appended as the last user message. Numbers
// are kept exactly as written (json.Number).
func requestBody(config config, item sdk.Item) ([]byte, *sdk.StrategyError) {
	if item.Endpoint != nil && !strings.HasSuffix(*item.Endpoint, "/chat/completions") {
		return nil, sdk.NewError(sdk.ClientError, "this plugin only serves /v1/chat/completions, not "+*item.Endpoint)
	}
	var body map[string]any
	if strings.TrimSpace(item.Params) != "" && decodeObject(item.Params, &body) != nil {
		return nil, sdk.NewError(sdk.ClientError, "the job's params must be a JSON object")
	}
	if body == nil { // no params, or null
		body = map[string]any{}
	}
	// One request, one whole answer: streaming is not supported.
	if body["stream"] == true {
		return nil, sdk.NewError(sdk.ClientError, `"stream": true is not supported`)
	}
	if body["model"] == nil {
		body["model"] = config.Model
	}
	if item.Prompt != "" {
		messages, ok := body["messages"].([]any)
		if body["messages"] != nil && !ok {
			return nil, sdk.NewError(sdk.ClientError, "the job's params.messages must be an array")
		}
		body["messages"] = append(messages, map[string]any{"role": "user", "content": item.Prompt})
	}
	if body["messages"] == nil {
		return nil, sdk.NewError(sdk.ClientError, "the job has neither a prompt nor params.messages")
	}
	var out bytes.Buffer
	encoder := json.NewEncoder(&out)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(body); err != nil {
		return nil, sdk.NewError(sdk.ClientError, "the request body cannot be encoded: "+err.Error())
	}
	return bytes.TrimRight(out.Bytes(), "\n"), nil
}

// send sends the one request of this attempt through the host's http.send.
//
// The host checks the destination against the hosts granted with
// --allow-host, substitutes the {{secret:...}} placeholder, and sees every
// status and rate-limit header. The attempt's time left is passed on as the
// HTTP timeout, so a hung provider ends as a timeout in time. A request that
// produced no response is classified by sdk.FromHTTPError (denied →
// client-error, timeout, network, invalid request, too large).
func send(config config, body []byte, attempt sdk.Attempt) (sdk.Response, *sdk.StrategyError) {
	response, err := sdk.Send(sdk.Request{
		Method: "POST",
		URL:    config.BaseURL + "/chat/completions",
		Headers: []sdk.Header{
			{Name: "content-type", Value: "application/json"},
			{Name: "authorization", Value: "Bearer " + sdk.SecretPlaceholder(apiKeySecret)},
		},
		Body:      body,
		TimeoutMs: sdk.Ptr(attempt.TimeLeftMs),
	})
	if err != nil {
		return sdk.Response{}, sdk.FromHTTPError(err)
	}
	return response, nil
}
