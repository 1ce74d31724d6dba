//! The data of one plugin store and the host services it offers.

use std::sync::Arc;
use std::time::Duration;

use batchllm_bindings::{v0_1, v0_2};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::kv::RunState;
use super::limits::SandboxLimits;
use super::output::{OutputContext, PluginOutput, Stream};
use crate::egress::{CallScope, Egress, EgressError, EgressHooks, InboundResponse, OutboundRequest};

/// What every instance of one plugin in one run shares.
#[derive(Debug)]
pub struct RunShared {
    /// The plugin's display name, for log tags.
    pub plugin: String,
    /// The plugin configuration (a JSON object as text).
    pub config: String,
    /// The run-wide key/value state (`host.run-state-*`), bounded by
    /// `limits.run_state`.
    pub run_state: RunState,
    /// The network door.
    pub egress: Egress,
    /// Limits for every instance.
    pub limits: SandboxLimits,
}

/// The `T` of every plugin `Store<T>`.
pub struct HostState {
    shared: Arc<RunShared>,
    scope: CallScope,
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: EgressHooks,
    pub(crate) limits: InstanceLimiter,
    pub(crate) cpu_ticks_left: u64,
    pub(crate) output: PluginOutput,
}

/// The store's resource limiter: wasmtime's [`StoreLimits`], plus a note of
/// the last memory growth it refused, so an out-of-memory trap is reported
/// as such.
pub(crate) struct InstanceLimiter {
    limits: StoreLimits,
    /// Bytes the plugin last tried to grow a memory to, when refused.
    pub(crate) memory_refused: Option<usize>,
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.memory_refused = Some(desired);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl HostState {
    /// Fresh state for one instance: no environment, no arguments, no
    /// preopened directories, no sockets, stdin empty; stdout/stderr
    /// forwarded to `tracing`, bounded ([`PluginOutput`]).
    pub fn new(shared: Arc<RunShared>, scope: CallScope) -> Self {
        let output_ctx = OutputContext {
            plugin: shared.plugin.clone(),
            max_line: shared.limits.max_log_message,
            budget: shared.limits.max_output_capture,
            secrets: shared.egress.secrets().clone(),
        };
        let output = PluginOutput::new(output_ctx, scope.clone());
        let wasi = WasiCtx::builder()
            .stdout(output.stream(Stream::Stdout))
            .stderr(output.stream(Stream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(shared.limits.max_resources);
        let limits = StoreLimitsBuilder::new()
            .memory_size(shared.limits.max_memory_bytes)
            .instances(shared.limits.max_core_instances)
            .tables(shared.limits.max_core_instances)
            .memories(shared.limits.max_core_instances)
            .table_elements(shared.limits.max_table_elements)
            .build();
        let limits = InstanceLimiter { limits, memory_refused: None };
        let hooks = EgressHooks::new(shared.egress.clone(), scope.clone());
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(shared.limits.max_http_fields_bytes);
        HostState { shared, scope, wasi, table, http, hooks, limits, cpu_ticks_left: 0, output }
    }

    /// The last bytes the plugin wrote to stdout/stderr in this call (for
    /// trap reports), secrets scrubbed.
    pub fn output_tail(&self, max: usize) -> String {
        self.output.tail(max)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// The `host` and `http` imports of contract version `$v` (the same in
/// every version, each in its own generated types).
macro_rules! services {
    ($v:ident) => {
        impl $v::types::Host for HostState {}

        impl $v::host::Host for HostState {
            async fn log(&mut self, level: $v::host::LogLevel, message: String) -> wasmtime::Result<()> {
                use $v::host::LogLevel;
                let level = match level {
                    LogLevel::Trace => tracing::Level::TRACE,
                    LogLevel::Debug => tracing::Level::DEBUG,
                    LogLevel::Info => tracing::Level::INFO,
                    LogLevel::Warn => tracing::Level::WARN,
                    LogLevel::Error => tracing::Level::ERROR,
                };
                self.output.log(level, &message);
                Ok(())
            }

            async fn config(&mut self) -> wasmtime::Result<String> {
                Ok(self.shared.config.clone())
            }

            async fn run_state_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
                Ok(self.shared.run_state.get(&key))
            }

            /// A write over the run state's limits fails the call: the
            /// contract has no way to say "not stored" (see [`super::kv`]).
            async fn run_state_set(&mut self, key: String, value: Option<String>) -> wasmtime::Result<()> {
                self.shared.run_state.set(&self.shared.limits.run_state, key, value).map_err(wasmtime::Error::new)
            }

            async fn run_state_compare_and_swap(
                &mut self,
                key: String,
                expected: Option<String>,
                new: Option<String>,
            ) -> wasmtime::Result<bool> {
                let limits = &self.shared.limits.run_state;
                self.shared.run_state.compare_and_swap(limits, key, expected, new).map_err(wasmtime::Error::new)
            }
        }

        impl $v::http::Host for HostState {
            async fn send(
                &mut self,
                request: $v::http::Request,
            ) -> wasmtime::Result<Result<$v::http::Response, $v::http::HttpError>> {
                use $v::http::{HttpError, Response};
                let outbound = OutboundRequest {
                    method: request.method,
                    url: request.url,
                    headers: request.headers,
                    body: request.body,
                    timeout: request.timeout_ms.map(Duration::from_millis),
                };
                Ok(match self.send_outbound(outbound).await {
                    Ok(r) => Ok(Response { status: r.status, headers: r.headers, body: r.body }),
                    Err(Failed::Host(message)) => Err(HttpError::Network(message)),
                    Err(Failed::Egress(e)) => {
                        let message = e.plugin_message();
                        Err(match e {
                            EgressError::Denied(_) => HttpError::Denied(message),
                            EgressError::Timeout(_) | EgressError::Transport { timed_out: true, .. } => {
                                HttpError::Timeout(message)
                            }
                            EgressError::Transport { timed_out: false, .. } | EgressError::CallEnded => {
                                HttpError::Network(message)
                            }
                            EgressError::InvalidRequest(_) => HttpError::InvalidRequest(message),
                            EgressError::TooLarge(_) | EgressError::OverBudget(_) => HttpError::TooLarge(message),
                        })
                    }
                })
            }
        }
    };
}

services!(v0_1);
services!(v0_2);

impl v0_2::classify::Host for HostState {
    /// The classification the Rust plugins link, run for the plugin: a pure
    /// function of its arguments, whose size the hostcall budget bounds.
    async fn classify(
        &mut self,
        api: v0_2::classify::Api,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> wasmtime::Result<Result<v0_2::types::Success, v0_2::types::StrategyError>> {
        Ok(super::wit::v0_2::classified(batchllm_classify::classify(
            super::wit::v0_2::api(api),
            status,
            &headers,
            &body,
        )))
    }
}

/// Why `http.send` produced no response.
enum Failed {
    /// The egress refused or failed the request.
    Egress(EgressError),
    /// The host's own failure (a panic in the exchange, or the runtime
    /// shutting down), not the plugin's: the plugin sees a network error and
    /// the attempt can be retried.
    Host(String),
}

impl HostState {
    /// Sends one request of `http.send` through the egress.
    async fn send_outbound(&mut self, outbound: OutboundRequest) -> Result<InboundResponse, Failed> {
        // The exchange runs as its own task, on a worker thread's stack
        // rather than this instance's fiber stack: with a thousand calls in
        // flight, a thousand fiber stacks each touched deep by hyper's
        // polling would crowd the CPU caches. Dropping the call (a timeout,
        // a hard stop) still cancels the request.
        let egress = self.shared.egress.clone();
        let scope = self.scope.clone();
        let mut task = AbortOnDrop(tokio::spawn(async move { egress.send(&scope, outbound).await }));
        match (&mut task.0).await {
            Ok(done) => done.map_err(Failed::Egress),
            Err(e) => {
                tracing::error!(error = %e, "the HTTP exchange task failed");
                Err(Failed::Host(format!("the host failed to run the request: {e}")))
            }
        }
    }
}

/// A spawned task that is cancelled when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
