//go:build wasip1

package sdk

// The memory of the WASI adapter.
//
// The component wraps this module with wasmtime's WASI preview1 reactor
// adapter, which needs memory of its own (a stack and a state page) and asks
// the main module for it, first while the Go runtime is still starting, when
// no Go export may run. Memory from memory.grow (wasm-tools'
// --realloc-via-memory-grow) is no answer: the Go runtime assumes it owns
// all linear memory above its data and later hands those pages out again,
// corrupting the adapter.
//
// So the adapter gets adapterArena, which the Go runtime never touches:
// add-adapter-realloc.py (run by build-component.sh) finds adapterLocator
// in the module's data section by its marker, reads the arena's address and
// size from it, and adds a `cabi_realloc_adapter` export to the module, a
// bump allocator over the arena that wit-component hands the adapter in
// place of cabi_realloc.

// adapterArenaSize is the arena's size in bytes. The adapter takes its
// 64 KiB state page and its stack from it: 100 KiB was measured too little
// and 128 KiB enough, so 256 KiB leaves room (it costs no file size: the
// array is zero, outside the data segments).
const adapterArenaSize = 256 << 10

var adapterArena [adapterArenaSize]byte

// adapterLocator is static data (a literal): the marker, then the arena's
// address and size as 64-bit little-endian words (GOARCH=wasm pointers are
// 64 bits wide).
var adapterLocator = struct {
	marker [32]byte
	arena  *[adapterArenaSize]byte
	size   uintptr
}{
	marker: [32]byte{'b', 'a', 't', 'c', 'h', 'l', 'l', 'm', '/', 's', 'd', 'k', '-', 'g', 'o', '/', 'a', 'd', 'a', 'p', 't', 'e', 'r', '-', 'a', 'r', 'e', 'n', 'a', '/', 'v', '1'},
	arena:  &adapterArena,
	size:   adapterArenaSize,
}

func init() {
	// A reference from code keeps the locator, and so the arena, in the
	// binary (the linker drops data no code refers to).
	if adapterLocator.arena != &adapterArena || adapterLocator.size != adapterArenaSize {
		panic("sdk: adapterLocator was changed at run time")
	}
}
