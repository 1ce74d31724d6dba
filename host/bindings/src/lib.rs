//! Host-side bindings for the `batchllm:strategy` WIT package, every version
//! the host links: 0.2 (`wit/strategy.wit`, current) and 0.1
//! (`wit/v0.1/strategy.wit`, frozen).
//!
//! This crate holds only the output of `wasmtime::component::bindgen!`, so the
//! macro expansions are compiled once and not on every edit of the host.
//! Exports are async (the host drives plugins from tokio); imports are async
//! because `http.send` performs network I/O, and trappable so the host can
//! abort a call it must not continue. The versions' import names differ
//! (`batchllm:strategy/host@0.1.0`, `…@0.2.0`), so one linker offers both.

/// `batchllm:strategy@0.2.0`: adds the `no-content` class and the
/// `classify` import.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "batchllm:strategy/strategy@0.2.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });

    pub use batchllm::strategy::{classify, host, http, types};
    pub use exports::batchllm::strategy::llm_strategy;
}

/// `batchllm:strategy@0.1.0`, for plugins built before 0.2.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1",
        world: "batchllm:strategy/strategy@0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });

    pub use batchllm::strategy::{host, http, types};
    pub use exports::batchllm::strategy::llm_strategy;
}
