// Package classify turns failed provider calls into classified
// sdk.StrategyErrors, as the Rust SDK's `classify` module does (same
// classes, messages and retry-after parsing).
//
// The host's retry policy is keyed on the class; a strategy's job is to
// classify honestly, never to decide on retries. FromHTTP covers what every
// HTTP API shares; a plugin refines its result with provider knowledge.
//
//	| status                         | class        |
//	| 429                            | rate-limited |
//	| 401, 403                       | auth         |
//	| 413                            | too-large    |
//	| 400, 404, 405, 410, 422        | client-error |
//	| 408                            | timeout      |
//	| 409, 500-599                   | overloaded   |
//	| anything else                  | other        |
package classify

import (
	"strconv"

	"batchllm/sdk"
	"batchllm/sdk/serdejson"
	"batchllm/sdk/text"
)

// MaxMessageBytes is the longest provider message (in bytes) copied into an
// error message.
const MaxMessageBytes = 1024

// ClassForStatus is the class of a non-2xx HTTP status (the table above).
func ClassForStatus(status uint16) sdk.ErrorClass {
	switch {
	case status == 429:
		return sdk.RateLimited
	case status == 401 || status == 403:
		return sdk.Auth
	case status == 413:
		return sdk.TooLarge
	case status == 400 || status == 404 || status == 405 || status == 410 || status == 422:
		return sdk.ClientError
	case status == 408:
		return sdk.Timeout
	case status == 409 || (status >= 500 && status <= 599):
		return sdk.Overloaded
	}
	return sdk.Other
}

// FromHTTP classifies a provider's non-2xx answer:
//   - Class from ClassForStatus;
//   - Message "HTTP <status> <reason>: <provider message>", the provider
//     message read from the usual JSON shapes (see ProviderMessage);
//   - HTTPStatus always status;
//   - RetryAfterMs, on any status: header retry-after-ms, else retry-after
//     (seconds, possibly fractional; an HTTP-date counts as unknown, since a
//     strategy has no clock), else a Gemini-style error.details[].retryDelay,
//     else, for 429 only, a "try again in 644ms" phrase in the body;
//   - ResponseBody: the body when it is JSON.
func FromHTTP(status uint16, headers []sdk.Header, body string) *sdk.StrategyError {
	json, err := serdejson.Parse(body)
	isJSON := err == nil
	head := "HTTP " + strconv.Itoa(int(status))
	if reason := ReasonPhrase(status); reason != "" {
		head += " " + reason
	}
	message := head
	if m, ok := ProviderMessage(json, isJSON, body); ok {
		message = head + ": " + m
	}
	e := sdk.NewError(ClassForStatus(status), message)
	e.HTTPStatus = sdk.Ptr(status)
	e.RetryAfterMs = retryAfter(status, headers, json, isJSON, body)
	if isJSON {
		e.ResponseBody = sdk.Ptr(body)
	}
	return e
}

func retryAfter(status uint16, headers []sdk.Header, json serdejson.Value, isJSON bool, body string) *uint64 {
	if v, ok := sdk.HeaderValue(headers, "retry-after-ms"); ok {
		if ms, ok := ParseRetryAfterMsHeader(v); ok {
			return &ms
		}
	}
	if v, ok := sdk.HeaderValue(headers, "retry-after"); ok {
		if ms, ok := ParseRetryAfterHeader(v); ok {
			return &ms
		}
	}
	if isJSON {
		if ms, ok := RetryInfoDelayMs(json); ok {
			return &ms
		}
	}
	if status == 429 {
		if ms, ok := ParseTryAgainIn(body); ok {
			return &ms
		}
	}
	return nil
}

// FromHTTPError classifies a request that produced no response: denied →
// client-error ("egress denied: …"), timeout → timeout, network → network,
// invalid-request → client-error, too-large → too-large.
func FromHTTPError(e *sdk.HTTPError) *sdk.StrategyError {
	switch e.Kind {
	case sdk.Denied:
		return sdk.NewError(sdk.ClientError, "egress denied: "+e.Message)
	case sdk.TimedOut:
		return sdk.NewError(sdk.Timeout, "request timed out: "+e.Message)
	case sdk.NetworkFailed:
		return sdk.NewError(sdk.Network, "network error: "+e.Message)
	case sdk.InvalidRequest:
		return sdk.NewError(sdk.ClientError, "invalid request: "+e.Message)
	case sdk.BodyTooLarge:
		return sdk.NewError(sdk.TooLarge, "body too large: "+e.Message)
	}
	return sdk.NewError(sdk.Other, "http error: "+e.Message)
}

// ProviderMessage is the human-readable message in a provider's error body:
// error.message (OpenAI, Anthropic, Gemini), error as a string, message, or
// detail (FastAPI servers); for a body that is not JSON (isJSON false), an
// excerpt of it. false for an empty body.
func ProviderMessage(json serdejson.Value, isJSON bool, body string) (string, bool) {
	if isJSON {
		errorValue, _ := serdejson.Get(json, "error")
		nested, _ := serdejson.Get(errorValue, "message")
		message, _ := serdejson.Get(json, "message")
		detail, _ := serdejson.Get(json, "detail")
		for _, c := range []serdejson.Value{nested, errorValue, message, detail} {
			switch c := c.(type) {
			case string:
				if t := text.Trim(c); t != "" {
					return text.Excerpt(t, MaxMessageBytes), true
				}
			case serdejson.Array:
				return text.Excerpt(serdejson.Stringify(c), MaxMessageBytes), true
			}
		}
	}
	if t := text.Trim(body); t != "" {
		return text.Excerpt(t, MaxMessageBytes), true
	}
	return "", false
}

// RetryInfoDelayMs is the wait a Google `RetryInfo` detail asks for
// ({"error":{"details":[{"retryDelay":"27s"}]}}), in milliseconds rounded
// up: the first entry whose retryDelay parses.
func RetryInfoDelayMs(json serdejson.Value) (uint64, bool) {
	errorValue, _ := serdejson.Get(json, "error")
	details, _ := serdejson.Get(errorValue, "details")
	list, _ := details.(serdejson.Array)
	for _, d := range list {
		if delay, ok := serdejson.GetString(d, "retryDelay"); ok {
			if ms, ok := ParseDurationMs(delay); ok {
				return ms, true
			}
		}
	}
	return 0, false
}

// ReasonPhrase is the standard reason phrase of common error statuses (""
// when unknown).
func ReasonPhrase(status uint16) string {
	switch status {
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 402:
		return "Payment Required"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 409:
		return "Conflict"
	case 410:
		return "Gone"
	case 413:
		return "Payload Too Large"
	case 415:
		return "Unsupported Media Type"
	case 422:
		return "Unprocessable Entity"
	case 429:
		return "Too Many Requests"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 529:
		return "Overloaded"
	}
	return ""
}
