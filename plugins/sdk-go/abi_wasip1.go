//go:build wasip1

package sdk

// The memory side of the canonical ABI (wasm32, little-endian): the
// allocator the host lowers strings and lists into, and the loads and stores
// that lift and lower WIT values. Layouts follow the component-model
// canonical ABI; each lift/lower function names the record it handles and
// its field offsets.

import "unsafe"

// hostBuffers keeps alive every buffer the host allocated through
// cabi_realloc, keyed by address, until its contents have been lifted
// (copied into Go values). Go's collector never moves objects, so a buffer
// kept reachable here stays where the host wrote it.
var hostBuffers = map[uint32][]uint64{}

// cabiRealloc is the allocator the host calls to lower arguments of an
// export, and results of an import, into this module's memory.
//
//go:wasmexport cabi_realloc
func cabiRealloc(oldPtr, oldSize, align, newSize uint32) uint32 {
	if align == 0 {
		align = 1
	}
	if newSize == 0 {
		// Nothing will be read or written: any aligned address will do.
		return align
	}
	buf := make([]uint64, (uint64(newSize)+uint64(align)+7)/8)
	base := uint32(uintptr(unsafe.Pointer(&buf[0])))
	addr := (base + align - 1) &^ (align - 1)
	hostBuffers[addr] = buf
	if oldPtr != 0 {
		copy(unsafe.Slice((*byte)(ptrAt(addr)), newSize), unsafe.Slice((*byte)(ptrAt(oldPtr)), min(oldSize, newSize)))
		delete(hostBuffers, oldPtr)
	}
	return addr
}

// releaseHostBuffers lets the collector reclaim every host-allocated buffer.
// Called once the arguments of an export, or the result of an import, have
// been lifted; nothing else refers to those buffers by then.
func releaseHostBuffers() {
	clear(hostBuffers)
}

// returned keeps alive the Go values the current export's result points to
// until the host has lifted them and calls the post-return function.
var returned []any

// keep records v as referenced by the result being returned.
func keep(v any) { returned = append(returned, v) }

// postReturn is called through every cabi_post_* export.
func postReturn() { returned = nil }

// retArea is where exports write results that do not fit a single core
// value (the largest, execute's result, is 128 bytes). Calls never overlap,
// and the host has lifted a result before the next call.
var retArea [16]uint64

func retAddr() uint32 {
	clear(retArea[:])
	return addrOf(unsafe.Pointer(&retArea))
}

// importRet is the area imports write their results to (the largest,
// classify's result, is 128 bytes).
var importRet [16]uint64

func importRetAddr() uint32 {
	clear(importRet[:])
	return addrOf(unsafe.Pointer(&importRet))
}

// ptrAt turns a linear-memory address the host handed over into a pointer.
// The memory belongs to a pinned host buffer, a Go global or a value kept
// alive for the call (on wasm32 an address is the pointer's value).
func ptrAt(addr uint32) unsafe.Pointer { return unsafe.Add(unsafe.Pointer(nil), uintptr(addr)) }

func addrOf(p unsafe.Pointer) uint32 { return uint32(uintptr(p)) }

func load8(addr uint32) uint8   { return *(*uint8)(ptrAt(addr)) }
func load16(addr uint32) uint16 { return *(*uint16)(ptrAt(addr)) }
func load32(addr uint32) uint32 { return *(*uint32)(ptrAt(addr)) }
func load64(addr uint32) uint64 { return *(*uint64)(ptrAt(addr)) }

func store8(addr uint32, v uint8)   { *(*uint8)(ptrAt(addr)) = v }
func store16(addr uint32, v uint16) { *(*uint16)(ptrAt(addr)) = v }
func store32(addr uint32, v uint32) { *(*uint32)(ptrAt(addr)) = v }
func store64(addr uint32, v uint64) { *(*uint64)(ptrAt(addr)) = v }

// liftString copies the string (ptr, len) out of linear memory.
func liftString(ptr, n uint32) string {
	if n == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(ptrAt(ptr)), n))
}

// liftBytes copies the list<u8> (ptr, len) out of linear memory.
func liftBytes(ptr, n uint32) []byte {
	out := make([]byte, n)
	if n > 0 {
		copy(out, unsafe.Slice((*byte)(ptrAt(ptr)), n))
	}
	return out
}

// liftStringAt lifts a string stored as (ptr @0, len @4).
func liftStringAt(addr uint32) string { return liftString(load32(addr), load32(addr+4)) }

// liftOptString lifts an option<string>: disc @0, ptr @4, len @8.
func liftOptString(addr uint32) *string {
	if load8(addr) == 0 {
		return nil
	}
	s := liftStringAt(addr + 4)
	return &s
}

// liftOptU64 lifts an option<u64>: disc @0, value @8.
func liftOptU64(addr uint32) *uint64 {
	if load8(addr) == 0 {
		return nil
	}
	v := load64(addr + 8)
	return &v
}

// stringAddr is the address of s's bytes (0 for an empty string). The
// caller keeps s alive while the address is in use.
func stringAddr(s string) uint32 {
	if len(s) == 0 {
		return 0
	}
	return addrOf(unsafe.Pointer(unsafe.StringData(s)))
}

// bytesAddr is the address of b's elements (0 when empty).
func bytesAddr(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return addrOf(unsafe.Pointer(unsafe.SliceData(b)))
}

// lowerString stores s as (ptr @0, len @4) and keeps it alive until
// post-return.
func lowerString(addr uint32, s string) {
	keep(s)
	store32(addr, stringAddr(s))
	store32(addr+4, uint32(len(s)))
}

// lowerOptString stores an option<string>: disc @0, ptr @4, len @8.
func lowerOptString(addr uint32, s *string) {
	if s == nil {
		store8(addr, 0)
		return
	}
	store8(addr, 1)
	lowerString(addr+4, *s)
}

// lowerOptU64 stores an option<u64>: disc @0, value @8.
func lowerOptU64(addr uint32, v *uint64) {
	if v == nil {
		store8(addr, 0)
		return
	}
	store8(addr, 1)
	store64(addr+8, *v)
}

// lowerHeaders lowers a list<tuple<string, string>> into a Go array of
// (name ptr, name len, value ptr, value len) words; the caller keeps both
// the array and headers alive during the call.
func lowerHeaders(headers []Header) []uint32 {
	words := make([]uint32, 0, 4*len(headers))
	for _, h := range headers {
		words = append(words, stringAddr(h.Name), uint32(len(h.Name)), stringAddr(h.Value), uint32(len(h.Value)))
	}
	return words
}

// liftHeaders lifts a list<tuple<string, string>> (elements of 16 bytes).
func liftHeaders(ptr, n uint32) []Header {
	out := make([]Header, 0, n)
	for i := uint32(0); i < n; i++ {
		at := ptr + 16*i
		out = append(out, Header{Name: liftStringAt(at), Value: liftStringAt(at + 8)})
	}
	return out
}
