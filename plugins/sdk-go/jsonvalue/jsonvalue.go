// Package jsonvalue holds JSON documents as plain Go values, with numbers
// kept exactly as written (json.Number), so a request body says what the job
// said: a `seed` of 12345678901234567 is sent with every digit. Objects are
// map[string]any and print with sorted keys.
package jsonvalue

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sort"
)

// Value is any JSON value: nil, bool, json.Number, string, Array or Object.
type Value = any

// Object is a JSON object.
type Object = map[string]any

// Array is a JSON array.
type Array = []any

// Parse reads one JSON document; trailing data is an error.
func Parse(text string) (Value, error) {
	decoder := json.NewDecoder(bytes.NewReader([]byte(text)))
	decoder.UseNumber()
	var v Value
	if err := decoder.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := decoder.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing characters after the JSON value")
	}
	return v, nil
}

// Stringify prints v compactly, without escaping <, > and &.
func Stringify(v Value) string {
	var out bytes.Buffer
	encoder := json.NewEncoder(&out)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(v); err != nil {
		// Values from Parse, and the plugin's own maps of them, always print.
		return "null"
	}
	return string(bytes.TrimSuffix(out.Bytes(), []byte("\n")))
}

// Kind is a short English name of a value's kind, for error messages.
func Kind(v Value) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64, int, int64, uint64:
		return "a number"
	case string:
		return "a string"
	case Array:
		return "an array"
	}
	return "an object"
}

// SortedKeys is obj's keys in byte order.
func SortedKeys(obj Object) []string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Clone is a shallow copy of obj.
func Clone(obj Object) Object {
	out := make(Object, len(obj))
	for k, v := range obj {
		out[k] = v
	}
	return out
}
