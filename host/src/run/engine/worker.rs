//! One worker's life: take an item, run its attempts, produce its record.
//!
//! Before every attempt (retries included) the item passes the run's gates
//! ([`crate::run::gate`]): the scope's cooldown, the learned budget and the
//! RPM/TPM buckets, checked together. An attempt is three steps: *call* the
//! executor (dropped if the run must drop calls), *classify* what came back
//! (the plugin's verdict corrected by what the host saw on the wire, then
//! the output schema), *observe* it (gates, counters, events). After a
//! failure the retry policy decides; the plugin's `on-error` may change the
//! retry state; every wait ends at once on a stop, an abort or the item's
//! deadline, so no attempt starts after any of them.
//!
//! An item ends in one of three ways: a record (success or failure); no
//! record, when a stop came while it was not on the wire (it runs again on
//! resume); or `outcome_unknown`, when its call was dropped on the wire.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::context::{JournalError, RunContext};
use super::executor::{Executor, ExecutorFactory};
use super::record;
use crate::model::{
    Answer, AttemptInfo, CallFailure, CallOutcome, Exchange, FailureClass, Job, PluginError, PluginItem, ResultRecord,
    RetryState, TokenUsage, body_json,
};
use crate::run::gate::{LimitKind, NO_SCOPE, RateLimitEffect, Ticket, Verdict};
use crate::run::observe::Event;
use crate::run::policy::estimate::estimate_tokens;
use crate::run::policy::later;
use crate::run::policy::reconcile::reconcile;
use crate::run::policy::retry::{Decision, FailureCounts};

/// A failed attempt, after reconciling the plugin's view with the host's.
#[derive(Debug, Clone)]
pub(super) struct AttemptFailure {
    pub class: FailureClass,
    pub message: String,
    pub http_status: Option<u16>,
    pub server_wait: Option<Duration>,
    pub body: Option<Box<RawValue>>,
    pub request_id: Option<String>,
}

impl AttemptFailure {
    /// A failure the host decided, without a provider answer.
    pub(super) fn host(class: FailureClass, message: String) -> Self {
        AttemptFailure { class, message, http_status: None, server_wait: None, body: None, request_id: None }
    }
}

/// Why an item stops without a further attempt.
#[derive(Debug)]
enum Stop {
    /// It ends with this failure.
    Fail(AttemptFailure),
    /// It ends without a record (a stop while it was not on the wire).
    Vanish,
}

/// Everything learnt about an item across its attempts.
#[derive(Debug, Default)]
pub(super) struct Progress {
    pub attempts: u32,
    pub counts: FailureCounts,
    pub usage: TokenUsage,
    pub state: RetryState,
    /// The quota scope (`host:port`) the item's requests go to, once seen.
    pub scope: Option<String>,
    pub last: Option<AttemptFailure>,
}

/// What one call returned, or that it was dropped on the wire.
enum Called {
    Answered(CallOutcome<Result<Answer, PluginError>>),
    /// The executor could not be created: nothing was sent.
    NoExecutor(AttemptFailure),
    Dropped,
}

/// An attempt's result after classification.
struct Classified {
    result: Result<Answer, AttemptFailure>,
    exchanges: Vec<Exchange>,
    usage: TokenUsage,
}

/// A worker: owns at most one executor and reuses it across items until it
/// becomes unusable.
pub struct Worker<F: ExecutorFactory> {
    factory: Arc<F>,
    ctx: Arc<RunContext>,
    executor: Option<F::Executor>,
}

impl<F: ExecutorFactory> Worker<F> {
    /// A worker; `executor` may be a ready one (the one `prepare` ran on).
    pub fn new(factory: Arc<F>, ctx: Arc<RunContext>, executor: Option<F::Executor>) -> Self {
        Worker { factory, ctx, executor }
    }

    /// Gives up the worker's executor, if still usable (for `cleanup`).
    pub fn into_executor(self) -> Option<F::Executor> {
        self.executor.filter(Executor::is_usable)
    }

    /// Forgets the executor (after a panic left it mid-call).
    pub fn reset(&mut self) {
        self.executor = None;
    }

    async fn executor(&mut self) -> Result<&mut F::Executor, AttemptFailure> {
        if !self.executor.as_ref().is_some_and(Executor::is_usable) {
            // Free the slot of a discarded instance before taking another.
            self.executor = None;
            let created = self.factory.create().await;
            self.executor = Some(
                created.map_err(|e| AttemptFailure::host(FailureClass::PluginTrap, crate::model::error_chain(&e)))?,
            );
        }
        self.executor
            .as_mut()
            .ok_or_else(|| AttemptFailure::host(FailureClass::PluginTrap, "no plugin instance".into()))
    }

