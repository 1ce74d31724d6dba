//! One worker's life: take an item, run its attempts, produce its record.
//!
//! Before every attempt (retries included) the item passes the run's gates:
//! abort and deadlines, the scope's coordinated cooldown, then the RPM/TPM
//! buckets. After a failure the host's retry policy decides; the plugin's
//! `on-error` may change the retry state; the wait is cut short by an abort
//! or a deadline, so no attempt starts after either.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchllm_bindings::StrategyPre;
use batchllm_bindings::types::{Attempt, Item, StrategyError, Success};
use rand::Rng;
use serde_json::Value;
use serde_json::value::RawValue;

use super::FailureClass;
use super::admission::Admission;
use super::control::{AbortReason, RunControl};
use super::cooldown::Coordinator;
use super::estimate::estimate_tokens;
use super::learned::LearnedLimits;
use super::retry::{Decision, FailureCounts, RetryPolicy};
use super::signals::reconcile;
use crate::egress::Exchange;
use crate::input::Job;
use crate::results::{
    Fingerprint, HostBlock, ItemStatus, ProviderResponse, ResultError, ResultRecord, RunIdentity, body_json,
    body_value, line_id, null_json, raw_json,
};
use crate::sandbox::{CallFailure, HostState, PluginInstance, RunShared, SandboxError};
use crate::usage::TokenUsage;

/// The scope of a plugin that reported a rate limit without any HTTP the
/// host saw (e.g. a plugin with its own transport, or the mock plugin).
const NO_SCOPE: &str = "-";

/// Per-item time and retry settings.
#[derive(Debug, Clone)]
pub struct ItemSettings {
    pub retry: RetryPolicy,
    /// Limit on one attempt (plugin CPU and HTTP together).
    pub attempt_timeout: Duration,
    /// Limit on the whole item: admission waits, cooldowns, backoff, attempts.
    pub item_timeout: Option<Duration>,
    /// Output tokens charged to the TPM bucket when a job names no maximum.
    pub default_max_output_tokens: u64,
}

/// What every worker of a run shares.
#[derive(Debug)]
pub struct RunContext {
    pub settings: ItemSettings,
    pub coordinator: Coordinator,
    pub admission: Admission,
    /// Budgets learned from rate-limit headers (used when no --rpm is set).
    pub learned: Option<LearnedLimits>,
    pub control: RunControl,
    /// Failure classes that abort the run.
    pub fail_fast: Vec<super::FailureClass>,
    /// The plugin and configuration digests stamped on every record.
    pub identity: RunIdentity,
    /// Stop the run once this many tokens (input + output) are used.
    pub max_total_tokens: Option<u64>,
    /// Tokens used so far in this run.
    pub tokens_used: std::sync::atomic::AtomicU64,
    /// Prices for the cost of each record.
    pub prices: crate::cost::PriceTable,
    /// The plugin configuration's `model`, for items that name none.
    pub default_model: Option<String>,
    /// Stop the run once this many dollars are spent.
    pub max_cost: Option<f64>,
    /// Micro-dollars spent so far in this run.
    pub micro_dollars: std::sync::atomic::AtomicU64,
    /// `--events` output.
    pub events: super::events::EventLog,
    /// Live counters for `/metrics`.
    pub metrics: super::metrics::Metrics,
    /// Items waiting before their next attempt (progress display).
    pub retrying: std::sync::atomic::AtomicU64,
    /// The configured RPM/TPM limits (progress display).
    pub admission_limits: super::AdmissionLimits,
    /// `--schema`: every output must match it.
    pub schema: Option<Arc<crate::schema::OutputSchema>>,
    /// Ids of items about to be sent, for at-most-once after a crash.
    pub journal: crate::results::Journal,
}

impl RunContext {
    /// Aborts the run (the first reason wins) and records the event.
    pub fn abort(&self, reason: super::AbortReason) {
        let event = serde_json::json!({ "reason": reason.message() });
        if self.control.abort(reason) {
            self.events.emit("aborted", event);
        }
    }
}

/// A worker: owns at most one plugin instance and reuses it across items
/// until it traps or times out.
pub struct Worker {
    pre: StrategyPre<HostState>,
    shared: Arc<RunShared>,
    ctx: Arc<RunContext>,
    instance: Option<PluginInstance>,
}

