//! One worker's life: take an item, run its attempts, produce its record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchllm_bindings::StrategyPre;
use batchllm_bindings::types::{Attempt, Item, StrategyError, Success};
use rand::Rng;
use serde_json::Value;

use super::FailureClass;
use super::retry::{Decision, FailureCounts, RetryPolicy};
use super::signals::reconcile;
use crate::egress::Exchange;
use crate::input::Job;
use crate::results::{HostBlock, ItemStatus, ProviderResponse, ResultError, ResultRecord, body_value, line_id};
use crate::sandbox::{CallFailure, HostState, PluginInstance, RunShared, SandboxError};
use crate::usage::TokenUsage;

/// Per-item time and retry settings.
#[derive(Debug, Clone)]
pub struct ItemSettings {
    pub retry: RetryPolicy,
    /// Limit on one attempt (plugin CPU and HTTP together).
    pub attempt_timeout: Duration,
    /// Limit on the whole item: attempts, backoff and waits.
    pub item_timeout: Option<Duration>,
}

/// A worker: owns at most one plugin instance and reuses it across items
/// until it traps or times out.
pub struct Worker {
    pre: StrategyPre<HostState>,
    shared: Arc<RunShared>,
    settings: Arc<ItemSettings>,
    instance: Option<PluginInstance>,
}

/// A failed attempt, after reconciling the plugin's view with the host's.
#[derive(Debug, Clone)]
struct AttemptFailure {
    class: FailureClass,
    message: String,
    http_status: Option<u16>,
    server_wait: Option<Duration>,
    body: Option<Value>,
    request_id: Option<String>,
}

/// Everything learnt about an item across its attempts.
#[derive(Debug, Default)]
struct Progress {
    attempts: u32,
    counts: FailureCounts,
    usage: TokenUsage,
    state: BTreeMap<String, String>,
}

impl Worker {
    /// A worker for one plugin; `instance` may be a ready one (from `prepare`).
    pub fn new(
        pre: StrategyPre<HostState>,
        shared: Arc<RunShared>,
        settings: Arc<ItemSettings>,
        instance: Option<PluginInstance>,
    ) -> Self {
        Worker { pre, shared, settings, instance }
    }

    /// Gives up the worker's instance (for `cleanup`).
    pub fn into_instance(self) -> Option<PluginInstance> {
        self.instance.filter(PluginInstance::is_usable)
    }

    async fn instance(&mut self) -> Result<&mut PluginInstance, SandboxError> {
        if !self.instance.as_ref().is_some_and(PluginInstance::is_usable) {
            self.instance = Some(PluginInstance::new(&self.pre, self.shared.clone()).await?);
        }
        // Just ensured above.
        self.instance.as_mut().ok_or_else(|| SandboxError::Instantiate("no instance".into()))
    }

    /// Runs every attempt of `job` and returns its terminal record.
    pub async fn run(&mut self, job: Job) -> ResultRecord {
        let started = Instant::now();
        let item_deadline = self.settings.item_timeout.map(|t| started + t);
        let item = to_wit_item(&job);
        let mut progress = Progress::default();
        loop {
            progress.attempts += 1;
            let attempt_deadline = earliest(Instant::now() + self.settings.attempt_timeout, item_deadline);
            let attempt = Attempt {
                number: progress.attempts,
                rate_limit_retries: progress.counts.rate_limits,
                time_left_ms: millis(attempt_deadline.saturating_duration_since(Instant::now())),
            };
            let failure = match self.attempt(&item, attempt, &progress, attempt_deadline).await {
                Ok((success, exchanges)) => {
                    if let Some(u) = &success.usage {
                        progress.usage.add(&u.into());
                    }
                    return success_record(&job, success, &exchanges, &progress, started);
                }
                Err((failure, usage)) => {
                    progress.usage.add(&usage);
                    failure
                }
            };
            match failure.class {
                FailureClass::RateLimited => progress.counts.rate_limits += 1,
                _ => progress.counts.attempts += 1,
            }
            let unit = rand::rng().random::<f64>();
            let wait = match self.settings.retry.decide(failure.class, progress.counts, failure.server_wait, unit) {
                Decision::Retry(wait) => wait,
                Decision::GiveUp => return failure_record(&job, failure, &progress, started),
            };
            if item_deadline.is_some_and(|d| Instant::now() + wait >= d) {
                let failure = AttemptFailure {
                    class: FailureClass::Timeout,
                    message: format!(
                        "item deadline reached after {} attempts; last error: {}",
                        progress.attempts, failure.message
                    ),
                    ..failure
                };
                return failure_record(&job, failure, &progress, started);
            }
            self.adapt(
                &item,
                &failure,
                attempt,
                &mut progress,
                attempt_deadline.max(Instant::now() + Duration::from_secs(5)),
            )
            .await;
            tokio::time::sleep(wait).await;
        }
    }

    /// One `execute` call, with failures classified.
    async fn attempt(
        &mut self,
        item: &Item,
        attempt: Attempt,
        progress: &Progress,
        deadline: Instant,
    ) -> Result<(Success, Vec<Exchange>), (AttemptFailure, TokenUsage)> {
        let state: Vec<(String, String)> = progress.state.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let instance = match self.instance().await {
            Ok(instance) => instance,
            Err(e) => return Err((host_failure(FailureClass::PluginTrap, e.to_string()), TokenUsage::default())),
        };
        let outcome = instance.execute(item, attempt, &state, deadline).await;
        let exchanges = outcome.exchanges;
        match outcome.result {
            Ok(Ok(success)) => Ok((success, exchanges)),
            Ok(Err(error)) => Err(plugin_failure(error, &exchanges)),
            Err(call) => Err((call_failure(call, &exchanges), TokenUsage::default())),
        }
    }

