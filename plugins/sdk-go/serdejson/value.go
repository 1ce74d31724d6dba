// Package serdejson is JSON exactly as the Rust plugins see it (serde_json
// 1.0.154's `Value`, as the plugins build it), so that a Go plugin produces
// byte-identical outputs and error messages:
//
//   - Parse follows serde_json's grammar and number arithmetic (a u64
//     significand scaled by one power of ten, not correctly rounded in every
//     case) and fails with serde_json's messages
//     ("EOF while parsing a string at line 1 column 57");
//   - Stringify prints like `Value::to_string()`: compact, object keys sorted
//     by bytes (serde_json's map is a BTreeMap), floats in the shortest
//     round-trip form laid out as serde_json's float printer does.
//
// Go's encoding/json differs on all three counts (number types, messages,
// float layout), hence this package. tests/e2e/conformance.rs compares it
// with serde_json itself through cmd/serde-probe.
//
// A Value is one of: nil (null), bool, string, PosInt, NegInt, Float,
// []Value (array) or map[string]Value (object).
package serdejson

import "sort"

// Value is a JSON value; see the package documentation for its dynamic types.
type Value = any

// PosInt is a non-negative integer that fits a u64 (serde_json's `PosInt`).
type PosInt uint64

// NegInt is a negative integer that fits an i64 (serde_json's `NegInt`).
type NegInt int64

// Float is any other number (serde_json's `Float`): a fraction or exponent
// in the text, an integer out of the i64/u64 range, or `-0`.
type Float float64

// Object is a JSON object.
type Object = map[string]Value

// Array is a JSON array.
type Array = []Value

// Kind is a short English name of v's kind, for error messages ("a string",
// "an object", ...), as the Rust SDK's `json_kind`.
func Kind(v Value) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case PosInt, NegInt, Float:
		return "a number"
	case string:
		return "a string"
	case Array:
		return "an array"
	default:
		return "an object"
	}
}

// Get is serde_json's `Value::get` with a string key: the member of an
// object, and whether there is one (false for any other kind of value).
func Get(v Value, key string) (Value, bool) {
	obj, ok := v.(Object)
	if !ok {
		return nil, false
	}
	member, ok := obj[key]
	return member, ok
}

// GetString is the member key of v when it is a string.
func GetString(v Value, key string) (string, bool) {
	member, _ := Get(v, key)
	s, ok := member.(string)
	return s, ok
}

// IsObject tells whether v is an object.
func IsObject(v Value) bool {
	_, ok := v.(Object)
	return ok
}

// AsU64 is serde_json's `as_u64`: a non-negative integer (never a float).
func AsU64(v Value) (uint64, bool) {
	n, ok := v.(PosInt)
	return uint64(n), ok
}

// AsF64 is serde_json's `as_f64`: any number, as a float.
func AsF64(v Value) (float64, bool) {
	switch n := v.(type) {
	case PosInt:
		return float64(n), true
	case NegInt:
		return float64(n), true
	case Float:
		return float64(n), true
	}
	return 0, false
}

// SortedKeys are obj's keys in serde_json's iteration order (by bytes).
func SortedKeys(obj Object) []string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Clone is a shallow copy of an object (a fresh map with the same members).
func Clone(obj Object) Object {
	out := make(Object, len(obj))
	for k, v := range obj {
		out[k] = v
	}
	return out
}