    /// Runs every attempt of `job` and returns its terminal record, priced;
    /// `None` when a stop came while the item was not on the wire.
    pub async fn run(&mut self, job: Job) -> Option<ResultRecord> {
        let mut record = self.run_attempts(&job).await?;
        let model = item_model(&job, record.batchllm.metadata.as_ref(), &self.ctx.pricing.default_model);
        record.batchllm.cost_usd = model.and_then(|m| self.ctx.pricing.prices.cost(&m, &record.batchllm.usage));
        Some(record)
    }

    async fn run_attempts(&mut self, job: &Job) -> Option<ResultRecord> {
        let started = Instant::now();
        let ctx = self.ctx.clone();
        let item_deadline = ctx.settings.item_timeout.map(|t| later(started, t));
        let item = plugin_item(job);
        // Only the TPM bucket needs the estimate; skip the work without one.
        let estimate =
            if ctx.gates.is_limited() { estimate_tokens(job, ctx.settings.default_max_output_tokens) } else { 0 };
        let mut progress = Progress::default();
        let finish = |stop: Stop, progress: &Progress| match stop {
            Stop::Vanish => None,
            Stop::Fail(failure) => Some(record::failure(job, failure, progress, started, &ctx.identity)),
        };
        loop {
            let ticket = match admit(&ctx, &progress, estimate, item_deadline).await {
                Ok(ticket) => ticket,
                Err(stop) => return finish(stop, &progress),
            };
            match ctx.journal.started(&item.id).await {
                Ok(()) => {}
                Err(JournalError::Refused(why)) => {
                    // Another host owns the item now: it is not sent here.
                    tracing::debug!(item = %item.id, %why, "not sent");
                    return finish(Stop::Vanish, &progress);
                }
                Err(JournalError::Failed(e)) => {
                    // Never send what could not be journaled: a crash would resend it.
                    ctx.control.fail(e);
                    return finish(Stop::Vanish, &progress);
                }
            }
            let failure = match self.attempt(&item, &mut progress, ticket, item_deadline).await {
                Ok(answer) => return Some(record::success(job, answer, &progress, started, &ctx.identity)),
                Err(Stop::Fail(failure)) => failure,
                Err(stop) => return finish(stop, &progress),
            };
            let unit = rand::rng().random::<f64>();
            let decision = ctx.settings.retry.decide(failure.class, progress.counts, failure.server_wait, unit);
            progress.last = Some(failure.clone());
            let wait_for = match decision {
                Decision::Retry(wait) => wait,
                Decision::GiveUp => return finish(Stop::Fail(failure), &progress),
            };
            // Off the wire with a definite answer: a crash from here on must
            // not make this item `outcome_unknown`.
            if let Err(JournalError::Failed(e)) = ctx.journal.settled(&item.id).await {
                ctx.control.fail(e);
            }
            self.adapt(&item, &failure, &mut progress, item_deadline).await;
            ctx.observe.retrying.fetch_add(1, Ordering::Relaxed);
            let waited = wait(&ctx, wait_for, item_deadline, &progress).await;
            ctx.observe.retrying.fetch_sub(1, Ordering::Relaxed);
            if let Err(stop) = waited {
                return finish(stop, &progress);
            }
        }
    }

    fn attempt_info(&self, progress: &Progress, item_deadline: Option<Instant>) -> (AttemptInfo, Instant) {
        let now = Instant::now();
        let mut deadline = later(now, self.ctx.settings.attempt_timeout);
        if let Some(d) = item_deadline {
            deadline = deadline.min(d);
        }
        let info = AttemptInfo {
            number: progress.attempts,
            rate_limit_retries: progress.counts.rate_limits,
            time_left: deadline.saturating_duration_since(now),
        };
        (info, deadline)
    }

    /// One attempt: call, classify, observe.
    async fn attempt(
        &mut self,
        item: &PluginItem,
        progress: &mut Progress,
        ticket: Ticket<'_>,
        item_deadline: Option<Instant>,
    ) -> Result<(Answer, Vec<Exchange>), Stop> {
        progress.attempts += 1;
        let (info, deadline) = self.attempt_info(progress, item_deadline);
        let called = self.call(item, &info, &progress.state, deadline).await;
        let outcome = match called {
            Called::Answered(outcome) => outcome,
            Called::NoExecutor(failure) => {
                progress.counts.attempts += 1;
                drop(ticket);
                return Err(Stop::Fail(failure));
            }
            Called::Dropped => {
                drop(ticket);
                return Err(Stop::Fail(self.dropped_failure(progress)));
            }
        };
        if let Some(scope) = outcome.exchanges.iter().rev().find(|e| !e.authority.is_empty()) {
            progress.scope = Some(scope.authority.clone());
        }
        let classified = classify(outcome, self.ctx.schema.as_deref());
        let ctx = self.ctx.clone();
        observe(&ctx, item, progress, &classified, ticket).await;
        match classified.result {
            Ok(answer) => Ok((answer, classified.exchanges)),
            Err(failure) => Err(Stop::Fail(failure)),
        }
    }

