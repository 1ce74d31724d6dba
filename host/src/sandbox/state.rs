//! The data of one plugin store and the host services it offers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use batchllm_bindings::{host, http, types};
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::limits::SandboxLimits;
use super::scope::CallScope;
use crate::egress::{Egress, EgressError, EgressHooks, OutboundRequest};

/// What every instance of one plugin in one run shares.
#[derive(Debug)]
pub struct RunShared {
    /// The plugin's display name, for log tags.
    pub plugin: String,
    /// The plugin configuration (a JSON object as text).
    pub config: String,
    /// The run-wide key/value state (`host.run-state-*`).
    pub run_state: Mutex<HashMap<String, String>>,
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
    pub(crate) limits: StoreLimits,
    pub(crate) cpu_ticks_left: u64,
    stderr: MemoryOutputPipe,
}

impl HostState {
    /// Fresh state for one instance: no environment, no arguments, no
    /// preopened directories, no sockets; stdout/stderr captured, bounded.
    pub fn new(shared: Arc<RunShared>, scope: CallScope) -> Self {
        let capture = shared.limits.max_output_capture;
        let stderr = MemoryOutputPipe::new(capture);
        let wasi = WasiCtx::builder()
            .stdout(stderr.clone())
            .stderr(stderr.clone())
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
            .build();
        let hooks = EgressHooks::new(shared.egress.clone(), scope.clone());
        HostState { shared, scope, wasi, table, http: WasiHttpCtx::new(), hooks, limits, cpu_ticks_left: 0, stderr }
    }

    /// The last bytes the plugin wrote to stdout/stderr (for trap reports).
    pub fn output_tail(&self, max: usize) -> String {
        let bytes = self.stderr.contents();
        let start = bytes.len().saturating_sub(max);
        let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
        self.shared.egress.secrets().scrub(&text)
    }

    fn tag(&self) -> (String, String) {
        (self.shared.plugin.clone(), self.scope.item_id().unwrap_or_else(|| "-".into()))
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

impl types::Host for HostState {}

impl host::Host for HostState {
    async fn log(&mut self, level: host::LogLevel, message: String) -> wasmtime::Result<()> {
        let (plugin, item) = self.tag();
        let mut message = self.shared.egress.secrets().scrub(&message);
        truncate_utf8(&mut message, self.shared.limits.max_log_message);
        match level {
            host::LogLevel::Trace => tracing::trace!(target: "batchllm::plugin", %plugin, %item, "{message}"),
            host::LogLevel::Debug => tracing::debug!(target: "batchllm::plugin", %plugin, %item, "{message}"),
            host::LogLevel::Info => tracing::info!(target: "batchllm::plugin", %plugin, %item, "{message}"),
            host::LogLevel::Warn => tracing::warn!(target: "batchllm::plugin", %plugin, %item, "{message}"),
            host::LogLevel::Error => tracing::error!(target: "batchllm::plugin", %plugin, %item, "{message}"),
        }
        Ok(())
    }

    async fn config(&mut self) -> wasmtime::Result<String> {
        Ok(self.shared.config.clone())
    }

    async fn run_state_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(lock(&self.shared.run_state).get(&key).cloned())
    }

    async fn run_state_set(&mut self, key: String, value: Option<String>) -> wasmtime::Result<()> {
        let mut state = lock(&self.shared.run_state);
        match value {
            Some(v) => state.insert(key, v),
            None => state.remove(&key),
        };
        Ok(())
    }

    async fn run_state_compare_and_swap(
        &mut self,
        key: String,
        expected: Option<String>,
        new: Option<String>,
    ) -> wasmtime::Result<bool> {
        let mut state = lock(&self.shared.run_state);
        if state.get(&key) != expected.as_ref() {
            return Ok(false);
        }
        match new {
            Some(v) => state.insert(key, v),
            None => state.remove(&key),
        };
        Ok(true)
    }
}

impl http::Host for HostState {
    async fn send(&mut self, request: http::Request) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        let outbound = OutboundRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout: request.timeout_ms.map(Duration::from_millis),
        };
        let (result, exchange) = self.shared.egress.send(outbound, self.scope.deadline()).await;
        self.scope.record(exchange);
        Ok(result.map(|r| http::Response { status: r.status, headers: r.headers, body: r.body }).map_err(to_wit_error))
    }
}

fn to_wit_error(e: EgressError) -> http::HttpError {
    match e {
        EgressError::Denied(d) => http::HttpError::Denied(d.to_string()),
        EgressError::Timeout(m) => http::HttpError::Timeout(m),
        EgressError::Network(m) => http::HttpError::Network(m),
        EgressError::InvalidRequest(m) => http::HttpError::InvalidRequest(m),
        EgressError::TooLarge(m) => http::HttpError::TooLarge(m),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut.
pub(crate) fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str("…[truncated]");
}
