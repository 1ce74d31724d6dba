//go:build wasip1

package sdk

import (
	"runtime"
	"unsafe"
)

// The `batchllm:strategy/http` import: the request record flattens to ten
// core values (method, url, headers, body as (ptr, len) each; timeout-ms as
// (disc, u64)), then the return pointer.

//go:wasmimport batchllm:strategy/http@0.2.0 send
func httpSend(methodPtr, methodLen, urlPtr, urlLen, headersPtr, headersLen, bodyPtr, bodyLen, hasTimeout uint32, timeoutMs uint64, ret uint32)

// Send sends one request through the host's pooled client and waits for the
// whole response. The host's egress policy applies (only granted hosts);
// write API keys as SecretPlaceholder(name), never in clear.
func Send(req Request) (Response, *HTTPError) {
	words := lowerHeaders(req.Headers)
	var headersPtr uint32
	if len(words) > 0 {
		headersPtr = addrOf(unsafe.Pointer(&words[0]))
	}
	var hasTimeout uint32
	var timeout uint64
	if req.TimeoutMs != nil {
		hasTimeout, timeout = 1, *req.TimeoutMs
	}
	ret := importRetAddr()
	httpSend(
		stringAddr(req.Method), uint32(len(req.Method)),
		stringAddr(req.URL), uint32(len(req.URL)),
		headersPtr, uint32(len(req.Headers)),
		bytesAddr(req.Body), uint32(len(req.Body)),
		hasTimeout, timeout, ret,
	)
	runtime.KeepAlive(req)
	runtime.KeepAlive(words)
	// result<response, http-error>: disc @0, payload @4. response: status @4,
	// headers @8, body @16; http-error: case @4, message @8.
	defer releaseHostBuffers()
	if load8(ret) != 0 {
		return Response{}, &HTTPError{Kind: HTTPErrorKind(load8(ret + 4)), Message: liftStringAt(ret + 8)}
	}
	return Response{
		Status:  load16(ret + 4),
		Headers: liftHeaders(load32(ret+8), load32(ret+12)),
		Body:    liftBytes(load32(ret+16), load32(ret+20)),
	}, nil
}
