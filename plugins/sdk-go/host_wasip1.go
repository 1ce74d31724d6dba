//go:build wasip1

package sdk

import "runtime"

// The `batchllm:strategy/host` imports. Strings go down as (ptr, len) into
// Go memory kept alive for the call; results that do not fit one core value
// come back in importRet, with strings the host allocated via cabi_realloc.

//go:wasmimport batchllm:strategy/host@0.2.0 log
func hostLog(level, ptr, n uint32)

//go:wasmimport batchllm:strategy/host@0.2.0 config
func hostConfig(ret uint32)

//go:wasmimport batchllm:strategy/host@0.2.0 run-state-get
func hostRunStateGet(keyPtr, keyLen, ret uint32)

//go:wasmimport batchllm:strategy/host@0.2.0 run-state-set
func hostRunStateSet(keyPtr, keyLen, isSome, valuePtr, valueLen uint32)

//go:wasmimport batchllm:strategy/host@0.2.0 run-state-compare-and-swap
func hostRunStateCAS(keyPtr, keyLen, hasExpected, expectedPtr, expectedLen, hasNew, newPtr, newLen uint32) uint32

// Log logs message through the host's tracing, tagged with the plugin and
// the item being processed.
func Log(level LogLevel, message string) {
	hostLog(uint32(level), stringAddr(message), uint32(len(message)))
	runtime.KeepAlive(message)
}

// Config is the plugin's configuration, the JSON object Prepare received,
// available in every instance.
func Config() string {
	ret := importRetAddr()
	hostConfig(ret)
	config := liftStringAt(ret)
	releaseHostBuffers()
	return config
}

// RunStateGet reads a value of the run-wide state shared by every instance
// of this plugin in this run.
func RunStateGet(key string) (string, bool) {
	ret := importRetAddr()
	hostRunStateGet(stringAddr(key), uint32(len(key)), ret)
	runtime.KeepAlive(key)
	value := liftOptString(ret)
	releaseHostBuffers()
	if value == nil {
		return "", false
	}
	return *value, true
}

// RunStateSet sets key to *value in the run-wide state, or removes it when
// value is nil.
func RunStateSet(key string, value *string) {
	isSome, ptr, n := optString(value)
	hostRunStateSet(stringAddr(key), uint32(len(key)), isSome, ptr, n)
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
}

// RunStateCompareAndSwap atomically replaces key's value with newValue if it
// currently equals expected (nil = absent), and tells whether it did.
func RunStateCompareAndSwap(key string, expected, newValue *string) bool {
	hasExpected, expectedPtr, expectedLen := optString(expected)
	hasNew, newPtr, newLen := optString(newValue)
	swapped := hostRunStateCAS(stringAddr(key), uint32(len(key)), hasExpected, expectedPtr, expectedLen, hasNew, newPtr, newLen)
	runtime.KeepAlive(key)
	runtime.KeepAlive(expected)
	runtime.KeepAlive(newValue)
	return swapped != 0
}

// optString flattens an option<string> to (disc, ptr, len).
func optString(s *string) (uint32, uint32, uint32) {
	if s == nil {
		return 0, 0, 0
	}
	return 1, stringAddr(*s), uint32(len(*s))
}
