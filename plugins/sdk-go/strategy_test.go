package sdk

import (
	"strings"
	"testing"
)

func TestParseConfigAcceptsObjectsOnly(t *testing.T) {
	for _, doc := range []string{"", "  ", "null", "{}"} {
		if obj, err := ParseConfig(doc); err != nil || len(obj) != 0 {
			t.Errorf("ParseConfig(%q) = %v, %v", doc, obj, err)
		}
	}
	if obj, err := ParseConfig(`{"a":1}`); err != nil || len(obj) != 1 {
		t.Errorf("%v %v", obj, err)
	}
	if _, err := ParseConfig("[1]"); err == nil || err.Class != ClientError ||
		err.Message != "plugin configuration must be a JSON object, got an array" {
		t.Errorf("%v", err)
	}
	if _, err := ParseConfig("{"); err == nil || err.Class != ClientError ||
		!strings.HasPrefix(err.Message, "plugin configuration is not valid JSON: ") {
		t.Errorf("%v", err)
	}
}

func TestParamsObject(t *testing.T) {
	if obj, err := ParamsObject(Item{ID: "a"}); err != nil || len(obj) != 0 {
		t.Errorf("%v %v", obj, err)
	}
	if _, err := ParamsObject(Item{ID: "a", Params: "[]"}); err == nil || err.Message != `item "a": params must be a JSON object, got an array` {
		t.Errorf("%v", err)
	}
	if _, err := ParamsObject(Item{ID: "a", Params: "{oops"}); err == nil || err.Class != ClientError {
		t.Errorf("%v", err)
	}
}

func TestHeaderValueIsASCIICaseInsensitive(t *testing.T) {
	h := []Header{{"Retry-After", "1"}, {"retry-after", "2"}}
	if v, ok := HeaderValue(h, "RETRY-AFTER"); !ok || v != "1" {
		t.Errorf("%q %v", v, ok)
	}
	if _, ok := HeaderValue(h, "retry-after-ms"); ok {
		t.Error("found a missing header")
	}
}

func TestErrorClassNames(t *testing.T) {
	if RateLimited.String() != "rate-limited" || NoContent.String() != "no-content" || ErrorClass(99).String() != "other" {
		t.Error("class names")
	}
}

func TestHTTPErrorsAreClassifiedAsTheRustSDKDoes(t *testing.T) {
	if e := FromHTTPError(&HTTPError{Kind: TimedOut, Message: "slow"}); e.Class != Timeout || e.Message != "request timed out: slow" {
		t.Errorf("%v", e)
	}
	if e := FromHTTPError(&HTTPError{Kind: Denied, Message: "no"}); e.Class != ClientError {
		t.Errorf("%v", e)
	}
}