/// A failed attempt, after reconciling the plugin's view with the host's.
#[derive(Debug, Clone)]
struct AttemptFailure {
    class: FailureClass,
    message: String,
    http_status: Option<u16>,
    server_wait: Option<Duration>,
    body: Option<Box<RawValue>>,
    request_id: Option<String>,
}

/// Why an item stops without a further attempt.
enum Stop {
    /// It ends with this failure.
    Fail(AttemptFailure),
    /// Hard stop (second Ctrl-C): it ends without a record.
    Vanish,
}

/// Everything learnt about an item across its attempts.
#[derive(Debug, Default)]
struct Progress {
    attempts: u32,
    counts: FailureCounts,
    usage: TokenUsage,
    state: BTreeMap<String, String>,
    /// The quota scope (`host:port`) the item's requests go to, once seen.
    scope: Option<String>,
    last: Option<AttemptFailure>,
}

impl Worker {
    /// A worker for one plugin; `instance` may be a ready one (from `prepare`).
    pub fn new(
        pre: StrategyPre<HostState>,
        shared: Arc<RunShared>,
        ctx: Arc<RunContext>,
        instance: Option<PluginInstance>,
    ) -> Self {
        Worker { pre, shared, ctx, instance }
    }

    /// Gives up the worker's instance (for `cleanup`).
    pub fn into_instance(self) -> Option<PluginInstance> {
        self.instance.filter(PluginInstance::is_usable)
    }

    async fn instance(&mut self) -> Result<&mut PluginInstance, SandboxError> {
        if !self.instance.as_ref().is_some_and(PluginInstance::is_usable) {
            // Free the pool slot of a discarded instance before taking another.
            self.instance = None;
            self.instance = Some(PluginInstance::new(&self.pre, self.shared.clone()).await?);
        }
        self.instance.as_mut().ok_or_else(|| SandboxError::Instantiate("no instance".into()))
    }

    /// Runs every attempt of `job` and returns its terminal record, priced;
    /// `None` only on a hard stop (the item is left for a re-run).
    pub async fn run(&mut self, job: Job) -> Option<ResultRecord> {
        let mut record = self.run_attempts(&job).await?;
        let model = item_model(&job, record.batchllm.metadata.as_ref(), &self.ctx.default_model);
        record.batchllm.cost_usd = model.and_then(|m| self.ctx.prices.cost(&m, &record.batchllm.usage));
        Some(record)
    }

    async fn run_attempts(&mut self, job: &Job) -> Option<ResultRecord> {
        let started = Instant::now();
        let item_deadline = self.ctx.settings.item_timeout.map(|t| started + t);
        let item = to_wit_item(job);
        // Only the TPM bucket needs the estimate; skip the work without one.
        let estimate = if self.ctx.admission.is_limited() {
            estimate_tokens(job, self.ctx.settings.default_max_output_tokens)
        } else {
            0
        };
        let mut progress = Progress::default();
        loop {
            if let Err(stop) = self.admit(&progress, estimate, item_deadline).await {
                return finish(job, stop, &progress, started, &self.ctx.identity);
            }
            let failure = match self.attempt(&item, &mut progress, estimate, item_deadline).await {
                Ok(record_parts) => {
                    return Some(success_record(job, record_parts, &progress, started, &self.ctx.identity));
                }
                Err(Stop::Vanish) => return None,
                Err(Stop::Fail(failure)) => failure,
            };
            let unit = rand::rng().random::<f64>();
            let decision = self.ctx.settings.retry.decide(failure.class, progress.counts, failure.server_wait, unit);
            progress.last = Some(failure.clone());
            let wait_for = match decision {
                Decision::Retry(wait) => wait,
                Decision::GiveUp => {
                    return Some(failure_record(job, failure, &progress, started, &self.ctx.identity));
                }
            };
            let attempt = self.attempt_info(&progress, item_deadline);
            self.adapt(&item, &failure, attempt, &mut progress, item_deadline).await;
            let ctx = self.ctx.clone();
            ctx.retrying.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let waited = wait(&ctx, wait_for, item_deadline, &progress).await;
            ctx.retrying.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            if let Err(stop) = waited {
                return finish(job, stop, &progress, started, &self.ctx.identity);
            }
        }
    }

