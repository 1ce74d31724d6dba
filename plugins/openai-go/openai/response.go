package openai

import (
	"strconv"
	"strings"

	"batchllm/sdk"
	"batchllm/sdk/classify"
	"batchllm/sdk/serdejson"
	"batchllm/sdk/text"
	"batchllm/sdk/usage"
)

// MaxExcerptBytes is how much of an unusable body an error message shows.
const MaxExcerptBytes = 2048

// Interpret translates the provider's answer: a 2xx into a Success, anything
// else into a classified error.
func Interpret(endpoint Endpoint, status uint16, headers []sdk.Header, body []byte) (sdk.Success, *sdk.StrategyError) {
	if status >= 200 && status < 300 {
		return ParseSuccess(endpoint, status, headers, body)
	}
	return sdk.Success{}, ClassifyError(status, headers, body)
}

// ClassifyError classifies a non-2xx answer: classify.FromHTTP plus the
// OpenAI refinements of Refine.
func ClassifyError(status uint16, headers []sdk.Header, body []byte) *sdk.StrategyError {
	bodyText := text.BodyText(body)
	json, err := serdejson.Parse(bodyText)
	return Refine(classify.FromHTTP(status, headers, bodyText), status, json, err == nil)
}

// Refine applies the OpenAI-specific classes, read from the body's
// error.code / error.type / error.message (or the same fields at the top
// level, as vLLM sends them):
//   - insufficient_quota or billing_hard_limit_reached, or HTTP 402
//     (OpenRouter's "insufficient credits") → quota-exhausted;
//   - invalid_api_key → auth;
//   - a 429 whose message starts with "Request too large" (over the
//     tokens-per-minute limit) → too-large;
//   - a 400 with code context_length_exceeded, llama.cpp's
//     exceed_context_size_error, or a "maximum context length" message
//     (vLLM) → too-large.
//
// A class that is not retried loses its retry-after (it would mislead).
func Refine(e *sdk.StrategyError, status uint16, json serdejson.Value, isJSON bool) *sdk.StrategyError {
	// OpenAI nests the details under `error`; vLLM puts them at the top.
	var fields serdejson.Value
	if isJSON {
		fields = json
		if nested, ok := serdejson.Get(json, "error"); ok && serdejson.IsObject(nested) {
			fields = nested
		}
	}
	code, _ := serdejson.GetString(fields, "code")
	kind, _ := serdejson.GetString(fields, "type")
	message, _ := serdejson.GetString(fields, "message")
	is := func(s string) bool { return code == s || kind == s }
	overTPM := status == 429 && strings.HasPrefix(text.TrimStart(message), "Request too large")
	overContext := status == 400 && (is("context_length_exceeded") || is("exceed_context_size_error") ||
		strings.Contains(text.ASCIILower(message), "maximum context length"))
	switch {
	case is("insufficient_quota") || is("billing_hard_limit_reached") || status == 402:
		e.Class = sdk.QuotaExhausted
	case is("invalid_api_key"):
		e.Class = sdk.Auth
	case overTPM || overContext:
		e.Class = sdk.TooLarge
	default:
		return e
	}
	// Not retried, so a wait would only mislead.
	e.RetryAfterMs = nil
	return e
}

