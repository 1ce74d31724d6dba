//! The seam between the engine and whatever answers its calls.
//!
//! The engine needs two things from a plugin instance: `execute` one attempt
//! and, after a failure, `on-error`. [`Executor`] is exactly that;
//! [`ExecutorFactory`] makes a fresh one when a call left the last one
//! unusable (a trap, a timeout, a dropped call). The real implementation is
//! the sandboxed plugin ([`PluginFactory`]); the engine's tests use a
//! scripted fake, so retry, cooldown, admission, deadline and stop paths run
//! in milliseconds on paused time.

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use crate::model::{Answer, AttemptInfo, CallOutcome, PluginError, PluginItem, RetryState, StateChange};
use crate::sandbox::{PluginInstance, PluginPre, RunShared, SandboxError};

/// One plugin instance, as the engine drives it.
pub trait Executor: Send + 'static {
    /// Whether the executor may be called again (false after a trap or a
    /// timeout: the engine then asks the factory for a new one).
    fn is_usable(&self) -> bool;

    /// One attempt. `deadline` bounds the attempt's HTTP; the call may take
    /// a short grace beyond it to classify a timeout.
    fn execute(
        &mut self,
        item: &PluginItem,
        attempt: &AttemptInfo,
        state: &RetryState,
        deadline: Instant,
    ) -> impl Future<Output = CallOutcome<Result<Answer, PluginError>>> + Send;

    /// Lets the plugin adjust the item's retry state after a failure.
    fn on_error(
        &mut self,
        item: &PluginItem,
        error: &PluginError,
        attempt: &AttemptInfo,
        state: &RetryState,
        deadline: Instant,
    ) -> impl Future<Output = CallOutcome<Vec<StateChange>>> + Send;
}

/// Makes executors.
pub trait ExecutorFactory: Send + Sync + 'static {
    type Executor: Executor;

    /// A fresh executor.
    fn create(&self) -> impl Future<Output = Result<Self::Executor, SandboxError>> + Send;
}

/// Instances of a loaded plugin.
#[derive(Clone)]
pub struct PluginFactory {
    pub pre: PluginPre,
    pub shared: Arc<RunShared>,
}

impl ExecutorFactory for PluginFactory {
    type Executor = PluginInstance;

    async fn create(&self) -> Result<PluginInstance, SandboxError> {
        PluginInstance::new(&self.pre, self.shared.clone()).await
    }
}

impl Executor for PluginInstance {
    fn is_usable(&self) -> bool {
        PluginInstance::is_usable(self)
    }

    async fn execute(
        &mut self,
        item: &PluginItem,
        attempt: &AttemptInfo,
        state: &RetryState,
        deadline: Instant,
    ) -> CallOutcome<Result<Answer, PluginError>> {
        PluginInstance::execute(self, item, attempt, state, deadline.into_std()).await
    }

    async fn on_error(
        &mut self,
        item: &PluginItem,
        error: &PluginError,
        attempt: &AttemptInfo,
        state: &RetryState,
        deadline: Instant,
    ) -> CallOutcome<Vec<StateChange>> {
        PluginInstance::on_error(self, item, error, attempt, state, deadline.into_std()).await
    }
}