    fn attempt_info(&self, progress: &Progress, item_deadline: Option<Instant>) -> Attempt {
        let deadline = self.attempt_deadline(item_deadline);
        Attempt {
            number: progress.attempts,
            rate_limit_retries: progress.counts.rate_limits,
            time_left_ms: millis(deadline.saturating_duration_since(Instant::now())),
        }
    }

    fn attempt_deadline(&self, item_deadline: Option<Instant>) -> Instant {
        let mut deadline = Instant::now() + self.ctx.settings.attempt_timeout;
        for d in [item_deadline, self.ctx.control.batch_deadline].into_iter().flatten() {
            deadline = deadline.min(d);
        }
        deadline
    }

    /// The gates before an attempt: stop conditions, cooldown, RPM/TPM.
    async fn admit(&mut self, progress: &Progress, estimate: u64, item_deadline: Option<Instant>) -> Result<(), Stop> {
        let ctx = self.ctx.clone();
        check_stop(&ctx, progress, item_deadline)?;
        let cooldown = ctx.coordinator.admission_delay(progress.scope.as_deref());
        wait(&ctx, cooldown, item_deadline, progress).await?;
        if let Some(learned) = &ctx.learned {
            loop {
                let budget_wait = learned.delay(progress.scope.as_deref());
                if budget_wait.is_zero() {
                    break;
                }
                wait(&ctx, budget_wait, item_deadline, progress).await?;
            }
        }
        if ctx.admission.is_limited() {
            let give_up = async {
                tokio::select! {
                    _ = ctx.control.until_aborted() => {}
                    _ = ctx.control.until_hard_stop() => {}
                    _ = sleep_until_opt(item_deadline) => {}
                }
            };
            if !ctx.admission.acquire(estimate, give_up).await {
                check_stop(&ctx, progress, item_deadline)?;
            }
        }
        Ok(())
    }
}

/// Ends the item if the run was aborted or a deadline passed.
fn check_stop(ctx: &RunContext, progress: &Progress, item_deadline: Option<Instant>) -> Result<(), Stop> {
    let control = &ctx.control;
    if control.hard_stopped() {
        return Err(Stop::Vanish);
    }
    if let Some(reason) = control.aborted() {
        return Err(Stop::Fail(stop_failure(reason.class(), reason.message(), progress)));
    }
    if item_deadline.is_some_and(|d| Instant::now() >= d) {
        let message = format!("item deadline passed after {} attempt(s)", progress.attempts);
        return Err(Stop::Fail(stop_failure(FailureClass::DeadlineExceeded, message, progress)));
    }
    Ok(())
}

/// Sleeps `d`, unless an abort, a hard stop or the item deadline comes first.
async fn wait(ctx: &RunContext, d: Duration, item_deadline: Option<Instant>, progress: &Progress) -> Result<(), Stop> {
    if d.is_zero() {
        return check_stop(ctx, progress, item_deadline);
    }
    let control = &ctx.control;
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = control.until_aborted() => {}
        _ = control.until_hard_stop() => {}
        _ = sleep_until_opt(item_deadline) => {}
    }
    check_stop(ctx, progress, item_deadline)
}

