//go:build wasip1

package sdk

import "unsafe"

// The `llm-strategy` exports: each collects garbage if due (see
// gc_wasip1.go), lifts its arguments, calls the registered Strategy (a panic
// becomes a classified error instead of a trap), and lowers the result into
// retArea. Core signatures, as
// `wasm-tools component embed --dummy-names legacy` prints them:
//
//	prepare(config ptr, len) -> retptr        result<_, strategy-error>
//	execute(args ptr) -> retptr                17 flat params > 16: in memory
//	on-error(args ptr) -> retptr               list<state-change>
//	cleanup() -> retptr                        result<_, string>
//
// plus a cabi_post_* function for each, called once the host has lifted
// the result.

// Argument records of execute and on-error (canonical ABI tuples):
//
//	execute:  item @0 (48 bytes), attempt @48 (16), state @64 (ptr, len)
//	on-error: item @0, strategy-error @48 (120), attempt @168, state @184
const (
	executeAttempt = 48
	executeState   = 64
	onErrorError   = 48
	onErrorAttempt = 168
	onErrorState   = 184
)

//go:wasmexport batchllm:strategy/llm-strategy@0.2.0#prepare
func exportPrepare(ptr, n uint32) uint32 {
	collectIfGrown()
	config := liftString(ptr, n)
	releaseHostBuffers()
	err := callPrepare(config)
	ret := retAddr()
	lowerUnitResult(ret, err)
	return ret
}

//go:wasmexport batchllm:strategy/llm-strategy@0.2.0#execute
func exportExecute(args uint32) uint32 {
	collectIfGrown()
	item := liftItem(args)
	attempt := liftAttempt(args + executeAttempt)
	state := liftState(args + executeState)
	releaseHostBuffers()
	success, err := callExecute(item, attempt, state)
	ret := retAddr()
	// result<success, strategy-error>: disc @0, payload @8.
	if err != nil {
		store8(ret, 1)
		lowerError(ret+8, err)
	} else {
		lowerSuccess(ret+8, success)
	}
	return ret
}

//go:wasmexport batchllm:strategy/llm-strategy@0.2.0#on-error
func exportOnError(args uint32) uint32 {
	collectIfGrown()
	item := liftItem(args)
	failure := liftError(args + onErrorError)
	attempt := liftAttempt(args + onErrorAttempt)
	state := liftState(args + onErrorState)
	releaseHostBuffers()
	changes := callOnError(item, failure, attempt, state)
	ret := retAddr()
	lowerStateChanges(ret, changes)
	return ret
}

//go:wasmexport batchllm:strategy/llm-strategy@0.2.0#cleanup
func exportCleanup() uint32 {
	collectIfGrown()
	err := callCleanup()
	ret := retAddr()
	// result<_, string>: disc @0, message @4.
	if err != nil {
		store8(ret, 1)
		lowerString(ret+4, err.Error())
	}
	return ret
}

//go:wasmexport cabi_post_batchllm:strategy/llm-strategy@0.2.0#prepare
func postPrepare(uint32) { postReturn() }

//go:wasmexport cabi_post_batchllm:strategy/llm-strategy@0.2.0#execute
func postExecute(uint32) { postReturn() }

//go:wasmexport cabi_post_batchllm:strategy/llm-strategy@0.2.0#on-error
func postOnError(uint32) { postReturn() }

//go:wasmexport cabi_post_batchllm:strategy/llm-strategy@0.2.0#cleanup
func postCleanup(uint32) { postReturn() }

// liftItem lifts an item: id @0, prompt @8, params @16 (strings), context
// @24 and endpoint @36 (option<string>).
func liftItem(at uint32) Item {
	return Item{
		ID:       liftStringAt(at),
		Prompt:   liftStringAt(at + 8),
		Params:   liftStringAt(at + 16),
		Context:  liftOptString(at + 24),
		Endpoint: liftOptString(at + 36),
	}
}

// liftAttempt lifts an attempt: number @0, rate-limit-retries @4,
// time-left-ms @8.
func liftAttempt(at uint32) Attempt {
	return Attempt{Number: load32(at), RateLimitRetries: load32(at + 4), TimeLeftMs: load64(at + 8)}
}

