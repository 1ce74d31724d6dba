//! Resource limits for plugin instances.

use std::time::Duration;

use super::kv::StateLimits;

/// Limits applied to every plugin instance and call.
///
/// The defaults are generous enough for JS and Python components (which embed
/// an interpreter and need tens of MiB and many core instances) while keeping
/// a runaway plugin from taking the host down.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Linear memory per instance, in bytes.
    pub max_memory_bytes: usize,
    /// Guest CPU time per call (approximate, 10 ms granularity).
    pub max_cpu_per_call: Duration,
    /// Core instances, tables and memories one component may create.
    pub max_core_instances: usize,
    /// Bytes of plugin stdout/stderr forwarded to the host's log per call
    /// (the rest is counted and dropped).
    pub max_output_capture: usize,
    /// Longest log message kept from a plugin.
    pub max_log_message: usize,
    /// Largest `output` a plugin may return for an item.
    pub max_output_bytes: usize,
    /// Entries in an instance's resource table, and component-model handles
    /// alive in its store.
    pub max_resources: usize,
    /// Bytes a plugin may pass to the host in one call (wasmtime "hostcall
    /// fuel"): the arguments of each import call (e.g. an `http.send` body)
    /// and the results of each export call (e.g. `execute`'s output and
    /// response body). Bigger transfers trap before the host allocates them.
    /// Must exceed the largest request body and output the host accepts.
    pub max_hostcall_bytes: usize,
    /// Elements per table (function tables of JS/Python runtimes are large).
    pub max_table_elements: usize,
    /// Bytes of `wasi:http` header fields per request or response.
    pub max_http_fields_bytes: usize,
    /// Wall-clock time allowed for `prepare` and `cleanup`.
    pub lifecycle_timeout: Duration,
    /// The run-wide state (`host.run-state-*`), shared by all instances.
    pub run_state: StateLimits,
    /// Each item's retry state (what `on-error` sets).
    pub retry_state: StateLimits,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            max_memory_bytes: 512 << 20,
            max_cpu_per_call: Duration::from_secs(30),
            max_core_instances: 64,
            max_output_capture: 256 << 10,
            max_log_message: 8 << 10,
            max_output_bytes: 16 << 20,
            max_resources: 10_000,
            max_hostcall_bytes: 64 << 20,
            max_table_elements: 1_000_000,
            max_http_fields_bytes: 128 << 10,
            lifecycle_timeout: Duration::from_secs(120),
            // A run's shared facts (a cache name, a resolved model) are
            // small; 16 MiB leaves room for a shared document.
            run_state: StateLimits { max_keys: 1024, max_bytes: 16 << 20, max_value_bytes: 1 << 20 },
            // Retry hints (temperature, model, the last rejection, a partial
            // answer) for each item in flight.
            retry_state: StateLimits { max_keys: 64, max_bytes: 1 << 20, max_value_bytes: 256 << 10 },
        }
    }
}

/// Milliseconds per epoch tick.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

impl SandboxLimits {
    /// The CPU budget per call in epoch ticks.
    pub(crate) fn cpu_ticks(&self) -> u64 {
        u64::try_from(self.max_cpu_per_call.as_millis() / EPOCH_TICK.as_millis()).unwrap_or(u64::MAX).max(1)
    }
}
