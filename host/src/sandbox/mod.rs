//! The WebAssembly sandbox: engine, compiled plugins, instances, host services.
//!
//! Deny by default: an instance gets no filesystem, no environment, no
//! sockets; its only way out is HTTP through [`crate::egress`]. Memory, CPU
//! per call, wall-clock per call, core instances and resource-table entries
//! are bounded ([`SandboxLimits`]).

mod component;
mod engine;
mod instance;
mod limits;
mod scope;
mod state;

pub use component::{CompileCache, link};
pub use engine::SandboxEngine;
pub use instance::{CallFailure, CallOutcome, PluginInstance};
pub use limits::SandboxLimits;
pub use scope::CallScope;
pub use state::{HostState, RunShared};

/// Errors setting up the sandbox or a plugin in it.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("wasmtime engine: {0}")]
    Engine(String),
    #[error("compiling the plugin failed: {0}")]
    Compile(String),
    #[error("the plugin does not fit the `batchllm:strategy/strategy@0.1.0` world: {0}")]
    Incompatible(String),
    #[error("instantiating the plugin failed: {0}")]
    Instantiate(String),
}
