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
//!
//! The calls take and return the host's own types ([`crate::model`]): each
//! goes to the exports of the contract version the plugin was built
//! against, converted by [`super::wit`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use batchllm_bindings::{v0_1, v0_2};
use wasmtime::{Store, Trap, UpdateDeadline};

use super::component::{ContractVersion, PluginPre};
use super::kv::{StateLimitError, check_retry_changes};
use super::output::printable;
use super::state::{HostState, RunShared};
use super::{SandboxError, wit};
use crate::egress::CallScope;
use crate::model::{Answer, AttemptInfo, CallFailure, CallOutcome, PluginError, PluginItem, RetryState, StateChange};

/// Extra wall-clock time a call gets beyond its HTTP deadline.
pub(super) const CALL_GRACE: Duration = Duration::from_millis(500);

/// wasmtime's message for exhausted hostcall fuel (its error type is private).
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// The exports of one instance, in its contract version.
enum Exports {
    V0_2(v0_2::Strategy),
    V0_1(v0_1::Strategy),
}

/// A plugin instance owned by one worker at a time.
pub struct PluginInstance {
    store: Store<HostState>,
    strategy: Exports,
    scope: CallScope,
    shared: Arc<RunShared>,
    poisoned: bool,
}

impl PluginInstance {
    /// Instantiates the plugin in a fresh store.
    pub async fn new(pre: &PluginPre, shared: Arc<RunShared>) -> Result<Self, SandboxError> {
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
        let instantiate = async {
            match pre {
                PluginPre::V0_2(pre) => pre.instantiate_async(&mut store).await.map(Exports::V0_2),
                PluginPre::V0_1(pre) => pre.instantiate_async(&mut store).await.map(Exports::V0_1),
            }
        };
        let strategy = match tokio::time::timeout(timeout, instantiate).await {
            Ok(Ok(strategy)) => strategy,
            Ok(Err(e)) => {
                let tail = store.data().output_tail(2048);
                return Err(SandboxError::Instantiate(format!("{e:?}{}", tail_suffix(&tail))));
            }
            Err(_) => return Err(SandboxError::Instantiate(format!("instantiation took longer than {timeout:?}"))),
        };
        Ok(PluginInstance { store, strategy, scope, shared, poisoned: false })
    }

    /// The contract version the plugin was built against.
    pub fn version(&self) -> ContractVersion {
        match self.strategy {
            Exports::V0_2(_) => ContractVersion::V0_2,
            Exports::V0_1(_) => ContractVersion::V0_1,
        }
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
    pub async fn prepare(&mut self) -> CallOutcome<Result<(), PluginError>> {
        let timeout = self.shared.limits.lifecycle_timeout;
        self.begin(None, Some(Instant::now() + timeout));
        let config = self.shared.config.clone();
        let (store, strategy) = (&mut self.store, &self.strategy);
        let call = async {
            Ok(match strategy {
                Exports::V0_2(s) => {
                    s.batchllm_strategy_llm_strategy().call_prepare(store, &config).await?.map_err(PluginError::from)
                }
                Exports::V0_1(s) => {
                    s.batchllm_strategy_llm_strategy().call_prepare(store, &config).await?.map_err(PluginError::from)
                }
            })
        };
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
        item: &PluginItem,
        attempt: &AttemptInfo,
        state: &RetryState,
        deadline: Instant,
    ) -> CallOutcome<Result<Answer, PluginError>> {
        let timeout = deadline.saturating_duration_since(Instant::now()) + CALL_GRACE;
        self.begin(Some(&item.id), Some(deadline));
        let state = wit::state(state);
        let (store, strategy) = (&mut self.store, &self.strategy);
        let call = async {
            Ok(match strategy {
                Exports::V0_2(s) => {
                    let (item, attempt) = (wit::v0_2::item(item), wit::v0_2::attempt(attempt));
                    let result = s.batchllm_strategy_llm_strategy().call_execute(store, &item, attempt, &state).await?;
                    result.map(Answer::from).map_err(PluginError::from)
                }
                Exports::V0_1(s) => {
                    let (item, attempt) = (wit::v0_1::item(item), wit::v0_1::attempt(attempt));
                    let result = s.batchllm_strategy_llm_strategy().call_execute(store, &item, attempt, &state).await?;
                    result.map(Answer::from).map_err(PluginError::from)
                }
            })
        };
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
        item: &PluginItem,
        error: &PluginError,
        attempt: &AttemptInfo,
        state: &RetryState,
        deadline: Instant,
    ) -> CallOutcome<Vec<StateChange>> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.begin(Some(&item.id), Some(deadline));
        let state = wit::state(state);
        let (store, strategy) = (&mut self.store, &self.strategy);
        let call = async {
            match strategy {
                Exports::V0_2(s) => {
                    let (item, attempt) = (wit::v0_2::item(item), wit::v0_2::attempt(attempt));
                    let error = wit::v0_2::error(error);
                    s.batchllm_strategy_llm_strategy().call_on_error(store, &item, &error, attempt, &state).await
                }
                Exports::V0_1(s) => {
                    let (item, attempt) = (wit::v0_1::item(item), wit::v0_1::attempt(attempt));
                    let error = wit::v0_1::error(error);
                    s.batchllm_strategy_llm_strategy().call_on_error(store, &item, &error, attempt, &state).await
                }
            }
        };
        let result = tokio::time::timeout(timeout, call).await;
        let mut outcome = self.finish(timeout, result);
        // Changes that would take the item's state over its limits are
        // refused as a whole; the item keeps the state it had.
        if let Ok(changes) = &outcome.result
            && let Err(limit) = check_retry_changes(&self.shared.limits.retry_state, &state, changes)
        {
            outcome.result = Err(CallFailure::StateLimit(limit.to_string()));
        }
        outcome
    }

    /// Calls `cleanup`.
    pub async fn cleanup(&mut self) -> CallOutcome<Result<(), String>> {
        let timeout = self.shared.limits.lifecycle_timeout;
        self.begin(None, Some(Instant::now() + timeout));
        let (store, strategy) = (&mut self.store, &self.strategy);
        let call = async {
            match strategy {
                Exports::V0_2(s) => s.batchllm_strategy_llm_strategy().call_cleanup(store).await,
                Exports::V0_1(s) => s.batchllm_strategy_llm_strategy().call_cleanup(store).await,
            }
        };
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
