//go:build !wasip1

package sdk

// Stand-ins for the host imports outside a component (GOOS other than
// wasip1), so plugin logic compiles and unit-tests natively: Log writes to
// stderr; the others behave as an empty host (no configuration, no run
// state, every request refused).

import "os"

// Log writes message to stderr, prefixed with its level.
func Log(level LogLevel, message string) {
	names := [...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}
	name := "LOG"
	if int(level) < len(names) {
		name = names[level]
	}
	os.Stderr.WriteString(name + " " + message + "\n")
}

// Config is "" outside a component (no configuration).
func Config() string { return "" }

// RunStateGet finds nothing outside a component.
func RunStateGet(key string) (string, bool) { return "", false }

// RunStateSet does nothing outside a component.
func RunStateSet(key string, value *string) {}

// RunStateCompareAndSwap never swaps outside a component.
func RunStateCompareAndSwap(key string, expected, newValue *string) bool { return false }

// Classify fails outside a component: the classifier is the host's.
func Classify(api API, status uint16, headers []Header, body []byte) (Success, *StrategyError) {
	return Success{}, NewError(Other, "classify is only available inside a component (GOOS=wasip1)")
}

// Send refuses every request outside a component.
func Send(req Request) (Response, *HTTPError) {
	return Response{}, &HTTPError{Kind: InvalidRequest, Message: "http.send is only available inside a component (GOOS=wasip1)"}
}