    /// Lets the plugin adjust the retry state before the next attempt.
    async fn adapt(
        &mut self,
        item: &Item,
        failure: &AttemptFailure,
        attempt: Attempt,
        progress: &mut Progress,
        deadline: Instant,
    ) {
        let error = StrategyError {
            class: failure.class.to_wit(),
            message: failure.message.clone(),
            http_status: failure.http_status,
            retry_after_ms: failure.server_wait.map(millis),
            usage: None,
            response_body: failure.body.as_ref().map(Value::to_string),
        };
        let state: Vec<(String, String)> = progress.state.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let Ok(instance) = self.instance().await else { return };
        let outcome = instance.on_error(item, &error, attempt, &state, deadline).await;
        match outcome.result {
            Ok(changes) => {
                for (key, value) in changes {
                    match value {
                        Some(v) => progress.state.insert(key, v),
                        None => progress.state.remove(&key),
                    };
                }
            }
            Err(e) => tracing::warn!(item = %item.id, error = %e, "on-error failed; retrying with unchanged state"),
        }
    }
}

fn to_wit_item(job: &Job) -> Item {
    Item {
        id: job.id.clone(),
        prompt: job.prompt.clone(),
        params: Value::Object(job.params.clone()).to_string(),
        context: job.context.as_ref().map(Value::to_string),
        endpoint: job.endpoint.clone(),
    }
}

fn plugin_failure(error: StrategyError, exchanges: &[Exchange]) -> (AttemptFailure, TokenUsage) {
    let usage = error.usage.as_ref().map(TokenUsage::from).unwrap_or_default();
    let plugin_wait = error.retry_after_ms.map(Duration::from_millis);
    let r = reconcile(error.class.into(), plugin_wait, exchanges);
    let last = last_answer(exchanges);
    let failure = AttemptFailure {
        class: r.class,
        message: r.denied.map_or(error.message, |d| format!("egress denied: {d}")),
        http_status: error.http_status.or(last.and_then(|e| e.status)),
        server_wait: r.server_wait,
        body: error.response_body.as_deref().map(body_value),
        request_id: last.and_then(|e| e.request_id().map(str::to_string)),
    };
    (failure, usage)
}

fn call_failure(call: CallFailure, exchanges: &[Exchange]) -> AttemptFailure {
    let class = match &call {
        CallFailure::Trap(_) => FailureClass::PluginTrap,
        CallFailure::CpuLimit(_) => FailureClass::PluginTimeout,
        CallFailure::Timeout(_) => FailureClass::Timeout,
        CallFailure::OutputTooLarge(..) => FailureClass::PluginOutputTooLarge,
    };
    let r = reconcile(class, None, exchanges);
    // A trap stays a trap even if the plugin also saw a 429 before it died,
    // but the server's wait is still honoured.
    let class = if r.class == FailureClass::EgressDenied { r.class } else { class };
    AttemptFailure { server_wait: r.server_wait, ..host_failure(class, call.to_string()) }
}

fn host_failure(class: FailureClass, message: String) -> AttemptFailure {
    AttemptFailure { class, message, http_status: None, server_wait: None, body: None, request_id: None }
}

fn last_answer(exchanges: &[Exchange]) -> Option<&Exchange> {
    exchanges.iter().rev().find(|e| e.status.is_some())
}

fn success_record(
    job: &Job,
    success: Success,
    exchanges: &[Exchange],
    progress: &Progress,
    started: Instant,
) -> ResultRecord {
    let last = last_answer(exchanges);
    let status_code = last.and_then(|e| e.status).unwrap_or(200);
    let body =
        success.response_body.as_deref().map_or_else(|| serde_json::json!({ "output": success.output }), body_value);
    ResultRecord {
        id: line_id(&job.id),
        custom_id: job.id.clone(),
        response: Some(ProviderResponse {
            status_code,
            request_id: last.and_then(|e| e.request_id().map(str::to_string)),
            body,
        }),
        error: None,
        batchllm: HostBlock {
            status: ItemStatus::Succeeded,
            output: Some(success.output),
            attempts: progress.attempts,
            rate_limit_retries: progress.counts.rate_limits,
            usage: progress.usage,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            error_class: None,
            http_status: last.and_then(|e| e.status),
            metadata: success.metadata.as_deref().map(body_value),
            context: job.context.clone(),
            line: job.line,
        },
    }
}

fn failure_record(job: &Job, failure: AttemptFailure, progress: &Progress, started: Instant) -> ResultRecord {
    let response = failure.http_status.map(|status_code| ProviderResponse {
        status_code,
        request_id: failure.request_id.clone(),
        body: failure.body.clone().unwrap_or(Value::Null),
    });
    ResultRecord {
        id: line_id(&job.id),
        custom_id: job.id.clone(),
        response,
        error: Some(ResultError { code: failure.class, message: failure.message }),
        batchllm: HostBlock {
            status: ItemStatus::Failed,
            output: None,
            attempts: progress.attempts,
            rate_limit_retries: progress.counts.rate_limits,
            usage: progress.usage,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            error_class: Some(failure.class),
            http_status: failure.http_status,
            metadata: None,
            context: job.context.clone(),
            line: job.line,
        },
    }
}

fn earliest(a: Instant, b: Option<Instant>) -> Instant {
    b.map_or(a, |b| a.min(b))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
