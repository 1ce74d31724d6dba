//! The WebAssembly sandbox: engine, compiled plugins, instances, host services.
//!
//! Deny by default: an instance gets no filesystem, no environment, no
//! sockets; its only way out is HTTP through [`crate::egress`]. Memory, CPU
//! per call, wall-clock per call, data passed to the host per call, core
//! instances, tables and resource-table entries are bounded
//! ([`SandboxLimits`]); stdout/stderr go to the host's log, bounded
//! ([`output`]). Compiled code is loaded only from the user's private cache
//! ([`CompileCache`]).

mod cache;
mod component;
mod engine;
mod instance;
mod limits;
mod load;
pub mod output;
mod scope;
mod state;
pub mod wit;

pub use cache::CompileCache;
pub use component::link;
pub use engine::SandboxEngine;
pub use instance::PluginInstance;
pub use limits::SandboxLimits;
pub use load::{LoadedPlugin, load};
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