    /// Calls the executor, unless the run drops calls first.
    async fn call(&mut self, item: &PluginItem, info: &AttemptInfo, state: &RetryState, deadline: Instant) -> Called {
        let ctx = self.ctx.clone();
        let executor = match self.executor().await {
            Ok(executor) => executor,
            Err(failure) => return Called::NoExecutor(failure),
        };
        let outcome = tokio::select! {
            outcome = executor.execute(item, info, state, deadline) => Some(outcome),
            () = ctx.control.until_calls_dropped() => None,
        };
        match outcome {
            Some(outcome) => Called::Answered(outcome),
            None => {
                // Dropped mid-call: the instance cannot be reused.
                self.executor = None;
                Called::Dropped
            }
        }
    }

    /// The failure of an item whose call was dropped on the wire: the
    /// provider may have answered (and billed) it, so it is not sent again
    /// unless the user asks.
    fn dropped_failure(&self, progress: &Progress) -> AttemptFailure {
        let control = &self.ctx.control;
        let why = match control.aborted() {
            Some(reason) => reason.message(),
            None => "the run was stopped".into(),
        };
        let message = format!(
            "{why}; the attempt on the wire was cancelled and the provider may have answered it (--retry-failed sends it again)"
        );
        stop_failure(FailureClass::OutcomeUnknown, message, progress)
    }

    /// Lets the plugin adjust the retry state before the next attempt.
    async fn adapt(
        &mut self,
        item: &PluginItem,
        failure: &AttemptFailure,
        progress: &mut Progress,
        item_deadline: Option<Instant>,
    ) {
        let error = PluginError {
            class: failure.class,
            message: failure.message.clone(),
            http_status: failure.http_status,
            retry_after: failure.server_wait,
            usage: None,
            response_body: failure.body.as_ref().map(|b| b.get().to_owned()),
        };
        let (info, deadline) = self.attempt_info(progress, item_deadline);
        let ctx = self.ctx.clone();
        let Ok(executor) = self.executor().await else { return };
        let outcome = tokio::select! {
            outcome = executor.on_error(item, &error, &info, &progress.state, deadline) => outcome,
            // A stop while the plugin thinks: the retry will not happen anyway.
            () = ctx.control.until_wait_ends() => return,
        };
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

/// Tells the gates, the counters and the event log what happened.
async fn observe(
    ctx: &RunContext,
    item: &PluginItem,
    progress: &mut Progress,
    classified: &Classified,
    ticket: Ticket<'_>,
) {
    progress.usage.add(&classified.usage);
    let sent = ticket.sent();
    let verdict = match &classified.result {
        Ok(_) => Verdict::Success,
        Err(f) if f.class == FailureClass::RateLimited => {
            Verdict::RateLimited { hint: f.server_wait, kind: LimitKind::from_message(&f.message) }
        }
        Err(_) => Verdict::Failed,
    };
    let now = Instant::now();
    let scope = progress.scope.as_deref();
    let changes = ticket.settle(scope, verdict, &classified.exchanges, classified.usage.total(), now).await;
    if let Some(estimate) = changes.estimate {
        let scope = scope.unwrap_or(NO_SCOPE);
        ctx.observe.event(|| Event::RateEstimate {
            scope,
            requests: estimate.requests,
            tokens: estimate.tokens,
            window_seconds: estimate.window.map(|w| w.as_secs_f64()),
        });
    }
    ctx.observe.event(|| {
        let (outcome, class, status) = match &classified.result {
            Ok(_) => ("ok", None, last_answer(&classified.exchanges).and_then(|e| e.status)),
            Err(f) => ("failed", Some(f.class), f.http_status),
        };
        Event::Attempt {
            item: &item.id,
            number: progress.attempts,
            outcome,
            class,
            http_status: status,
            ms: (now - sent).as_secs_f64() * 1000.0,
            input_tokens: classified.usage.input_tokens,
            output_tokens: classified.usage.output_tokens,
        }
    });
    let Err(failure) = &classified.result else { return };
    if failure.class != FailureClass::RateLimited {
        progress.counts.attempts += 1;
        return;
    }
    progress.counts.rate_limits += 1;
    let scope = progress.scope.as_deref().unwrap_or(NO_SCOPE);
    let hint_ms = failure.server_wait.map(millis);
    ctx.observe.event(|| Event::RateLimited { item: &item.id, scope, hint_ms });
    if let Some(RateLimitEffect::Started(d)) = changes.rate_limit {
        ctx.observe.event(|| Event::CooldownStarted { scope, seconds: d.as_secs_f64() });
    }
}

/// Waits for the gates; ends early on a stop, an abort or the deadline.
async fn admit<'a>(
    ctx: &'a RunContext,
    progress: &Progress,
    estimate: u64,
    item_deadline: Option<Instant>,
) -> Result<Ticket<'a>, Stop> {
    check_stop(ctx, progress, item_deadline)?;
    let give_up = async {
        tokio::select! {
            () = ctx.control.until_wait_ends() => {}
            () = sleep_until_opt(item_deadline) => {}
        }
    };
    match ctx.gates.admit(progress.scope.as_deref(), estimate, give_up).await {
        Some(ticket) => {
            // A stop may have come in the instant the gates opened.
            check_stop(ctx, progress, item_deadline)?;
            Ok(ticket)
        }
        None => match check_stop(ctx, progress, item_deadline) {
            Err(stop) => Err(stop),
            // The gates only give up when a stop condition holds.
            Ok(()) => Err(Stop::Vanish),
        },
    }
}

