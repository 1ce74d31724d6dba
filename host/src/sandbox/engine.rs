//! The one wasmtime [`Engine`] of a run and its epoch ticker.

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::SandboxError;
use super::limits::{EPOCH_TICK, SandboxLimits};

/// A shared engine plus the thread that advances its epoch every 10 ms, which
/// is what lets the host interrupt a plugin spinning on the CPU.
pub struct SandboxEngine {
    engine: Engine,
    pooling: bool,
}

impl std::fmt::Debug for SandboxEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxEngine").field("pooling", &self.pooling).finish()
    }
}

impl SandboxEngine {
    /// Builds the engine. `instances` is how many plugin instances may be
    /// in use at once (workers plus lifecycle calls); the pooling allocator
    /// gets twice as many slots, because a worker replacing an instance
    /// discarded after a trap may create the new one before the old one's
    /// slot is released, and a plugin trapping on every call must not run the
    /// pool dry. When the pool cannot be reserved (small address spaces,
    /// restrictive overcommit) the engine falls back to on-demand allocation.
    pub fn new(limits: &SandboxLimits, instances: u32) -> Result<Self, SandboxError> {
        let slots = instances.saturating_mul(2);
        let engine = match Engine::new(&base_config(Some(pooling_config(limits, slots)))) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                let engine = Engine::new(&base_config(None)).map_err(|e| SandboxError::Engine(e.into()))?;
                (engine, false)
            }
        };
        let (engine, pooling) = engine;
        spawn_epoch_ticker(&engine);
        Ok(SandboxEngine { engine, pooling })
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

/// Advances the epoch every tick for as long as any clone of the engine is
/// alive (an `InstancePre` keeps one), not just this handle: the thread holds
/// only a weak reference and ends when the engine is gone.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("batchllm-epoch".into()).spawn(move || {
        loop {
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
