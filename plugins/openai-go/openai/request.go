package openai

import (
	"slices"
	"strings"

	"batchllm/sdk"
	"batchllm/sdk/jsonvalue"
	"batchllm/sdk/text"
)

// ParamOverridePrefix marks retry-state keys that override a top-level body
// field: `param.temperature` = "0.9" sets the body's temperature.
const ParamOverridePrefix = "param."

// Endpoint is an endpoint this strategy speaks.
type Endpoint int

// The endpoints.
const (
	ChatCompletions Endpoint = iota
	Embeddings
)

// API is how the host's classifier reads this endpoint's answers.
func (e Endpoint) API() sdk.API {
	if e == Embeddings {
		return sdk.OpenAIEmbeddings
	}
	return sdk.OpenAIChat
}

// Path is the endpoint's path, with its /v1 prefix.
func (e Endpoint) Path() string {
	if e == Embeddings {
		return "/v1/embeddings"
	}
	return "/v1/chat/completions"
}

// ResolveEndpoint is the endpoint an item targets: chat completions when it
// names none. /chat/completions and /embeddings (no version) are accepted
// too; anything else is a client-error naming the endpoint.
func ResolveEndpoint(endpoint *string) (Endpoint, *sdk.StrategyError) {
	if endpoint == nil {
		return ChatCompletions, nil
	}
	path := strings.TrimRight(text.Trim(*endpoint), "/")
	path = strings.TrimPrefix(path, "/")
	path = strings.TrimPrefix(path, "v1/")
	switch path {
	case "", "chat/completions":
		return ChatCompletions, nil
	case "embeddings":
		return Embeddings, nil
	}
	return 0, sdk.NewError(sdk.ClientError, "unsupported endpoint "+text.DebugStr(*endpoint)+
		": the openai strategy supports /v1/chat/completions and /v1/embeddings")
}

// JoinURL is BaseURL joined with the endpoint's path without doubling the
// version: a base with a path (http://h/v1, https://openrouter.ai/api/v1)
// already names it, so the endpoint goes without its /v1; a bare origin gets
// the full path.
func JoinURL(config Config, endpoint Endpoint) string {
	if config.BaseHasPath {
		return config.BaseURL + strings.TrimPrefix(endpoint.Path(), "/v1")
	}
	return config.BaseURL + endpoint.Path()
}

// BuildBody is the request body for item: DefaultParams, the item's params
// over them (a shallow merge), then the endpoint's defaults, then the
// retry-state overrides.
//
// Chat: model is set when missing; without messages the prompt becomes the
// one user message; with messages a non-empty prompt is appended as a user
// message. Embeddings: model is set when missing, input defaults to the
// prompt.
func BuildBody(config Config, item sdk.Item, endpoint Endpoint, state []sdk.StateEntry) (jsonvalue.Object, *sdk.StrategyError) {
	body := jsonvalue.Clone(config.DefaultParams)
	params, err := sdk.ParamsObject(item)
	if err != nil {
		return nil, err
	}
	for k, v := range params {
		body[k] = v
	}
	if body["model"] == nil {
		body["model"] = config.Model
	}
	switch endpoint {
	case ChatCompletions:
		if err := addPromptMessage(body, item); err != nil {
			return nil, err
		}
	case Embeddings:
		if body["input"] == nil {
			if item.Prompt == "" {
				return nil, sdk.NewError(sdk.ClientError, "item "+text.DebugStr(item.ID)+" has neither a prompt nor params.input")
			}
			body["input"] = item.Prompt
		}
	}
	ApplyOverrides(body, state)
	if stream, _ := body["stream"].(bool); stream {
		return nil, sdk.NewError(sdk.ClientError, "item "+text.DebugStr(item.ID)+
			": streaming (stream: true) is not supported; the strategy needs the whole response")
	}
	return body, nil
}

// addPromptMessage adds the item's prompt to the body's messages: the sole
// user message when there are none, else appended as the last one (the
// Rust SDK's `body::add_prompt_message`).
func addPromptMessage(body jsonvalue.Object, item sdk.Item) *sdk.StrategyError {
	user := jsonvalue.Object{"role": "user", "content": item.Prompt}
	switch messages := body["messages"].(type) {
	case nil:
		if item.Prompt == "" {
			return sdk.NewError(sdk.ClientError, "item "+text.DebugStr(item.ID)+" has neither a prompt nor params.messages")
		}
		body["messages"] = jsonvalue.Array{user}
	case jsonvalue.Array:
		if item.Prompt != "" {
			// A copy: the array may belong to the configuration's defaults.
			body["messages"] = append(slices.Clone(messages), user)
		}
	default:
		return sdk.NewError(sdk.ClientError, "item "+text.DebugStr(item.ID)+
			": params.messages must be an array, got "+jsonvalue.Kind(messages))
	}
	return nil
}

// ApplyOverrides applies every `param.<field>` retry-state entry: the
// top-level body field is set to the entry's value parsed as JSON, or to the
// value as a string when it is not valid JSON.
func ApplyOverrides(body jsonvalue.Object, state []sdk.StateEntry) {
	for _, entry := range state {
		field, ok := strings.CutPrefix(entry.Key, ParamOverridePrefix)
		if !ok || field == "" {
			continue
		}
		if parsed, err := jsonvalue.Parse(entry.Value); err == nil {
			body[field] = parsed
		} else {
			body[field] = entry.Value
		}
	}
}

// Headers are the request headers: content-type, authorization with the
// secret placeholder (unless disabled), then ExtraHeaders, each replacing a
// header of the same name.
func Headers(config Config) []sdk.Header {
	headers := []sdk.Header{{Name: "content-type", Value: "application/json"}}
	if config.APIKeySecret != nil {
		headers = append(headers, sdk.Header{Name: "authorization", Value: "Bearer " + sdk.SecretPlaceholder(*config.APIKeySecret)})
	}
	for _, extra := range config.ExtraHeaders {
		headers = slices.DeleteFunc(headers, func(h sdk.Header) bool { return asciiEqualFold(h.Name, extra.Name) })
		headers = append(headers, extra)
	}
	return headers
}

// BuildRequest is the complete request for one attempt, and its endpoint.
func BuildRequest(config Config, item sdk.Item, state []sdk.StateEntry, timeoutMs uint64) (Endpoint, sdk.Request, *sdk.StrategyError) {
	endpoint, err := ResolveEndpoint(item.Endpoint)
	if err != nil {
		return 0, sdk.Request{}, err
	}
	body, err := BuildBody(config, item, endpoint, state)
	if err != nil {
		return 0, sdk.Request{}, err
	}
	return endpoint, sdk.Request{
		Method:    "POST",
		URL:       JoinURL(config, endpoint),
		Headers:   Headers(config),
		Body:      []byte(jsonvalue.Stringify(body)),
		TimeoutMs: sdk.Ptr(timeoutMs),
	}, nil
}

// asciiEqualFold is Rust's `eq_ignore_ascii_case`.
func asciiEqualFold(a, b string) bool {
	return text.ASCIILower(a) == text.ASCIILower(b)
}
