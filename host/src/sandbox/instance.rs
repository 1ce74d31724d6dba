//! One live plugin instance and the calls into it.
//!
//! Every call runs under two clocks: an epoch-based CPU budget (a plugin
//! spinning in wasm is interrupted) and a wall-clock timeout covering time
//! blocked in host calls such as HTTP. Data crossing into the host is capped
//! per call (hostcall fuel), so a plugin cannot make the host allocate an
//! oversized output or argument. After a trap or a timeout the instance is
//! *poisoned*: wasmtime cannot re-enter it, so the owner must drop it and
//! make a new one.
//!
//! What a plugin says that only reaches logs and error messages (its
//! output tail in a trap report, `prepare`'s and `cleanup`'s errors) is
//! made printable here, so it cannot forge log lines. `on-error`'s changes
//! are checked against the retry-state limits before the host takes them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use batchllm_bindings::types::{Attempt, Item, StateChange, StrategyError, Success};
use batchllm_bindings::{Strategy, StrategyPre};
use wasmtime::{Store, Trap, UpdateDeadline};

use super::SandboxError;
use super::kv::{StateLimitError, check_retry_changes};
use super::output::printable;
use super::state::{HostState, RunShared};
use crate::egress::CallScope;
use crate::model::{CallFailure, CallOutcome};

/// Extra wall-clock time a call gets beyond its HTTP deadline.
pub const CALL_GRACE: Duration = Duration::from_millis(500);

/// wasmtime's message for exhausted hostcall fuel (its error type is private).
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// A plugin instance owned by one worker at a time.
pub struct PluginInstance {
    store: Store<HostState>,
    strategy: Strategy,
    scope: CallScope,
    shared: Arc<RunShared>,
    poisoned: bool,
}

