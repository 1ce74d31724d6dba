//go:build wasip1

package sdk

import (
	"runtime"
	"unsafe"
)

// The `batchllm:strategy/classify` import: api and status as core values,
// headers and body as (ptr, len) each, then the return pointer.

//go:wasmimport batchllm:strategy/classify@0.2.0 classify
func hostClassify(api, status, headersPtr, headersLen, bodyPtr, bodyLen, ret uint32)

// Classify reads a provider's answer as the host reads it for every
// language (the Rust plugins' own code): the output, usage, body and
// metadata of a usable answer, or its classified failure (the status
// table, the wait the provider asked for, the provider's error codes,
// no-content). Pass the response exactly as Send returned it.
func Classify(api API, status uint16, headers []Header, body []byte) (Success, *StrategyError) {
	words := lowerHeaders(headers)
	var headersPtr uint32
	if len(words) > 0 {
		headersPtr = addrOf(unsafe.Pointer(&words[0]))
	}
	ret := importRetAddr()
	hostClassify(uint32(api), uint32(status), headersPtr, uint32(len(headers)), bytesAddr(body), uint32(len(body)), ret)
	runtime.KeepAlive(headers)
	runtime.KeepAlive(words)
	runtime.KeepAlive(body)
	defer releaseHostBuffers()
	// result<success, strategy-error>: disc @0, payload @8.
	if load8(ret) != 0 {
		e := liftError(ret + 8)
		return Success{}, &e
	}
	return liftSuccess(ret + 8), nil
}
