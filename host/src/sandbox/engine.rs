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
        let pool = pooling_config(limits, slots);
        let engine = match pool.map(|pool| Engine::new(&base_config(Some(pool)))) {
            Some(Ok(engine)) => (engine, true),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                let engine = Engine::new(&base_config(None)).map_err(|e| SandboxError::Engine(e.into()))?;
                (engine, false)
            }
            None => {
                tracing::info!(
                    instances,
                    "too many instances for the pooling allocator's address space; using on-demand allocation"
                );
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

/// The address space each linear memory reserves (wasmtime's default on
/// 64-bit hosts, set here so that the pool's size is computed from it):
/// 4 GiB, so that a 32-bit memory needs no bounds checks, plus the guard
/// after it.
const MEMORY_RESERVATION: u64 = 4 << 30;
const MEMORY_GUARD: u64 = 32 << 20;

/// The most address space the pool's memories may reserve: half of the
/// 128 TiB a 64-bit Linux process has (at 8 memories per slot the pool
/// asked for 16 per instance: above 1,000 instances the reservation failed
/// and every instance was allocated on demand, mapped and faulted in one
/// by one, a second and a half of start-up at concurrency 5,000).
const POOL_ADDRESS_SPACE: u64 = 64 << 40;

/// How many memories the pool needs per slot at the least: at most half
/// the slots hold instances in use (the other half lets a trapped
/// instance be replaced before its slot is freed), so one per slot is two
/// per instance in use; a component usually has one memory, a few two.
const MIN_MEMORIES_PER_SLOT: u64 = 1;

fn base_config(pooling: Option<PoolingAllocationConfig>) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config.memory_reservation(MEMORY_RESERVATION);
    config.memory_guard_size(MEMORY_GUARD);
    if let Some(pool) = pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// The pool for `instances` slots: up to 8 memories per slot, as many as
/// fit in [`POOL_ADDRESS_SPACE`]; `None` when fewer than
/// [`MIN_MEMORIES_PER_SLOT`] per slot fit (then instances are allocated on
/// demand, which has no such limit).
fn pooling_config(limits: &SandboxLimits, instances: u32) -> Option<PoolingAllocationConfig> {
    let per_component = u32::try_from(limits.max_core_instances).unwrap_or(u32::MAX);
    let memories = pool_memories(instances)?;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(per_component))
        .total_memories(memories)
        .total_tables(instances.saturating_mul(per_component))
        // A call in progress runs on a stack of the pool (wasmtime's
        // default is 1,000: beyond it calls fail, and a call waiting for
        // its HTTP answer keeps its stack).
        .total_stacks(instances)
        .max_core_instances_per_component(per_component)
        .max_memories_per_component(8)
        .max_tables_per_component(per_component)
        .max_memory_size(limits.max_memory_bytes);
    Some(pool)
}

/// How many memories a pool of `instances` slots gets (see
/// [`pooling_config`]).
fn pool_memories(instances: u32) -> Option<u32> {
    let fit = POOL_ADDRESS_SPACE / (MEMORY_RESERVATION + MEMORY_GUARD);
    let wanted = u64::from(instances).saturating_mul(8);
    (fit >= u64::from(instances) * MIN_MEMORIES_PER_SLOT).then(|| u32::try_from(wanted.min(fit)).unwrap_or(u32::MAX))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_fits_the_address_space_up_to_thousands_of_instances() {
        let slot = MEMORY_RESERVATION + MEMORY_GUARD;
        // Concurrency 1,000 and 5,000 (two slots per instance): a pool
        // within the budget, with at least one memory per slot.
        for slots in [2u32, 2_000, 10_000, 16_000] {
            let memories = pool_memories(slots).expect("pooled");
            assert!(u64::from(memories) * slot <= POOL_ADDRESS_SPACE, "{slots}: {memories}");
            assert!(memories >= slots, "{slots}: {memories}");
            assert!(memories <= slots * 8, "{slots}: {memories}");
        }
        assert_eq!(pool_memories(2), Some(16));
        // Beyond what fits at one memory a slot: on demand.
        assert_eq!(pool_memories(20_000), None);
    }

    #[test]
    fn an_engine_for_concurrency_5000_gets_the_pool() {
        let engine = SandboxEngine::new(&SandboxLimits::default(), 5_000).expect("engine");
        assert!(engine.pooling(), "the pooling allocator could not be created for 5,000 instances");
    }
}