// liftState lifts a list<tuple<string, string>> stored as (ptr, len).
func liftState(at uint32) []StateEntry {
	headers := liftHeaders(load32(at), load32(at+4))
	state := make([]StateEntry, len(headers))
	for i, h := range headers {
		state[i] = StateEntry{Key: h.Name, Value: h.Value}
	}
	return state
}

// liftError lifts a strategy-error: class @0, message @4, http-status @12
// (disc, u16 @14), retry-after-ms @16, usage @32, response-body @104.
func liftError(at uint32) StrategyError {
	e := StrategyError{
		Class:        ErrorClass(load8(at)),
		Message:      liftStringAt(at + 4),
		RetryAfterMs: liftOptU64(at + 16),
		Usage:        liftOptUsage(at + 32),
		ResponseBody: liftOptString(at + 104),
	}
	if load8(at+12) != 0 {
		e.HTTPStatus = Ptr(load16(at + 14))
	}
	return e
}

// liftOptUsage lifts an option<usage>: disc @0, usage @8 (input @0, output
// @8, cached-input @16, cache-write @32, reasoning @48 as option<u64>).
func liftOptUsage(at uint32) *Usage {
	if load8(at) == 0 {
		return nil
	}
	u := at + 8
	return &Usage{
		InputTokens:       load64(u),
		OutputTokens:      load64(u + 8),
		CachedInputTokens: liftOptU64(u + 16),
		CacheWriteTokens:  liftOptU64(u + 32),
		ReasoningTokens:   liftOptU64(u + 48),
	}
}

// lowerOptUsage stores an option<usage> (layout in liftOptUsage).
func lowerOptUsage(at uint32, usage *Usage) {
	if usage == nil {
		store8(at, 0)
		return
	}
	store8(at, 1)
	u := at + 8
	store64(u, usage.InputTokens)
	store64(u+8, usage.OutputTokens)
	lowerOptU64(u+16, usage.CachedInputTokens)
	lowerOptU64(u+32, usage.CacheWriteTokens)
	lowerOptU64(u+48, usage.ReasoningTokens)
}

// liftSuccess lifts a success (layout in lowerSuccess).
func liftSuccess(at uint32) Success {
	return Success{
		Output:       liftStringAt(at),
		Usage:        liftOptUsage(at + 8),
		ResponseBody: liftOptString(at + 80),
		Metadata:     liftOptString(at + 92),
	}
}

// lowerSuccess stores a success: output @0, usage @8, response-body @80,
// metadata @92.
func lowerSuccess(at uint32, s Success) {
	lowerString(at, s.Output)
	lowerOptUsage(at+8, s.Usage)
	lowerOptString(at+80, s.ResponseBody)
	lowerOptString(at+92, s.Metadata)
}

// lowerError stores a strategy-error (layout in liftError).
func lowerError(at uint32, e *StrategyError) {
	class := e.Class
	if int(class) >= len(classNames) {
		class = Other
	}
	store8(at, uint8(class))
	lowerString(at+4, e.Message)
	if e.HTTPStatus != nil {
		store8(at+12, 1)
		store16(at+14, *e.HTTPStatus)
	}
	lowerOptU64(at+16, e.RetryAfterMs)
	lowerOptUsage(at+32, e.Usage)
	lowerOptString(at+104, e.ResponseBody)
}

// lowerUnitResult stores a result<_, strategy-error>: disc @0, error @8.
func lowerUnitResult(at uint32, e *StrategyError) {
	if e != nil {
		store8(at, 1)
		lowerError(at+8, e)
	}
}

// lowerStateChanges stores a list<tuple<string, option<string>>> as (ptr @0,
// len @4); each element is 20 bytes: key @0, value @8 (disc, ptr @12, len
// @16).
func lowerStateChanges(at uint32, changes []StateChange) {
	words := make([]uint32, 5*len(changes))
	for i, c := range changes {
		w := words[5*i:]
		keep(c.Key)
		w[0], w[1] = stringAddr(c.Key), uint32(len(c.Key))
		if c.Value != nil {
			keep(*c.Value)
			w[2], w[3], w[4] = 1, stringAddr(*c.Value), uint32(len(*c.Value))
		}
	}
	keep(words)
	if len(words) > 0 {
		store32(at, addrOf(unsafe.Pointer(&words[0])))
	}
	store32(at+4, uint32(len(changes)))
}