// ParseSuccess translates a 2xx answer into the output, usage, raw body and
// metadata; an unusable answer is invalid-response.
func ParseSuccess(endpoint Endpoint, status uint16, headers []sdk.Header, body []byte) (sdk.Success, *sdk.StrategyError) {
	bodyText, json, err := parseJSONBody(status, body)
	if err != nil {
		return sdk.Success{}, err
	}
	invalid := func(message string) (sdk.Success, *sdk.StrategyError) {
		e := sdk.NewError(sdk.InvalidResponse, message)
		e.HTTPStatus = sdk.Ptr(status)
		e.ResponseBody = sdk.Ptr(bodyText)
		e.Usage = usage.FromOpenAI(json)
		return sdk.Success{}, e
	}
	obj, ok := json.(serdejson.Object)
	if !ok {
		return invalid("HTTP " + strconv.Itoa(int(status)) + " response is " + serdejson.Kind(json) + ", expected an object")
	}
	payloadKey := "choices"
	if endpoint == Embeddings {
		payloadKey = "data"
	}
	if _, hasPayload := obj[payloadKey]; !hasPayload && obj["error"] != nil {
		return sdk.Success{}, embeddedError(status, headers, bodyText, json, obj["error"])
	}
	metadata := serdejson.Object{}
	for _, key := range []string{"model", "id"} {
		if v := obj[key]; v != nil {
			metadata[key] = v
		}
	}
	var output string
	switch endpoint {
	case ChatCompletions:
		choices, _ := obj["choices"].(serdejson.Array)
		if len(choices) == 0 {
			return invalid("response has no choices")
		}
		first := choices[0]
		if reason, _ := serdejson.Get(first, "finish_reason"); reason != nil {
			metadata["finish_reason"] = reason
		}
		message, _ := serdejson.Get(first, "message")
		messageObj, isObject := message.(serdejson.Object)
		if !isObject {
			return invalid("choices[0] has no message")
		}
		out, reason := chatOutput(messageObj)
		if reason != "" {
			return invalid(reason)
		}
		output = out
	case Embeddings:
		data, isArray := obj["data"].(serdejson.Array)
		if !isArray {
			return invalid("response has no data array")
		}
		output = serdejson.Stringify(data)
	}
	return sdk.Success{
		Output:       output,
		Usage:        usage.FromOpenAI(json),
		ResponseBody: sdk.Ptr(bodyText),
		Metadata:     sdk.Ptr(serdejson.Stringify(metadata)),
	}, nil
}

// parseJSONBody is the text and JSON of a 2xx body; a body that is not JSON
// is an invalid-response naming the status and showing an excerpt (or
// saying the body is empty), as the Rust SDK's `body::parse_json`.
func parseJSONBody(status uint16, body []byte) (string, serdejson.Value, *sdk.StrategyError) {
	bodyText := text.BodyText(body)
	json, err := serdejson.Parse(bodyText)
	if err == nil {
		return bodyText, json, nil
	}
	shown := "the body is empty"
	if text.Trim(bodyText) != "" {
		shown = "body: " + text.Excerpt(bodyText, MaxExcerptBytes)
	}
	e := sdk.NewError(sdk.InvalidResponse, "HTTP "+strconv.Itoa(int(status))+" response is not valid JSON ("+err.Error()+"); "+shown)
	e.HTTPStatus = sdk.Ptr(status)
	return "", nil, e
}

// chatOutput is the output of a chat message: its text content, or the
// message as JSON when the content is null and it carries tool calls; else
// the reason it is unusable.
func chatOutput(message serdejson.Object) (output string, reason string) {
	switch content := message["content"].(type) {
	case string:
		return content, ""
	case serdejson.Array:
		// Some servers send content parts: [{"type":"text","text":"..."}].
		var out strings.Builder
		for _, part := range content {
			if t, ok := serdejson.GetString(part, "text"); ok {
				out.WriteString(t)
			} else if s, ok := part.(string); ok {
				out.WriteString(s)
			}
		}
		return out.String(), ""
	}
	hasCalls := func(key string) bool {
		switch v := message[key].(type) {
		case serdejson.Array:
			return len(v) > 0
		case serdejson.Object:
			return true
		}
		return false
	}
	if hasCalls("tool_calls") || hasCalls("function_call") {
		return serdejson.Stringify(message), ""
	}
	if refusal, ok := message["refusal"].(string); ok {
		return "", "the model refused: " + text.Excerpt(refusal, classify.MaxMessageBytes)
	}
	return "", "choices[0].message has no content and no tool calls"
}

// embeddedError is a 2xx body that carries {"error": ...} instead of a
// result, as some proxies (OpenRouter) send: classified by error.code when
// it is an HTTP status, other otherwise.
func embeddedError(status uint16, headers []sdk.Header, bodyText string, json, errorValue serdejson.Value) *sdk.StrategyError {
	raw, _ := serdejson.Get(errorValue, "code")
	var base *sdk.StrategyError
	if code, ok := serdejson.AsU64(raw); ok && code >= 400 && code < 600 {
		base = Refine(classify.FromHTTP(uint16(code), headers, bodyText), uint16(code), json, true)
	} else {
		base = Refine(sdk.NewError(sdk.Other, ""), status, json, true)
	}
	message, _ := classify.ProviderMessage(json, true, bodyText)
	base.Message = "HTTP " + strconv.Itoa(int(status)) + " response carries an error: " + message
	base.HTTPStatus = sdk.Ptr(status)
	base.ResponseBody = sdk.Ptr(bodyText)
	return base
}
