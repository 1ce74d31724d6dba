//! Loading a plugin: one path from component bytes to something to
//! instantiate, shared by a run, a dry run, `plugin check` and the benchmarks.

use std::sync::Arc;

use super::{CompileCache, PluginPre, RunShared, SandboxEngine, SandboxError, SandboxLimits, link};
use crate::egress::Egress;
use crate::plugin::PluginSource;

/// A compiled, linked plugin with its run-wide state.
pub struct LoadedPlugin {
    /// The engine the plugin was compiled for (kept alive with it).
    pub engine: SandboxEngine,
    /// The linked plugin, in the contract version it was built against.
    pub pre: PluginPre,
    pub shared: Arc<RunShared>,
}

/// Compiles (or loads from `cache`) and links `plugin`, for up to
/// `instances` live instances, configured with `config` (a JSON object)
/// and reaching the network through `egress`.
pub fn load(
    plugin: &PluginSource,
    cache: &CompileCache,
    limits: &SandboxLimits,
    instances: usize,
    config: &serde_json::Map<String, serde_json::Value>,
    egress: Egress,
) -> Result<LoadedPlugin, SandboxError> {
    let instances = u32::try_from(instances).unwrap_or(u32::MAX);
    let engine = SandboxEngine::new(limits, instances)?;
    let component = cache.load(&engine, &plugin.bytes, &plugin.digest)?;
    let pre = link(&engine, &component)?;
    let shared = Arc::new(RunShared {
        plugin: plugin.name.clone(),
        config: serde_json::Value::Object(config.clone()).to_string(),
        run_state: Default::default(),
        egress,
        limits: limits.clone(),
    });
    Ok(LoadedPlugin { engine, pre, shared })
}
