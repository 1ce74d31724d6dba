package sdk

import "testing"

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
	if _, err := ParseConfig("{"); err == nil || err.Message != "plugin configuration is not valid JSON: EOF while parsing an object at line 1 column 1" {
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
	if RateLimited.String() != "rate-limited" || Other.String() != "other" || ErrorClass(99).String() != "other" {
		t.Error("class names")
	}
}
