// Package openai is the OpenAI strategy's logic, a port of the Rust plugin
// (plugins/openai-core/src/{config,request,response}.rs) with the same
// configuration keys and errors, request bodies, outputs, usage and error
// classes, byte for byte. Plain functions with no host calls, so `go test`
// runs them natively; package main adapts them to the sdk glue.
package openai

import (
	"slices"
	"strings"
	"unicode"

	"batchllm/sdk"
	"batchllm/sdk/jsonvalue"
	"batchllm/sdk/text"
)

// The configuration's defaults.
const (
	DefaultBaseURL      = "https://api.openai.com/v1"
	DefaultModel        = "gpt-4o-mini"
	DefaultAPIKeySecret = "api-key"
)

// knownKeys are the configuration keys, in the order messages list them.
var knownKeys = []string{"base_url", "model", "api_key_secret", "default_params", "extra_headers"}

// Config is the validated configuration.
type Config struct {
	// BaseURL is an absolute http(s) URL without a trailing slash.
	BaseURL string
	// BaseHasPath tells whether BaseURL has a path (/v1, /api/v1): endpoints
	// are then appended without their /v1 prefix.
	BaseHasPath bool
	Model       string
	// APIKeySecret is the secret named in the authorization header; nil
	// sends none (local servers).
	APIKeySecret  *string
	DefaultParams jsonvalue.Object
	// ExtraHeaders replace a default header of the same name; in key order.
	ExtraHeaders []sdk.Header
}

// DefaultConfig is the configuration of an empty document.
func DefaultConfig() Config {
	return Config{
		BaseURL:       DefaultBaseURL,
		BaseHasPath:   true,
		Model:         DefaultModel,
		APIKeySecret:  sdk.Ptr(DefaultAPIKeySecret),
		DefaultParams: jsonvalue.Object{},
	}
}

func invalid(message string) *sdk.StrategyError {
	return sdk.NewError(sdk.ClientError, "invalid openai plugin configuration: "+message)
}

// ParseConfig parses and validates the configuration document (a JSON
// object; empty text or null means all defaults).
func ParseConfig(doc string) (Config, *sdk.StrategyError) {
	obj, err := sdk.ParseConfig(doc)
	if err != nil {
		return Config{}, err
	}
	return ConfigFromValue(obj)
}

// ConfigFromValue validates a parsed configuration. Members are checked in
// the Rust plugin's order, so the first error reported is the same.
func ConfigFromValue(value jsonvalue.Value) (Config, *sdk.StrategyError) {
	obj, ok := value.(jsonvalue.Object)
	if !ok {
		return Config{}, invalid("expected a JSON object, got " + jsonvalue.Kind(value))
	}
	// serde_json's map iterates in key order: report the same unknown key.
	for _, key := range jsonvalue.SortedKeys(obj) {
		if !slices.Contains(knownKeys, key) {
			return Config{}, invalid("unknown key " + text.DebugStr(key) + " (known keys: " + strings.Join(knownKeys, ", ") + ")")
		}
	}
	config := DefaultConfig()
	present := func(key string) (jsonvalue.Value, bool) {
		v, ok := obj[key]
		return v, ok && v != nil
	}

	if v, ok := present("base_url"); ok {
		url, isString := v.(string)
		if !isString {
			return Config{}, invalid("base_url must be a string, got " + jsonvalue.Kind(v))
		}
		base, hasPath, message := ValidateBaseURL(url)
		if message != "" {
			return Config{}, invalid(message)
		}
		config.BaseURL, config.BaseHasPath = base, hasPath
	}

	if v, ok := present("model"); ok {
		model, isString := v.(string)
		if !isString || text.Trim(model) == "" {
			return Config{}, invalid("model must be a non-empty string")
		}
		config.Model = model
	}

	if v, ok := obj["api_key_secret"]; ok {
		switch secret := v.(type) {
		case nil:
			config.APIKeySecret = nil
		case string:
			if secret == "" {
				config.APIKeySecret = nil
			} else if strings.ContainsAny(secret, "{}") || strings.IndexFunc(secret, isRustWhitespace) >= 0 {
				return Config{}, invalid("api_key_secret " + text.DebugStr(secret) + " must not contain whitespace or braces")
			} else {
				config.APIKeySecret = sdk.Ptr(secret)
			}
		default:
			return Config{}, invalid("api_key_secret must be a string or null, got " + jsonvalue.Kind(v))
		}
	}

	if v, ok := present("default_params"); ok {
		params, isObject := v.(jsonvalue.Object)
		if !isObject {
			return Config{}, invalid("default_params must be an object, got " + jsonvalue.Kind(v))
		}
		config.DefaultParams = jsonvalue.Clone(params)
	}

	if v, ok := present("extra_headers"); ok {
		headers, isObject := v.(jsonvalue.Object)
		if !isObject {
			return Config{}, invalid("extra_headers must be an object, got " + jsonvalue.Kind(v))
		}
		for _, name := range jsonvalue.SortedKeys(headers) {
			if !isHeaderName(name) {
				return Config{}, invalid("extra_headers: " + text.DebugStr(name) + " is not a valid header name")
			}
			value, isString := headers[name].(string)
			if !isString {
				return Config{}, invalid("extra_headers." + name + " must be a string, got " + jsonvalue.Kind(headers[name]))
			}
			if strings.ContainsAny(value, "\r\n") {
				return Config{}, invalid("extra_headers." + name + " must not contain line breaks")
			}
			config.ExtraHeaders = append(config.ExtraHeaders, sdk.Header{Name: name, Value: value})
		}
	}
	return config, nil
}

// ValidateBaseURL checks that url is an absolute http(s) URL with a host and
// no query or fragment, and returns it without trailing slashes and whether
// it has a path; or else a message (the SDK's `validate_base_url`).
func ValidateBaseURL(url string) (base string, hasPath bool, message string) {
	var rest string
	switch {
	case strings.HasPrefix(url, "https://"):
		rest = url[len("https://"):]
	case strings.HasPrefix(url, "http://"):
		rest = url[len("http://"):]
	default:
		return "", false, "base_url " + text.DebugStr(url) + " must be an absolute http:// or https:// URL"
	}
	if strings.IndexFunc(url, func(r rune) bool { return isRustWhitespace(r) || isRustControl(r) }) >= 0 {
		return "", false, "base_url " + text.DebugStr(url) + " must not contain whitespace"
	}
	if strings.ContainsAny(url, "?#") {
		return "", false, "base_url " + text.DebugStr(url) + " must not have a query or fragment"
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	host := authority[strings.LastIndexByte(authority, '@')+1:]
	if host == "" || strings.HasPrefix(host, ":") {
		return "", false, "base_url " + text.DebugStr(url) + " has no host"
	}
	return strings.TrimRight(url, "/"), strings.Trim(path, "/") != "", ""
}

// isRustWhitespace is Rust's `char::is_whitespace` (Unicode White_Space,
// which is what unicode.IsSpace tests).
func isRustWhitespace(r rune) bool { return unicode.IsSpace(r) }

// isRustControl is Rust's `char::is_control` (category Cc).
func isRustControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }

// isHeaderName tells whether name is an RFC 9110 token.
func isHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alnum && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}