impl Worker {
    /// One `execute` call, with failures classified and the scope's
    /// cooldown and token buckets told what happened.
    async fn attempt(
        &mut self,
        item: &Item,
        progress: &mut Progress,
        estimate: u64,
        item_deadline: Option<Instant>,
    ) -> Result<(Success, Vec<Exchange>), Stop> {
        if progress.attempts == 0
            && let Err(e) = self.ctx.journal.started(&item.id)
        {
            // Never send what could not be journaled: a crash would resend it.
            self.ctx.control.interrupt();
            return Err(Stop::Fail(host_failure(FailureClass::Other, e.to_string())));
        }
        progress.attempts += 1;
        let sent = Instant::now();
        let deadline = self.attempt_deadline(item_deadline);
        let attempt = self.attempt_info(progress, item_deadline);
        let state: Vec<(String, String)> = progress.state.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let ctx = self.ctx.clone();
        let instance = match self.instance().await {
            Ok(instance) => instance,
            Err(e) => {
                let failure = host_failure(FailureClass::PluginTrap, e.to_string());
                progress.counts.attempts += 1;
                return Err(Stop::Fail(failure));
            }
        };
        let permit = ctx.learned.as_ref().map(|l| l.start(progress.scope.as_deref()));
        let outcome = tokio::select! {
            outcome = instance.execute(item, attempt, &state, deadline) => Some(outcome),
            _ = ctx.control.until_cancelled() => None,
            _ = ctx.control.until_hard_stop() => None,
        };
        drop(permit);
        let Some(outcome) = outcome else {
            // The call was dropped mid-flight: the instance cannot be reused.
            self.instance = None;
            if ctx.control.hard_stopped() {
                return Err(Stop::Vanish);
            }
            // The request was sent and may have been answered (and billed):
            // the item is not sent again unless the user asks.
            let reason = ctx.control.aborted().map(AbortReason::message).unwrap_or_else(|| "run aborted".into());
            let message = format!(
                "{reason}; the in-flight attempt was cancelled and the provider may have answered it (--retry-failed sends it again)"
            );
            return Err(Stop::Fail(stop_failure(FailureClass::OutcomeUnknown, message, progress)));
        };
        let exchanges = outcome.exchanges;
        if let Some(learned) = &ctx.learned {
            learned.observe(&exchanges);
        }
        if let Some(scope) = exchanges.iter().rev().find(|e| !e.authority.is_empty()) {
            progress.scope = Some(scope.authority.clone());
        }
        let (result, usage) = match outcome.result {
            Ok(Ok(success)) => {
                let usage = success.usage.as_ref().map(TokenUsage::from).unwrap_or_default();
                (Ok(success), usage)
            }
            Ok(Err(error)) => {
                let (failure, usage) = plugin_failure(error, &exchanges);
                (Err(failure), usage)
            }
            Err(call) => (Err(call_failure(call, &exchanges)), TokenUsage::default()),
        };
        progress.usage.add(&usage);
        self.ctx.admission.reconcile(estimate, usage.total());
        if self.ctx.events.enabled() {
            let (outcome, class, status) = match &result {
                Ok(_) => ("ok", None, last_answer(&exchanges).and_then(|e| e.status)),
                Err(f) => ("failed", Some(f.class.code()), f.http_status),
            };
            self.ctx.events.emit(
                "attempt",
                serde_json::json!({
                    "item": item.id, "number": progress.attempts, "outcome": outcome, "class": class,
                    "http_status": status, "ms": sent.elapsed().as_secs_f64() * 1000.0,
                    "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                }),
            );
        }
        match result {
            Ok(success) => {
                self.ctx.coordinator.on_success(progress.scope.as_deref().unwrap_or(NO_SCOPE));
                match self.ctx.schema.as_ref().map(|s| s.check(&success.output)) {
                    Some(Err(message)) => {
                        // The provider answered, the answer is unusable: a
                        // validation failure, retried without backoff.
                        progress.counts.attempts += 1;
                        let last = last_answer(&exchanges);
                        Err(Stop::Fail(AttemptFailure {
                            class: FailureClass::InvalidResponse,
                            message,
                            http_status: last.and_then(|e| e.status),
                            server_wait: None,
                            body: success.response_body.as_deref().map(body_json),
                            request_id: last.and_then(|e| e.request_id().map(str::to_string)),
                        }))
                    }
                    _ => Ok((success, exchanges)),
                }
            }
            Err(failure) => {
                if failure.class == FailureClass::RateLimited {
                    progress.counts.rate_limits += 1;
                    let hint = self.ctx.settings.retry.server_wait(failure.server_wait);
                    let scope = progress.scope.as_deref().unwrap_or(NO_SCOPE);
                    let cooldown = self.ctx.coordinator.on_rate_limit(scope, sent, hint);
                    let hint_ms = hint.map(millis);
                    self.ctx
                        .events
                        .emit("rate_limited", serde_json::json!({"item": item.id, "scope": scope, "hint_ms": hint_ms}));
                    if let Some(d) = cooldown {
                        let fields = serde_json::json!({"scope": scope, "seconds": d.as_secs_f64()});
                        self.ctx.events.emit("cooldown_started", fields);
                    }
                } else {
                    progress.counts.attempts += 1;
                }
                Err(Stop::Fail(failure))
            }
        }
    }

    /// Lets the plugin adjust the retry state before the next attempt.
    async fn adapt(
        &mut self,
        item: &Item,
        failure: &AttemptFailure,
        attempt: Attempt,
        progress: &mut Progress,
        item_deadline: Option<Instant>,
    ) {
        let error = StrategyError {
            class: failure.class.to_wit(),
            message: failure.message.clone(),
            http_status: failure.http_status,
            retry_after_ms: failure.server_wait.map(millis),
            usage: None,
            response_body: failure.body.as_ref().map(|b| b.get().to_owned()),
        };
        let state: Vec<(String, String)> = progress.state.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let deadline = self.attempt_deadline(item_deadline);
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

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn finish(job: &Job, stop: Stop, progress: &Progress, started: Instant, id: &RunIdentity) -> Option<ResultRecord> {
    match stop {
        Stop::Vanish => None,
        Stop::Fail(failure) => Some(failure_record(job, failure, progress, started, id)),
    }
}

fn fingerprint(job: &Job, id: &RunIdentity) -> Fingerprint {
    Fingerprint { input: job.fingerprint.clone(), plugin: id.plugin.clone(), config: id.config.clone() }
}

/// A failure that ends the item without an attempt of its own, keeping the
/// last attempt's facts (status, body) when there was one.
fn stop_failure(class: FailureClass, message: String, progress: &Progress) -> AttemptFailure {
    match &progress.last {
        Some(last) => AttemptFailure {
            class,
            message: format!("{message}; last error: {} ({})", last.message, last.class),
            ..last.clone()
        },
        None => host_failure(class, message),
    }
}

/// The model an item ran on: what the plugin reported, else what the job
/// asked for, else the plugin's configured default.
fn item_model(job: &Job, metadata: Option<&Value>, default: &Option<String>) -> Option<String> {
    let reported = metadata.and_then(|m| m.get("model")).and_then(Value::as_str);
    let requested = job.params.get("model").and_then(Value::as_str);
    reported.or(requested).map(str::to_string).or_else(|| default.clone())
}

fn to_wit_item(job: &Job) -> Item {
    Item {
        id: job.id.clone(),
        prompt: job.prompt.clone(),
        params: serde_json::to_string(&job.params).unwrap_or_else(|_| "{}".into()),
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
        body: error.response_body.as_deref().map(body_json),
        request_id: last.and_then(|e| e.request_id().map(str::to_string)),
    };
    (failure, usage)
}

fn call_failure(call: CallFailure, exchanges: &[Exchange]) -> AttemptFailure {
    let class = match &call {
        CallFailure::Trap(_) => FailureClass::PluginTrap,
        CallFailure::CpuLimit(_) => FailureClass::PluginTimeout,
        // The call's wall clock covers the attempt's HTTP deadline plus a
        // grace period: a call still running after that is the plugin's doing.
        CallFailure::Timeout(_) => FailureClass::PluginTimeout,
        CallFailure::OutputTooLarge(..) | CallFailure::TooMuchData(_) | CallFailure::StateLimit(_) => {
            FailureClass::PluginOutputTooLarge
        }
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
    parts: (Success, Vec<Exchange>),
    progress: &Progress,
    started: Instant,
    id: &RunIdentity,
) -> ResultRecord {
    let (success, exchanges) = parts;
    let last = last_answer(&exchanges);
    let status_code = last.and_then(|e| e.status).unwrap_or(200);
    let body = success
        .response_body
        .as_deref()
        .map_or_else(|| raw_json(&serde_json::json!({ "output": success.output })), body_json);
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
            fingerprint: fingerprint(job, id),
            cost_usd: None,
        },
    }
}

fn failure_record(
    job: &Job,
    failure: AttemptFailure,
    progress: &Progress,
    started: Instant,
    id: &RunIdentity,
) -> ResultRecord {
    let response = failure.http_status.map(|status_code| ProviderResponse {
        status_code,
        request_id: failure.request_id.clone(),
        body: failure.body.clone().unwrap_or_else(null_json),
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
            fingerprint: fingerprint(job, id),
            cost_usd: None,
        },
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
