//! The WebAssembly sandbox: engine, compiled plugins, instances, host services.
//!
//! Deny by default: an instance gets no filesystem, no environment, no
//! sockets; its only way out is HTTP through [`crate::egress`]. Memory, CPU
//! per call, wall-clock per call, data passed to the host per call, core
//! instances, tables and resource-table entries are bounded
//! ([`SandboxLimits`]); so is the state plugins keep in the host, run-wide
//! and per item ([`kv`]); stdout/stderr go to the host's log, bounded and
//! escaped ([`output`]). Compiled code is loaded only from the user's
//! private cache ([`CompileCache`]).
//!
//! Layers: this module builds on [`crate::egress`] (each instance gets an
//! egress [`crate::egress::CallScope`]); egress knows nothing of it.

mod cache;
mod component;
mod engine;
mod instance;
pub mod kv;
mod limits;
mod load;
pub mod output;
mod state;
pub mod wit;

pub use cache::CompileCache;
pub use component::{CONTRACT_VERSIONS, ContractVersion, PluginPre, link};
pub use engine::SandboxEngine;
pub use instance::PluginInstance;
pub use kv::{RunState, StateLimitError, StateLimits};
pub use limits::SandboxLimits;
pub use load::{LoadedPlugin, load};
pub use state::{HostState, RunShared};

/// A wasmtime error (an `anyhow::Error`) kept as a source with its causes.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors setting up the sandbox or a plugin in it; shown to people with
/// [`crate::model::error_chain`], which adds the causes.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("setting up the wasmtime engine failed")]
    Engine(#[source] BoxError),
    #[error("compiling the plugin failed")]
    Compile(#[source] BoxError),
    #[error("the plugin does not fit the `batchllm:strategy/strategy` world (versions 0.2.0 and 0.1.0): {0}")]
    Incompatible(String),
    #[error("instantiating the plugin failed: {0}")]
    Instantiate(String),
}
