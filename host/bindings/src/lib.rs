//! Host-side bindings for the `batchllm:strategy` WIT package.
//!
//! This crate holds only the output of `wasmtime::component::bindgen!`, so the
//! macro expansion is compiled once and not on every edit of the host.
//! Exports are async (the host drives plugins from tokio); imports are async
//! because `http.send` performs network I/O, and trappable so the host can
//! abort a call it must not continue.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "batchllm:strategy/strategy",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use batchllm::strategy::{host, http, types};
pub use exports::batchllm::strategy::llm_strategy;