impl PluginInstance {
    /// Instantiates the plugin in a fresh store.
    pub async fn new(pre: &StrategyPre<HostState>, shared: Arc<RunShared>) -> Result<Self, SandboxError> {
        let scope = CallScope::new(shared.egress.limits());
        let mut store = Store::new(pre.engine(), HostState::new(shared.clone(), scope.clone()));
        store.limiter(|s| &mut s.limits);
        store.set_hostcall_fuel(shared.limits.max_hostcall_bytes);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if state.cpu_ticks_left == 0 {
                Ok(UpdateDeadline::Interrupt)
            } else {
                state.cpu_ticks_left -= 1;
                // Yield so a busy plugin never starves the other workers.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.data_mut().cpu_ticks_left = shared.limits.cpu_ticks();
        store.set_epoch_deadline(1);
        let timeout = shared.limits.lifecycle_timeout;
        let strategy = match tokio::time::timeout(timeout, pre.instantiate_async(&mut store)).await {
            Ok(Ok(strategy)) => strategy,
            Ok(Err(e)) => {
                let tail = store.data().output_tail(2048);
                return Err(SandboxError::Instantiate(format!("{e:?}{}", tail_suffix(&tail))));
            }
            Err(_) => return Err(SandboxError::Instantiate(format!("instantiation took longer than {timeout:?}"))),
        };
        Ok(PluginInstance { store, strategy, scope, shared, poisoned: false })
    }

    /// Whether the instance may still be called. `false` after a trap or a
    /// timeout: drop it and create a new one.
    pub fn is_usable(&self) -> bool {
        !self.poisoned
    }

    fn begin(&mut self, item: Option<&str>, deadline: Option<Instant>) {
        self.scope.begin(item, deadline);
        self.store.data().output.begin_call();
        self.store.data_mut().limits.memory_refused = None;
        self.store.data_mut().cpu_ticks_left = self.shared.limits.cpu_ticks();
        self.store.set_epoch_deadline(1);
    }

    fn finish<T>(
        &mut self,
        timeout: Duration,
        result: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ) -> CallOutcome<T> {
        self.store.data().output.end_call();
        let exchanges = self.scope.finish();
        let result = match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                self.poisoned = true;
                Err(self.classify(&e))
            }
            Err(_) => {
                self.poisoned = true;
                Err(CallFailure::Timeout(timeout))
            }
        };
        CallOutcome { result, exchanges }
    }

    fn classify(&self, e: &wasmtime::Error) -> CallFailure {
        if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
            return CallFailure::CpuLimit(self.shared.limits.max_cpu_per_call);
        }
        if let Some(limit) = e.downcast_ref::<StateLimitError>() {
            return CallFailure::StateLimit(limit.to_string());
        }
        if e.chain().any(|cause| cause.to_string().contains(HOSTCALL_FUEL_EXHAUSTED)) {
            return CallFailure::TooMuchData(self.shared.limits.max_hostcall_bytes);
        }
        let tail = self.store.data().output_tail(2048);
        let head = match e.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{e}"),
        };
        let oom = match self.store.data().limits.memory_refused {
            Some(wanted) => format!(
                "out of memory: growing linear memory to {} MiB was refused (limit {} MiB); ",
                wanted >> 20,
                self.shared.limits.max_memory_bytes >> 20
            ),
            None => String::new(),
        };
        CallFailure::Trap(format!("{oom}{head}{}", tail_suffix(&tail)))
    }

    /// Calls `prepare(config)`.
    pub async fn prepare(&mut self) -> CallOutcome<Result<(), StrategyError>> {
        let timeout = self.shared.limits.lifecycle_timeout;
        self.begin(None, Some(Instant::now() + timeout));
        let config = self.shared.config.clone();
        let call = self.strategy.batchllm_strategy_llm_strategy().call_prepare(&mut self.store, &config);
        let result = tokio::time::timeout(timeout, call).await;
        let mut outcome = self.finish(timeout, result);
        // Only ever printed (the run stops with it).
        if let Ok(Err(error)) = &mut outcome.result {
            error.message = printable(&error.message).into_owned();
        }
        outcome
    }

    /// Calls `execute` for one attempt. `deadline` bounds the plugin's HTTP
    /// requests; the call itself gets [`CALL_GRACE`] more, so the plugin can
    /// still translate an HTTP timeout into a classified error.
    pub async fn execute(
        &mut self,
        item: &Item,
        attempt: Attempt,
        state: &[(String, String)],
        deadline: Instant,
    ) -> CallOutcome<Result<Success, StrategyError>> {
        let timeout = deadline.saturating_duration_since(Instant::now()) + CALL_GRACE;
        self.begin(Some(&item.id), Some(deadline));
        let call = self.strategy.batchllm_strategy_llm_strategy().call_execute(&mut self.store, item, attempt, state);
        let result = tokio::time::timeout(timeout, call).await;
        let mut outcome = self.finish(timeout, result);
        let max = self.shared.limits.max_output_bytes;
        if let Ok(Ok(success)) = &outcome.result
            && success.output.len() > max
        {
            outcome.result = Err(CallFailure::OutputTooLarge(success.output.len(), max));
        }
        outcome
    }

    /// Calls `on-error` after a failed attempt.
    pub async fn on_error(
        &mut self,
        item: &Item,
        error: &StrategyError,
        attempt: Attempt,
        state: &[(String, String)],
        deadline: Instant,
    ) -> CallOutcome<Vec<StateChange>> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.begin(Some(&item.id), Some(deadline));
        let call =
            self.strategy.batchllm_strategy_llm_strategy().call_on_error(&mut self.store, item, error, attempt, state);
        let result = tokio::time::timeout(timeout, call).await;
        let mut outcome = self.finish(timeout, result);
        // Changes that would take the item's state over its limits are
        // refused as a whole; the item keeps the state it had.
        if let Ok(changes) = &outcome.result
            && let Err(limit) = check_retry_changes(&self.shared.limits.retry_state, state, changes)
        {
            outcome.result = Err(CallFailure::StateLimit(limit.to_string()));
        }
        outcome
    }

    /// Calls `cleanup`.
    pub async fn cleanup(&mut self) -> CallOutcome<Result<(), String>> {
        let timeout = self.shared.limits.lifecycle_timeout;
        self.begin(None, Some(Instant::now() + timeout));
        let call = self.strategy.batchllm_strategy_llm_strategy().call_cleanup(&mut self.store);
        let result = tokio::time::timeout(timeout, call).await;
        let mut outcome = self.finish(timeout, result);
        // Only ever logged.
        if let Ok(Err(message)) = &mut outcome.result {
            *message = printable(message).into_owned();
        }
        outcome
    }
}

fn tail_suffix(tail: &str) -> String {
    let tail = tail.trim();
    if tail.is_empty() { String::new() } else { format!("; plugin output: {}", printable(tail)) }
}