/// Sleeps `d` before a retry, unless a stop, an abort or the item
/// deadline comes first.
async fn wait(ctx: &RunContext, d: Duration, item_deadline: Option<Instant>, progress: &Progress) -> Result<(), Stop> {
    if !d.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = ctx.control.until_wait_ends() => {}
            () = sleep_until_opt(item_deadline) => {}
        }
    }
    check_stop(ctx, progress, item_deadline)
}

/// Ends the item if the run is stopping, was aborted, or its deadline passed.
fn check_stop(ctx: &RunContext, progress: &Progress, item_deadline: Option<Instant>) -> Result<(), Stop> {
    let control = &ctx.control;
    if control.stopping() {
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

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
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
        None => AttemptFailure::host(class, message),
    }
}

/// The plugin's verdict corrected by what the host saw, then the schema.
fn classify(
    outcome: CallOutcome<Result<Answer, PluginError>>,
    schema: Option<&crate::schema::OutputSchema>,
) -> Classified {
    let exchanges = outcome.exchanges;
    match outcome.result {
        Ok(Ok(answer)) => {
            let usage = answer.usage.unwrap_or_default();
            let result = match schema.map(|s| s.check(&answer.output)) {
                // The provider answered, the answer is unusable: a
                // validation failure, retried without backoff.
                Some(Err(message)) => {
                    let last = last_answer(&exchanges);
                    Err(AttemptFailure {
                        class: FailureClass::InvalidResponse,
                        message,
                        http_status: last.and_then(|e| e.status),
                        server_wait: None,
                        body: answer.response_body.as_deref().map(body_json),
                        request_id: last.and_then(|e| e.request_id().map(str::to_string)),
                    })
                }
                _ => Ok(answer),
            };
            Classified { result, exchanges, usage }
        }
        Ok(Err(error)) => {
            let usage = error.usage.unwrap_or_default();
            Classified { result: Err(plugin_failure(error, &exchanges)), exchanges, usage }
        }
        Err(call) => {
            let result = Err(call_failure(call, &exchanges));
            Classified { result, exchanges, usage: TokenUsage::default() }
        }
    }
}

fn plugin_failure(error: PluginError, exchanges: &[Exchange]) -> AttemptFailure {
    let r = reconcile(error.class, error.retry_after, exchanges);
    let last = last_answer(exchanges);
    AttemptFailure {
        class: r.class,
        message: r.denied.map_or(error.message, |d| format!("egress denied: {d}")),
        http_status: error.http_status.or(last.and_then(|e| e.status)),
        server_wait: r.server_wait,
        body: error.response_body.as_deref().map(body_json),
        request_id: last.and_then(|e| e.request_id().map(str::to_string)),
    }
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
    AttemptFailure { server_wait: r.server_wait, ..AttemptFailure::host(class, call.to_string()) }
}

pub(super) fn last_answer(exchanges: &[Exchange]) -> Option<&Exchange> {
    exchanges.iter().rev().find(|e| e.status.is_some())
}

/// The model an item ran on: what the plugin reported, else what the job
/// asked for, else the plugin's configured default.
fn item_model(job: &Job, metadata: Option<&Value>, default: &Option<String>) -> Option<String> {
    let reported = metadata.and_then(|m| m.get("model")).and_then(Value::as_str);
    let requested = job.params.model();
    reported.or(requested).map(str::to_string).or_else(|| default.clone())
}

fn plugin_item(job: &Job) -> PluginItem {
    PluginItem {
        id: job.id.clone(),
        prompt: job.prompt.clone(),
        params: job.params.text().to_string(),
        context: job.context.as_deref().map(|c| c.get().to_string()),
        endpoint: job.endpoint.clone(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
