//! The one wasmtime [`Engine`] of a run and its epoch ticker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::SandboxError;
use super::limits::{EPOCH_TICK, SandboxLimits};

/// A shared engine plus the thread that advances its epoch every 10 ms, which
/// is what lets the host interrupt a plugin spinning on the CPU.
pub struct SandboxEngine {
    engine: Engine,
    pooling: bool,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for SandboxEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxEngine").field("pooling", &self.pooling).finish()
    }
}

impl SandboxEngine {
    /// Builds the engine. `instances` is how many plugin instances may be
    /// alive at once (workers plus lifecycle calls); it sizes the pooling
    /// allocator. When the pool cannot be reserved (small address spaces,
    /// restrictive overcommit) the engine falls back to on-demand allocation.
    pub fn new(limits: &SandboxLimits, instances: u32) -> Result<Self, SandboxError> {
        let engine = match Engine::new(&base_config(Some(pooling_config(limits, instances)))) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                let engine = Engine::new(&base_config(None)).map_err(|e| SandboxError::Engine(e.to_string()))?;
                (engine, false)
            }
        };
        let (engine, pooling) = engine;
        let stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(&engine, stop.clone());
        Ok(SandboxEngine { engine, pooling, stop })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }
}

impl Drop for SandboxEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn base_config(pooling: Option<PoolingAllocationConfig>) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    if let Some(pool) = pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

fn pooling_config(limits: &SandboxLimits, instances: u32) -> PoolingAllocationConfig {
    let per_component = u32::try_from(limits.max_core_instances).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(per_component))
        .total_memories(instances.saturating_mul(8))
        .total_tables(instances.saturating_mul(per_component))
        .max_core_instances_per_component(per_component)
        .max_memories_per_component(8)
        .max_tables_per_component(per_component)
        .max_memory_size(limits.max_memory_bytes);
    pool
}

fn spawn_epoch_ticker(engine: &Engine, stop: Arc<AtomicBool>) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("batchllm-epoch".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        }
    });
    if let Err(e) = spawned {
        // Without the ticker CPU limits cannot fire; wall-clock timeouts still do.
        tracing::error!(error = %e, "could not start the epoch thread; plugin CPU limits are off");
    }
}
