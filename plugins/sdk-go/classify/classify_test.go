package classify

import (
	"strings"
	"testing"

	"batchllm/sdk"
)

func headers(pairs ...string) []sdk.Header {
	var out []sdk.Header
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, sdk.Header{Name: pairs[i], Value: pairs[i+1]})
	}
	return out
}

func wait(e *sdk.StrategyError) any {
	if e.RetryAfterMs == nil {
		return nil
	}
	return *e.RetryAfterMs
}

func TestStatusTable(t *testing.T) {
	cases := map[uint16]sdk.ErrorClass{
		429: sdk.RateLimited, 401: sdk.Auth, 403: sdk.Auth, 413: sdk.TooLarge, 400: sdk.ClientError,
		404: sdk.ClientError, 405: sdk.ClientError, 410: sdk.ClientError, 422: sdk.ClientError,
		409: sdk.Overloaded, 408: sdk.Timeout, 500: sdk.Overloaded, 502: sdk.Overloaded, 503: sdk.Overloaded,
		504: sdk.Overloaded, 529: sdk.Overloaded, 599: sdk.Overloaded, 418: sdk.Other, 302: sdk.Other, 600: sdk.Other,
	}
	for status, class := range cases {
		e := FromHTTP(status, nil, "")
		if e.Class != class || e.HTTPStatus == nil || *e.HTTPStatus != status {
			t.Errorf("status %d: %v", status, e)
		}
	}
}

func TestTryAgainInPhrases(t *testing.T) {
	cases := map[string]any{
		"Rate limit reached for gpt-4o-mini on tokens per min (TPM): Limit 200000. Please try again in 644ms. Visit …": uint64(644),
		"Please try again in 9.816s.":            uint64(9816),
		"please TRY AGAIN IN 1m30s":              uint64(90_000),
		"Please try again in 6m0s.":              uint64(360_000),
		"try again in 1h2m3.5s":                  uint64(3_723_500),
		"Please retry in 27.428353394s.":         uint64(27_429),
		"try again in 2 seconds":                 uint64(2000),
		"try again in 0.0001s":                   uint64(1),
		"try again in 20":                        nil,
		"try again in a moment":                  nil,
		"try again in a bit, or try again in 3s": uint64(3000),
		"no phrase here":                         nil,
		"retry after 500µs":                      uint64(1),
	}
	for text, want := range cases {
		ms, ok := ParseTryAgainIn(text)
		var got any
		if ok {
			got = ms
		}
		if got != want {
			t.Errorf("ParseTryAgainIn(%q) = %v, want %v", text, got, want)
		}
	}
}

func TestRetryAfterHeaders(t *testing.T) {
	for value, want := range map[string]any{
		"2": uint64(2000), " 1.5 ": uint64(1500), "0.0004": uint64(1), "0": uint64(0),
		"Wed, 21 Oct 2015 07:28:00 GMT": nil, "-1": nil, "": nil, ".": nil,
		"99999999999999999999999999999999999999999": nil,
	} {
		ms, ok := ParseRetryAfterHeader(value)
		var got any
		if ok {
			got = ms
		}
		if got != want {
			t.Errorf("ParseRetryAfterHeader(%q) = %v, want %v", value, got, want)
		}
	}
	if ms, _ := ParseRetryAfterMsHeader("12.2"); ms != 13 {
		t.Errorf("retry-after-ms 12.2 = %d", ms)
	}
}

func TestRetryAfterPrecedence(t *testing.T) {
	body := `{"error":{"message":"Please try again in 5s"}}`
	cases := []struct {
		status  uint16
		headers []sdk.Header
		body    string
		want    any
	}{
		{429, headers("Retry-After-Ms", "250", "retry-after", "1"), body, uint64(250)},
		{429, headers("Retry-After", "1"), body, uint64(1000)},
		{429, headers("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"), body, uint64(5000)},
		{429, nil, "Too many requests", nil},
		{503, headers("retry-after", "3"), body, uint64(3000)},
		{503, nil, body, nil},
		{429, nil, `{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"27s"}]}}`, uint64(27_000)},
	}
	for _, c := range cases {
		if got := wait(FromHTTP(c.status, c.headers, c.body)); got != c.want {
			t.Errorf("%d %v %s: wait %v, want %v", c.status, c.headers, c.body, got, c.want)
		}
	}
}

func TestMessagesAndBodies(t *testing.T) {
	body := `{"error":{"message":"Invalid model","type":"invalid_request_error"}}`
	e := FromHTTP(404, nil, body)
	if e.Message != "HTTP 404 Not Found: Invalid model" || e.ResponseBody == nil || *e.ResponseBody != body {
		t.Errorf("%+v", e)
	}
	e = FromHTTP(502, nil, "<html>bad gateway</html>")
	if e.Message != "HTTP 502 Bad Gateway: <html>bad gateway</html>" || e.ResponseBody != nil {
		t.Errorf("%+v", e)
	}
	for status, want := range map[uint16]string{503: "HTTP 503 Service Unavailable"} {
		if got := FromHTTP(status, nil, "").Message; got != want {
			t.Errorf("%q", got)
		}
	}
	if got := FromHTTP(400, nil, `{"error":"bad things"}`).Message; got != "HTTP 400 Bad Request: bad things" {
		t.Errorf("%q", got)
	}
	if got := FromHTTP(422, nil, `{"detail":[{"loc":["body"],"msg":"field required"}]}`).Message; !strings.Contains(got, "field required") {
		t.Errorf("%q", got)
	}
	if got := FromHTTP(418, nil, `{"message":"teapot"}`).Message; got != "HTTP 418: teapot" {
		t.Errorf("%q", got)
	}
	if got := FromHTTP(500, nil, strings.Repeat("x", 5000)).Message; len(got) >= 1100 {
		t.Errorf("long body not cut: %d bytes", len(got))
	}
}

func TestHTTPErrors(t *testing.T) {
	e := FromHTTPError(&sdk.HTTPError{Kind: sdk.Denied, Message: "host evil.example not granted"})
	if e.Class != sdk.ClientError || !strings.HasPrefix(e.Message, "egress denied: ") || e.HTTPStatus != nil {
		t.Errorf("%+v", e)
	}
	for kind, class := range map[sdk.HTTPErrorKind]sdk.ErrorClass{
		sdk.TimedOut: sdk.Timeout, sdk.NetworkFailed: sdk.Network, sdk.InvalidRequest: sdk.ClientError, sdk.BodyTooLarge: sdk.TooLarge,
	} {
		if got := FromHTTPError(&sdk.HTTPError{Kind: kind, Message: "m"}).Class; got != class {
			t.Errorf("kind %d: %v", kind, got)
		}
	}
}
