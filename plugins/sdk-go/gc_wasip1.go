//go:build wasip1

package sdk

// Garbage collection only at safe points.
//
// The host calls cabi_realloc while it lowers arguments and results into
// this module, and a component may not call any import then (wasmtime traps
// with "cannot leave component instance"). An allocation in cabi_realloc can
// start a collection, and Go's collector reads clocks and polls timers
// through WASI imports. So automatic collection is off, and each export
// collects on entry, where imports are allowed, once the heap has grown
// enough (as GOGC=100 would, with a floor).

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// minCollectHeap is the heap size below which no collection runs.
const minCollectHeap = 8 << 20

// liveAfterCollect is the heap size right after the last collection.
var liveAfterCollect uint64

func init() {
	debug.SetGCPercent(-1)
	// Heap profiling samples allocations, cabi_realloc's included; nothing
	// reads the profile.
	runtime.MemProfileRate = 0
}

// heapBytes is the memory held by heap objects, live or not yet swept.
func heapBytes() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}

// collectIfGrown runs a collection when the heap has doubled since the last
// one (and passed minCollectHeap). Called at the start of every export.
func collectIfGrown() {
	if heapBytes() < max(2*liveAfterCollect, minCollectHeap) {
		return
	}
	runtime.GC()
	liveAfterCollect = heapBytes()
}
