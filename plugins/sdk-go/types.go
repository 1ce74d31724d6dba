// Package sdk is the guest SDK for batchllm strategy plugins written in Go:
// the Go side of the contract in wit/strategy.wit (package
// batchllm:strategy@0.2.0, world `strategy`).
//
// A plugin is a `main` package that registers its Strategy from an init
// function and is built with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared,
// then turned into a component by wasm-tools (see build-component.sh):
//
//	func init() { sdk.Export(myStrategy{}) }
//	func main() {}
//
// This package holds the record types of the WIT, the Strategy interface,
// and the hand-written canonical-ABI glue (files *_wasip1.go): the
// `llm-strategy` exports, `cabi_realloc` and the post-return functions, and
// the `host` (log, config, run state), `http` (send) and `classify`
// (Classify: the host reads a provider's answer, the Rust plugins' code)
// imports. Outside wasip1 the imports are stubs (Log writes to stderr, the
// others fail), so plugin logic can be unit-tested natively with `go test`.
//
// Subpackages: jsonvalue (JSON documents as Go values, numbers exact) and
// text (Rust string semantics, for messages that quote values).
package sdk

// Item is one job of the batch (WIT `item`). Context and Endpoint are nil
// when absent.
type Item struct {
	ID       string
	Prompt   string
	Params   string
	Context  *string
	Endpoint *string
}

// Attempt is where a call sits in the item's life (WIT `attempt`).
type Attempt struct {
	Number           uint32
	RateLimitRetries uint32
	// TimeLeftMs is the time this call may take; pass it on as the HTTP
	// timeout, never sleep on it.
	TimeLeftMs uint64
}

// StateEntry is one key/value entry of an item's retry state.
type StateEntry struct {
	Key, Value string
}

// StateChange sets Key to *Value, or removes it when Value is nil.
type StateChange struct {
	Key   string
	Value *string
}

// Usage is the tokens one provider call consumed (WIT `usage`); the
// optional counts are nil when unknown.
type Usage struct {
	InputTokens       uint64
	OutputTokens      uint64
	CachedInputTokens *uint64
	CacheWriteTokens  *uint64
	ReasoningTokens   *uint64
}

// Success is what a successful Execute returns (WIT `success`).
type Success struct {
	Output       string
	Usage        *Usage
	ResponseBody *string
	Metadata     *string
}

// ErrorClass is why a call failed (WIT `error-class`); the host's retry
// policy is keyed on it.
type ErrorClass uint8

// The classes, in WIT order (the order is the ABI encoding).
const (
	RateLimited ErrorClass = iota
	Overloaded
	Timeout
	Network
	InvalidResponse
	ClientError
	Auth
	QuotaExhausted
	TooLarge
	Other
	// NoContent: a 2xx answer with nothing to return (the budget spent, a
	// content filter, a refusal, a blocked prompt, no choice); not retried.
	NoContent
)

var classNames = [...]string{
	"rate-limited", "overloaded", "timeout", "network", "invalid-response",
	"client-error", "auth", "quota-exhausted", "too-large", "other", "no-content",
}

// API names the provider API an answer comes from, for Classify (WIT
// `classify.api`, in WIT order).
type API uint8

// The APIs Classify reads.
const (
	Generic API = iota
	OpenAIChat
	OpenAICompletions
	OpenAIResponses
	OpenAIEmbeddings
	AnthropicMessages
	GeminiGenerateContent
)

// String is the class's WIT (kebab-case) name, e.g. "rate-limited".
func (c ErrorClass) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "other"
}

// StrategyError is a classified failure (WIT `strategy-error`).
type StrategyError struct {
	Class        ErrorClass
	Message      string
	HTTPStatus   *uint16
	RetryAfterMs *uint64
	Usage        *Usage
	ResponseBody *string
}

// NewError is a failure of class with message and no optional field set.
func NewError(class ErrorClass, message string) *StrategyError {
	return &StrategyError{Class: class, Message: message}
}

// Error makes a *StrategyError usable as a Go error: "<class>: <message>".
func (e *StrategyError) Error() string { return e.Class.String() + ": " + e.Message }

// Ptr returns a pointer to a copy of v, for the optional fields.
func Ptr[T any](v T) *T { return &v }

// Header is one HTTP header.
type Header struct {
	Name, Value string
}

// HeaderValue is the value of the first header named name (compared ASCII
// case-insensitively) and whether there is one.
func HeaderValue(headers []Header, name string) (string, bool) {
	for _, h := range headers {
		if asciiEqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Request is one outbound HTTP request (WIT `http.request`). URL is
// absolute; TimeoutMs is the total time allowed (the host clamps it to the
// attempt's time left).
type Request struct {
	Method    string
	URL       string
	Headers   []Header
	Body      []byte
	TimeoutMs *uint64
}

// Response is the whole answer to a Request (WIT `http.response`).
type Response struct {
	Status  uint16
	Headers []Header
	Body    []byte
}

// HTTPErrorKind is why a request produced no response (the cases of WIT
// `http-error`, in WIT order).
type HTTPErrorKind uint8

// The kinds of HTTPError.
const (
	// Denied: the egress policy refused the destination or a secret's use.
	Denied HTTPErrorKind = iota
	// TimedOut: no response within the allowed time.
	TimedOut
	// NetworkFailed: connecting, TLS or the transfer failed.
	NetworkFailed
	// InvalidRequest: the request is malformed (bad URL, method or header).
	InvalidRequest
	// BodyTooLarge: the request or response body exceeds the host's limit.
	BodyTooLarge
)

// HTTPError is a request that produced no response.
type HTTPError struct {
	Kind    HTTPErrorKind
	Message string
}

// FromHTTPError classifies a request that produced no response, as the
// Rust SDK does: denied and invalid-request are client errors, timeout,
// network and too-large their own classes.
func FromHTTPError(e *HTTPError) *StrategyError {
	switch e.Kind {
	case Denied:
		return NewError(ClientError, "egress denied: "+e.Message)
	case TimedOut:
		return NewError(Timeout, "request timed out: "+e.Message)
	case NetworkFailed:
		return NewError(Network, "network error: "+e.Message)
	case InvalidRequest:
		return NewError(ClientError, "invalid request: "+e.Message)
	case BodyTooLarge:
		return NewError(TooLarge, "body too large: "+e.Message)
	}
	return NewError(Other, "http error: "+e.Message)
}

func (e *HTTPError) Error() string {
	names := [...]string{"denied", "timeout", "network", "invalid-request", "too-large"}
	if int(e.Kind) < len(names) {
		return names[e.Kind] + ": " + e.Message
	}
	return e.Message
}

// LogLevel is the level of a host log message (WIT `log-level`).
type LogLevel uint8

// The levels, in WIT order.
const (
	LevelTrace LogLevel = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

// SecretPlaceholder is what a plugin writes into a header value instead of
// an API key: "{{secret:NAME}}". The host substitutes the secret only for
// the hosts it is granted for, and refuses the request otherwise.
func SecretPlaceholder(name string) string {
	return "{{secret:" + name + "}}"
}
