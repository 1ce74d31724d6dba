package serdejson

import "testing"

// Cases checked against serde_json; tests/e2e/conformance.rs compares
// hundreds more through cmd/serde-probe.
func TestParseAndPrintLikeSerdeJSON(t *testing.T) {
	for doc, want := range map[string]string{
		`{"b":1,"a":[1.0,0.1,1e-7,-0,12345678901234567890,123456789012345678901]}`: `{"a":[1.0,0.1,1e-7,-0.0,12345678901234567890,1.2345678901234567e+20],"b":1}`,
		`0.48190581798553467`:            `0.4819058179855346`,
		`"\u00e9\n\u001f"`:               "\"\u00e9\\n\\u001f\"",
		`1e15`:                           `1000000000000000.0`,
		`1e16`:                           `1e+16`,
		`0.00001`:                        `0.00001`,
		`-9223372036854775808`:           `-9223372036854775808`,
		`-9223372036854775809`:           `-9.223372036854776e+18`,
		` [ true , false , null ] `:      `[true,false,null]`,
		`{"😀":1,"a":2,"\uffff":3,"B":4}`: "{\"B\":4,\"a\":2,\"\uffff\":3,\"😀\":1}",
	} {
		v, err := Parse(doc)
		if err != nil {
			t.Fatalf("Parse(%q): %v", doc, err)
		}
		if got := Stringify(v); got != want {
			t.Errorf("Stringify(Parse(%q)) = %q, want %q", doc, got, want)
		}
	}
}

func TestSerdeJSONErrorMessages(t *testing.T) {
	deep := ""
	for i := 0; i < 130; i++ {
		deep += "["
	}
	for doc, want := range map[string]string{
		`{"a":`:                  "EOF while parsing a value at line 1 column 5",
		"NaN":                    "expected value at line 1 column 1",
		`"\udc00"`:               "lone leading surrogate in hex escape at line 1 column 7",
		deep:                     "recursion limit exceeded at line 1 column 128",
		"[1,]":                   "trailing comma at line 1 column 4",
		"{}x":                    "trailing characters at line 1 column 3",
		"\n\n  {\"é\": [1, tx]}": "expected ident at line 3 column 15",
		"":                       "EOF while parsing a value at line 1 column 0",
		"1e400":                  "number out of range at line 1 column 5",
	} {
		_, err := Parse(doc)
		if err == nil || err.Error() != want {
			t.Errorf("Parse(%q) error = %v, want %q", doc, err, want)
		}
	}
}

func TestNumberTypes(t *testing.T) {
	for doc, want := range map[string]Value{
		"7":    PosInt(7),
		"-7":   NegInt(-7),
		"7.0":  Float(7),
		"-0":   Float(0),
		"1e2":  Float(100),
		"true": true,
	} {
		v, err := Parse(doc)
		if err != nil || v != want {
			t.Errorf("Parse(%q) = %#v, %v; want %#v", doc, v, err, want)
		}
	}
	if n, ok := AsU64(PosInt(3)); !ok || n != 3 {
		t.Error("AsU64(PosInt)")
	}
	if _, ok := AsU64(Float(3)); ok {
		t.Error("AsU64 of a float is not an integer")
	}
}

func TestKind(t *testing.T) {
	for v, want := range map[string]string{"null": "null", "true": "a boolean", "1": "a number", `"x"`: "a string", "[]": "an array", "{}": "an object"} {
		parsed, _ := Parse(v)
		if got := Kind(parsed); got != want {
			t.Errorf("Kind(%s) = %q, want %q", v, got, want)
		}
	}
}
