//! Linking a compiled plugin, and checking it fits the world, before any call.

use batchllm_bindings::{Strategy, StrategyPre};
use wasmtime::component::{Component, HasSelf, Linker};

use super::SandboxError;
use super::engine::SandboxEngine;
use super::state::HostState;

/// Links a compiled component against everything the host offers and checks,
/// once and before any call, that it imports nothing else and exports the
/// strategy.
pub fn link(engine: &SandboxEngine, component: &Component) -> Result<StrategyPre<HostState>, SandboxError> {
    let mut linker: Linker<HostState> = Linker::new(engine.engine());
    let setup = |linker: &mut Linker<HostState>| -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
        Strategy::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
        Ok(())
    };
    setup(&mut linker).map_err(|e| SandboxError::Engine(format!("{e:?}")))?;
    let pre = linker.instantiate_pre(component).map_err(|e| SandboxError::Incompatible(format!("{e}")))?;
    StrategyPre::new(pre).map_err(|e| SandboxError::Incompatible(format!("{e}")))
}
