//! Linking a compiled plugin, and checking it fits a world, before any call.
//!
//! A plugin is built against one version of the contract; the host links
//! every version it speaks (0.2, and 0.1 for plugins built before it). The
//! version is read from the component's `llm-strategy` export at load, and
//! the calls go to that version's exports ([`super::PluginInstance`]).

use batchllm_bindings::{v0_1, v0_2};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker};

use super::SandboxError;
use super::engine::SandboxEngine;
use super::state::HostState;

/// The export every strategy has, without its version.
const STRATEGY_EXPORT: &str = "batchllm:strategy/llm-strategy@";

/// The contract versions this host links, newest first.
pub const CONTRACT_VERSIONS: [ContractVersion; 2] = [ContractVersion::V0_2, ContractVersion::V0_1];

/// A version of the `batchllm:strategy` contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractVersion {
    V0_1,
    V0_2,
}

impl ContractVersion {
    /// The semver, e.g. `0.2.0`.
    pub fn semver(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "0.1.0",
            ContractVersion::V0_2 => "0.2.0",
        }
    }

    /// The version whose exports an export named `batchllm:strategy/llm-strategy@<version>` is.
    fn of_export(version: &str) -> Option<Self> {
        // Patch releases are compatible (0.x minors are not).
        let (major_minor, _patch) = version.rsplit_once('.')?;
        CONTRACT_VERSIONS.into_iter().find(|v| v.semver().rsplit_once('.').map(|(mm, _)| mm) == Some(major_minor))
    }
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.semver())
    }
}

/// A linked plugin, ready to instantiate, in the version it was built for.
#[derive(Clone)]
pub enum PluginPre {
    V0_2(v0_2::StrategyPre<HostState>),
    V0_1(v0_1::StrategyPre<HostState>),
}

impl PluginPre {
    /// The contract version the plugin was built against.
    pub fn version(&self) -> ContractVersion {
        match self {
            PluginPre::V0_2(_) => ContractVersion::V0_2,
            PluginPre::V0_1(_) => ContractVersion::V0_1,
        }
    }

    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        match self {
            PluginPre::V0_2(pre) => pre.engine(),
            PluginPre::V0_1(pre) => pre.engine(),
        }
    }
}

/// Links a compiled component against everything the host offers and checks,
/// once and before any call, that it imports nothing else and exports the
/// strategy of a contract version the host speaks.
pub fn link(engine: &SandboxEngine, component: &Component) -> Result<PluginPre, SandboxError> {
    let version = contract_version(engine, component)?;
    let mut linker: Linker<HostState> = Linker::new(engine.engine());
    let setup = |linker: &mut Linker<HostState>| -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
        v0_2::Strategy::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
        v0_1::Strategy::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
        Ok(())
    };
    setup(&mut linker).map_err(|e| SandboxError::Engine(e.into()))?;
    let incompatible = |e: wasmtime::Error| SandboxError::Incompatible(format!("{e:#}"));
    let pre = linker.instantiate_pre(component).map_err(incompatible)?;
    Ok(match version {
        ContractVersion::V0_2 => PluginPre::V0_2(v0_2::StrategyPre::new(pre).map_err(incompatible)?),
        ContractVersion::V0_1 => PluginPre::V0_1(v0_1::StrategyPre::new(pre).map_err(incompatible)?),
    })
}

/// The contract version of the component's `llm-strategy` export.
fn contract_version(engine: &SandboxEngine, component: &Component) -> Result<ContractVersion, SandboxError> {
    let ty = component.component_type();
    let exported: Vec<&str> = ty
        .exports(engine.engine())
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .filter_map(|(name, _)| name.strip_prefix(STRATEGY_EXPORT))
        .collect();
    let known = || CONTRACT_VERSIONS.iter().map(|v| v.semver()).collect::<Vec<_>>().join(" and ");
    match exported.as_slice() {
        [] => Err(SandboxError::Incompatible(format!(
            "it exports no `batchllm:strategy/llm-strategy` interface (this host speaks versions {})",
            known()
        ))),
        [version] => ContractVersion::of_export(version).ok_or_else(|| {
            SandboxError::Incompatible(format!(
                "it is built against batchllm:strategy@{version}; this host speaks versions {}",
                known()
            ))
        }),
        several => Err(SandboxError::Incompatible(format!(
            "it exports `batchllm:strategy/llm-strategy` in several versions ({}); export one",
            several.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_versions() {
        assert_eq!(ContractVersion::of_export("0.1.0"), Some(ContractVersion::V0_1));
        assert_eq!(ContractVersion::of_export("0.2.0"), Some(ContractVersion::V0_2));
        assert_eq!(ContractVersion::of_export("0.2.3"), Some(ContractVersion::V0_2));
        assert_eq!(ContractVersion::of_export("0.3.0"), None);
        assert_eq!(ContractVersion::of_export("1.2.0"), None);
        assert_eq!(ContractVersion::of_export("nonsense"), None);
    }
}
