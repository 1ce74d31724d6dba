//! The engine's decisions, on paused time, with a scripted executor.
//!
//! Each test drives the real engine ([`super::drive`]: workers, gates,
//! retry policy, stop and abort control, sink) against a fake plugin whose
//! answers are scripted per item and attempt, and checks the records and
//! the moments calls were made. Paused time makes a 30 s cooldown take no
//! time and every timing exact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::context::{Budgets, ItemSettings, Observers, Pricing, RunContext};
use super::control::{AbortMode, RunControl, StopHandle};
use super::executor::{Executor, ExecutorFactory};
use super::sink::Sink;
use super::{drive, queue};
use crate::model::{
    Answer, AttemptInfo, CallOutcome, Exchange, FailureClass, ItemStatus, Job, PluginError, PluginItem, ResultRecord,
    RetryState, StateChange, TokenUsage,
};
use crate::results::{Journal, RunIdentity, journal_path, read_journal};
use crate::run::gate::{AdmissionLimits, CooldownPolicy, GateSettings, Gates};
use crate::run::observe::{ProgressMode, RunReport};
use crate::run::policy::retry::RetryPolicy;
use crate::sandbox::SandboxError;

/// What the fake provider does with one attempt.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Ok,
    /// A 429, with the server's wait.
    RateLimited(Option<Duration>),
    Fail(FailureClass),
    /// The plugin panics (a bug the host must contain)... in the host: the
    /// fake executor panics inside `execute`.
    Panic,
    /// Answers only after this long (then succeeds).
    Slow(Duration),
}

/// One call the fake received.
#[derive(Debug, Clone)]
struct Call {
    item: String,
    at: Instant,
}

/// A provider admitting `limit` requests per sliding `window`, answering
/// a bare 429 (no headers) beyond it, as many gateways do.
#[derive(Debug)]
struct SlidingLimit {
    limit: usize,
    window: Duration,
    retry_after: Option<Duration>,
    /// Announce the limit in OpenAI-style headers on every answer.
    announce: bool,
    admitted: std::collections::VecDeque<Instant>,
    refused: usize,
}

impl SlidingLimit {
    fn headers(&self, at: Instant) -> Vec<(String, String)> {
        if !self.announce {
            return Vec::new();
        }
        let remaining = self.limit.saturating_sub(self.admitted.len());
        // Until the window is empty again, as OpenAI and the mock say it.
        let reset = self.admitted.back().map_or(Duration::ZERO, |&t| (t + self.window).saturating_duration_since(at));
        vec![
            ("x-ratelimit-limit-requests".into(), self.limit.to_string()),
            ("x-ratelimit-remaining-requests".into(), remaining.to_string()),
            ("x-ratelimit-reset-requests".into(), format!("{}ms", reset.as_millis())),
        ]
    }
}

#[derive(Debug, Default)]
struct Script {
    /// When set, every call is decided by this limit (the steps are ignored).
    limit: Option<Mutex<SlidingLimit>>,
    /// Steps per item, by attempt; the last step repeats.
    steps: HashMap<String, Vec<Step>>,
    /// For items without a script.
    default: Vec<Step>,
    latency: Duration,
    calls: Mutex<Vec<Call>>,
    answered: Mutex<Vec<String>>,
}

impl Script {
    fn step(&self, item: &str, number: u32) -> Step {
        let steps = self.steps.get(item).unwrap_or(&self.default);
        let i = usize::try_from(number.saturating_sub(1)).unwrap_or(usize::MAX);
        steps.get(i).or(steps.last()).cloned().unwrap_or(Step::Ok)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }
}

struct FakeFactory(Arc<Script>);
struct FakeExecutor(Arc<Script>);

impl ExecutorFactory for FakeFactory {
    type Executor = FakeExecutor;

    async fn create(&self) -> Result<FakeExecutor, SandboxError> {
        Ok(FakeExecutor(self.0.clone()))
    }
}

fn exchange(status: u16) -> Exchange {
    Exchange { authority: "fake:443".into(), status: Some(status), ..Exchange::default() }
}

impl Executor for FakeExecutor {
    fn is_usable(&self) -> bool {
        true
    }

    async fn execute(
        &mut self,
        item: &PluginItem,
        attempt: &AttemptInfo,
        _state: &RetryState,
        _deadline: Instant,
    ) -> CallOutcome<Result<Answer, PluginError>> {
        let script = self.0.clone();
        script.calls.lock().expect("calls").push(Call { item: item.id.clone(), at: Instant::now() });
        if let Some(limit) = &script.limit {
            let at = Instant::now();
            let accepted = {
                let mut l = limit.lock().expect("limit");
                let window = l.window;
                while l.admitted.front().is_some_and(|&t| at >= t + window) {
                    l.admitted.pop_front();
                }
                let ok = l.admitted.len() < l.limit;
                if ok {
                    l.admitted.push_back(at);
                } else {
                    l.refused += 1;
                }
                (ok, l.retry_after, l.headers(at))
            };
            tokio::time::sleep(script.latency).await;
            return match accepted {
                (true, _, headers) => {
                    script.answered.lock().expect("answered").push(item.id.clone());
                    let answer = Answer { output: "ok".into(), usage: None, response_body: None, metadata: None };
                    let exchange = Exchange { signal_headers: headers, ..exchange(200) };
                    CallOutcome { result: Ok(Ok(answer)), exchanges: vec![exchange] }
                }
                (false, retry_after, _) => {
                    let error = PluginError {
                        class: FailureClass::RateLimited,
                        message: "Too Many Requests".into(),
                        http_status: Some(429),
                        retry_after,
                        usage: None,
                        response_body: None,
                    };
                    CallOutcome { result: Ok(Err(error)), exchanges: vec![exchange(429)] }
                }
            };
        }
        let step = script.step(&item.id, attempt.number);
        let latency = match step {
            Step::Slow(d) => d,
            _ => script.latency,
        };
        tokio::time::sleep(latency).await;
        let usage = Some(TokenUsage { input_tokens: 10, output_tokens: 5, ..TokenUsage::default() });
        let fail = |class, status: u16, retry_after| {
            let error = PluginError {
                class,
                message: format!("scripted {class}"),
                http_status: Some(status),
                retry_after,
                usage: None,
                response_body: None,
            };
            CallOutcome { result: Ok(Err(error)), exchanges: vec![exchange(status)] }
        };
        match step {
            Step::Ok | Step::Slow(_) => {
                script.answered.lock().expect("answered").push(item.id.clone());
                let answer =
                    Answer { output: format!("answer to {}", item.id), usage, response_body: None, metadata: None };
                CallOutcome { result: Ok(Ok(answer)), exchanges: vec![exchange(200)] }
            }
            Step::RateLimited(hint) => fail(FailureClass::RateLimited, 429, hint),
            Step::Fail(class) => {
                let status = match class {
                    FailureClass::ClientError => 400,
                    FailureClass::Auth => 401,
                    FailureClass::InvalidResponse => 200,
                    _ => 503,
                };
                fail(class, status, None)
            }
            Step::Panic => panic!("scripted panic in the host for {}", item.id),
        }
    }

    async fn on_error(
        &mut self,
        _item: &PluginItem,
        _error: &PluginError,
        _attempt: &AttemptInfo,
        _state: &RetryState,
        _deadline: Instant,
    ) -> CallOutcome<Vec<StateChange>> {
        CallOutcome { result: Ok(Vec::new()), exchanges: Vec::new() }
    }
}

/// A run's knobs, with test defaults: no jitter, no slow start.
struct Setup {
    jobs: usize,
    concurrency: usize,
    retry: RetryPolicy,
    cooldown: CooldownPolicy,
    admission: AdmissionLimits,
    item_timeout: Option<Duration>,
    batch_timeout: Option<Duration>,
    abort_mode: AbortMode,
    fail_fast: Vec<FailureClass>,
    stop_grace: Duration,
    adaptive: bool,
    /// Permits shared with other runs (a service's tenant), if any.
    items: Option<Arc<tokio::sync::Semaphore>>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            jobs: 10,
            concurrency: 4,
            retry: RetryPolicy { jitter: false, ..RetryPolicy::default() },
            cooldown: CooldownPolicy { slow_start_attempts: 0, ..CooldownPolicy::default() },
            admission: AdmissionLimits::default(),
            item_timeout: None,
            batch_timeout: None,
            abort_mode: AbortMode::Drain,
            fail_fast: vec![FailureClass::Auth],
            stop_grace: Duration::from_secs(20),
            adaptive: false,
            items: None,
        }
    }
}

struct Outcome {
    records: Vec<ResultRecord>,
    report: RunReport,
    ctx: Arc<RunContext>,
    journal: std::collections::HashSet<String>,
    _dir: tempfile::TempDir,
}

impl Outcome {
    fn record(&self, id: &str) -> &ResultRecord {
        let mut found = self.records.iter().filter(|r| r.custom_id == id);
        let first = found.next().unwrap_or_else(|| panic!("no record for {id}"));
        assert!(found.next().is_none(), "two records for {id}");
        first
    }

    fn class(&self, id: &str) -> Option<FailureClass> {
        self.record(id).batchllm.error_class
    }
}

fn job(i: usize) -> Job {
    Job {
        line: i + 1,
        id: format!("j{i}"),
        prompt: format!("prompt {i}"),
        params: Default::default(),
        context: None,
        endpoint: None,
        fingerprint: format!("f{i}"),
    }
}

/// Runs `setup.jobs` jobs against `script`; `during` runs alongside with
/// the run's stop handle (to send stops at chosen moments).
async fn run<Fut>(setup: Setup, script: Arc<Script>, during: impl FnOnce(StopHandle) -> Fut) -> Outcome
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let results = dir.path().join("results.jsonl");
    let started = Instant::now();
    let stop = StopHandle::default();
    let gates = GateSettings {
        cooldown: setup.cooldown,
        admission: setup.admission,
        learn_from_headers: setup.admission.rpm.is_none(),
        adaptive: setup.adaptive,
        max_server_wait: setup.retry.max_server_wait,
        startup_ramp: None,
    };
    let ctx = Arc::new(RunContext {
        settings: ItemSettings {
            retry: setup.retry,
            attempt_timeout: Duration::from_secs(120),
            item_timeout: setup.item_timeout,
            default_max_output_tokens: 100,
        },
        gates: Arc::new(Gates::new(gates, started)),
        items: setup.items,
        control: RunControl::new(
            setup.abort_mode,
            setup.batch_timeout.map(|t| started + t),
            stop.clone(),
            setup.stop_grace,
        ),
        budgets: Budgets::new(setup.fail_fast, None, None),
        pricing: Pricing { prices: crate::cost::PriceTable::load(None).expect("prices"), default_model: None },
        identity: RunIdentity { plugin: "p".into(), config: "c".into() },
        schema: None,
        journal: super::InFlight::File(Journal::create(&results, false).expect("journal")),
        observe: Observers::default(),
    });
    let (producer, consumer) = queue::bounded::<Job>(setup.jobs + 2);
    for i in 0..setup.jobs {
        producer.push_blocking(job(i)).expect("queue has room");
    }
    drop(producer);
    let side = tokio::spawn(during(stop));
    let mut sink = Sink::new(Vec::new(), RunReport::default(), ProgressMode::Off, setup.jobs as u64);
    let factory = Arc::new(FakeFactory(script));
    drive(ctx.clone(), factory, None, setup.concurrency, consumer, &mut sink).await;
    side.abort();
    let (report, error, records) = sink.finish();
    assert!(error.is_none());
    let journal = read_journal(&journal_path(&results)).expect("journal");
    Outcome { records, report, ctx, journal, _dir: dir }
}

async fn nothing(_: StopHandle) {}

fn script(default: Vec<Step>) -> Arc<Script> {
    Arc::new(Script { default, latency: Duration::from_millis(100), ..Script::default() })
}

fn scripted(items: &[(&str, Vec<Step>)]) -> Arc<Script> {
    let steps = items.iter().map(|(id, s)| (id.to_string(), s.clone())).collect();
    Arc::new(Script { steps, default: vec![Step::Ok], latency: Duration::from_millis(100), ..Script::default() })
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test(start_paused = true)]
async fn every_job_ends_in_exactly_one_record() {
    let s = script(vec![Step::Ok]);
    let out = run(Setup { jobs: 50, concurrency: 8, ..Setup::default() }, s.clone(), nothing).await;
    assert_eq!(out.records.len(), 50);
    for i in 0..50 {
        assert_eq!(out.record(&format!("j{i}")).batchllm.status, ItemStatus::Succeeded);
    }
    assert_eq!(out.report.succeeded, 50);
    assert_eq!(s.calls().len(), 50);
}

#[tokio::test(start_paused = true)]
async fn transient_failures_back_off_then_succeed_and_fatal_ones_are_tried_once() {
    let s = scripted(&[
        ("j0", vec![Step::Fail(FailureClass::Overloaded), Step::Fail(FailureClass::Overloaded), Step::Ok]),
        ("j1", vec![Step::Fail(FailureClass::ClientError)]),
        ("j2", vec![Step::Fail(FailureClass::Overloaded)]),
    ]);
    let out = run(Setup { jobs: 3, ..Setup::default() }, s.clone(), nothing).await;
    assert_eq!(out.record("j0").batchllm.attempts, 3);
    assert_eq!(out.class("j0"), None);
    assert_eq!(out.class("j1"), Some(FailureClass::ClientError));
    assert_eq!(out.record("j1").batchllm.attempts, 1);
    assert_eq!(out.class("j2"), Some(FailureClass::Overloaded));
    assert_eq!(out.record("j2").batchllm.attempts, 3, "--max-attempts 3");
    // Backoff 1 s then 2 s (no jitter) between j0's attempts.
    let at: Vec<Instant> = s.calls().iter().filter(|c| c.item == "j0").map(|c| c.at).collect();
    assert_eq!(at[1] - at[0], Duration::from_millis(1100));
    assert_eq!(at[2] - at[1], Duration::from_millis(2100));
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_pauses_every_worker_and_nothing_is_sent_during_the_cooldown() {
    let s = scripted(&[("j0", vec![Step::RateLimited(Some(secs(5))), Step::Ok])]);
    let setup = Setup { jobs: 30, concurrency: 4, ..Setup::default() };
    let t0 = Instant::now();
    let out = run(setup, s.clone(), nothing).await;
    assert_eq!(out.records.len(), 30);
    assert_eq!(out.record("j0").batchllm.rate_limit_retries, 1);
    // j0's 429 arrives at 100 ms: no call may start in the next 5 s.
    let limited_at = t0 + Duration::from_millis(100);
    let during: Vec<_> = s.calls().into_iter().filter(|c| c.at > limited_at && c.at < limited_at + secs(5)).collect();
    assert!(during.is_empty(), "sent during the cooldown: {during:?}");
    assert_eq!(out.ctx.gates.stats().cooldowns, 1);
}

#[tokio::test(start_paused = true)]
async fn items_waiting_for_an_rpm_token_do_not_leak_into_a_cooldown() {
    // 120 rpm = 2/s with a burst of 1: attempts start every 0.5 s. j1's 429
    // (sent at 0.5 s, answered at 0.6 s) pauses the scope for 3 s; items
    // already waiting for a token must re-check the cooldown.
    let s = scripted(&[("j1", vec![Step::RateLimited(Some(secs(3))), Step::Ok])]);
    let setup = Setup {
        jobs: 8,
        concurrency: 8,
        admission: AdmissionLimits { rpm: Some(120.0), tpm: None, burst_secs: 0.5 },
        ..Setup::default()
    };
    let t0 = Instant::now();
    let out = run(setup, s.clone(), nothing).await;
    assert_eq!(out.records.len(), 8);
    let limited_at = t0 + Duration::from_millis(600);
    let leaked: Vec<_> = s.calls().into_iter().filter(|c| c.at > limited_at && c.at < limited_at + secs(3)).collect();
    assert!(leaked.is_empty(), "sent during the cooldown: {leaked:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stop_ends_every_wait_at_once_and_waiting_items_keep_no_record() {
    // Every call is refused with a 30 s wait: after the first answers,
    // every item waits in the cooldown. A stop at 2 s ends the run at once.
    let s = script(vec![Step::RateLimited(Some(secs(30)))]);
    let t0 = Instant::now();
    let out = run(Setup { jobs: 20, concurrency: 4, ..Setup::default() }, s.clone(), |stop| async move {
        tokio::time::sleep(secs(2)).await;
        stop.stop();
    })
    .await;
    assert!(Instant::now() - t0 < Duration::from_millis(2100), "took {:?}", Instant::now() - t0);
    assert!(out.records.is_empty(), "no item got an answer worth a record: {:?}", out.records.len());
    assert_eq!(s.calls().len(), 4, "one attempt per worker, none after the stop");
    assert!(out.journal.is_empty(), "items waiting are off the wire: {:?}", out.journal);
    assert!(out.ctx.control.stopping());
}

#[tokio::test(start_paused = true)]
async fn a_stop_lets_calls_on_the_wire_answer_within_the_grace_then_drops_them() {
    let s = scripted(&[("j0", vec![Step::Slow(secs(5))]), ("j1", vec![Step::Slow(secs(60))])]);
    let setup = Setup { jobs: 10, concurrency: 2, stop_grace: secs(10), ..Setup::default() };
    let t0 = Instant::now();
    let out = run(setup, s.clone(), |stop| async move {
        tokio::time::sleep(secs(1)).await;
        stop.stop();
    })
    .await;
    // j0 answered at 5 s, inside the grace; j1 was dropped at 1 + 10 s.
    assert_eq!(out.record("j0").batchllm.status, ItemStatus::Succeeded);
    assert_eq!(out.class("j1"), Some(FailureClass::OutcomeUnknown));
    assert_eq!(out.records.len(), 2, "nothing else started");
    assert_eq!(Instant::now() - t0, secs(11));
    assert_eq!(s.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn stop_now_drops_calls_on_the_wire_at_once() {
    let s = script(vec![Step::Slow(secs(60))]);
    let t0 = Instant::now();
    let out = run(Setup { jobs: 4, concurrency: 2, ..Setup::default() }, s, |stop| async move {
        tokio::time::sleep(secs(1)).await;
        stop.stop_now();
    })
    .await;
    assert_eq!(Instant::now() - t0, secs(1));
    assert_eq!(out.records.len(), 2);
    assert!(out.records.iter().all(|r| r.batchllm.error_class == Some(FailureClass::OutcomeUnknown)));
}

#[tokio::test(start_paused = true)]
async fn fail_fast_gives_every_remaining_line_an_aborted_record_without_a_call() {
    let s = scripted(&[("j2", vec![Step::Fail(FailureClass::Auth)])]);
    let out = run(Setup { jobs: 30, concurrency: 1, ..Setup::default() }, s.clone(), nothing).await;
    assert_eq!(out.records.len(), 30);
    assert_eq!(out.class("j2"), Some(FailureClass::Auth));
    for i in 3..30 {
        assert_eq!(out.class(&format!("j{i}")), Some(FailureClass::Aborted));
    }
    assert_eq!(s.calls().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_batch_deadline_lets_calls_on_the_wire_finish_in_drain_mode() {
    let s = script(vec![Step::Slow(secs(8))]);
    let setup = Setup { jobs: 6, concurrency: 2, batch_timeout: Some(secs(5)), ..Setup::default() };
    let out = run(setup, s.clone(), nothing).await;
    assert_eq!(out.records.len(), 6);
    assert_eq!(out.record("j0").batchllm.status, ItemStatus::Succeeded, "not cut at the deadline");
    assert_eq!(out.record("j1").batchllm.status, ItemStatus::Succeeded);
    for i in 2..6 {
        assert_eq!(out.class(&format!("j{i}")), Some(FailureClass::BatchDeadlineExceeded));
    }
    assert_eq!(s.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn cancel_mode_drops_calls_on_the_wire_as_outcome_unknown() {
    let s = script(vec![Step::Slow(secs(8))]);
    let setup = Setup {
        jobs: 4,
        concurrency: 2,
        batch_timeout: Some(secs(5)),
        abort_mode: AbortMode::Cancel,
        ..Setup::default()
    };
    let t0 = Instant::now();
    let out = run(setup, s, nothing).await;
    assert_eq!(Instant::now() - t0, secs(5));
    assert_eq!(out.class("j0"), Some(FailureClass::OutcomeUnknown));
    assert_eq!(out.class("j3"), Some(FailureClass::BatchDeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn no_attempt_starts_after_the_item_deadline() {
    let s = script(vec![Step::Fail(FailureClass::Overloaded)]);
    let setup = Setup {
        jobs: 1,
        item_timeout: Some(Duration::from_millis(1500)),
        retry: RetryPolicy { max_attempts: 10, jitter: false, ..RetryPolicy::default() },
        ..Setup::default()
    };
    let out = run(setup, s.clone(), nothing).await;
    // Attempts at 0 and 1.1 s; the next would start at 3.2 s.
    assert_eq!(out.class("j0"), Some(FailureClass::DeadlineExceeded));
    assert_eq!(s.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_host_becomes_that_items_record_and_the_run_goes_on() {
    let s = scripted(&[("j3", vec![Step::Panic])]);
    let out = run(Setup { jobs: 8, concurrency: 2, ..Setup::default() }, s, nothing).await;
    assert_eq!(out.records.len(), 8);
    assert_eq!(out.class("j3"), Some(FailureClass::HostError));
    assert!(out.record("j3").error.as_ref().expect("error").message.contains("scripted panic"));
    assert_eq!(out.report.succeeded, 7);
}

#[tokio::test(start_paused = true)]
async fn a_late_429_keeps_its_longer_wait() {
    // j0 and j1 are sent together and both refused: whichever answer comes
    // second was sent before the pause began, yet its longer wait counts.
    let s = scripted(&[
        ("j0", vec![Step::RateLimited(Some(secs(1))), Step::Ok]),
        ("j1", vec![Step::RateLimited(Some(secs(10))), Step::Ok]),
    ]);
    let t0 = Instant::now();
    let out = run(Setup { jobs: 4, concurrency: 2, ..Setup::default() }, s.clone(), nothing).await;
    assert_eq!(out.records.len(), 4);
    let after: Vec<_> = s.calls().into_iter().filter(|c| c.at > t0 + Duration::from_millis(100)).collect();
    assert!(after.iter().all(|c| c.at >= t0 + Duration::from_millis(100) + secs(10)), "{after:?}");
}

/// A provider without limit headers, refusing beyond 600 requests per
/// sliding 10 s with a fixed `retry-after: 1`: the engine learns the limit
/// and paces to it, instead of escalating cooldowns on every probe.
#[tokio::test(start_paused = true)]
async fn an_unannounced_limit_is_learned_and_used_with_few_refusals() {
    // Two windows' worth: the first refusal also refuses the calls already
    // on the wire (up to the concurrency, 50), 4% of the run; ten windows'
    // worth: a few refusals per window after that.
    // The ideal: a client that knew the limit sends 600 at once (1.2 s at
    // concurrency 50 and 100 ms), then 600 more as each window frees.
    for (jobs, ideal, max_share) in [(1200usize, 11.3f64, 0.05), (6000, 91.3, 0.02)] {
        let limit = SlidingLimit {
            limit: 600,
            window: secs(10),
            retry_after: Some(secs(1)),
            announce: false,
            admitted: Default::default(),
            refused: 0,
        };
        let s = Arc::new(Script {
            limit: Some(Mutex::new(limit)),
            latency: Duration::from_millis(100),
            ..Script::default()
        });
        let setup = Setup {
            jobs,
            concurrency: 50,
            adaptive: true,
            cooldown: CooldownPolicy::default(),
            retry: RetryPolicy { jitter: false, max_rate_limit_retries: 1000, ..RetryPolicy::default() },
            ..Setup::default()
        };
        let t0 = Instant::now();
        let out = run(setup, s.clone(), nothing).await;
        let took = (Instant::now() - t0).as_secs_f64();
        let refused = s.limit.as_ref().expect("limit").lock().expect("limit").refused;
        let sent = s.calls().len();
        assert_eq!(out.report.succeeded as usize, jobs);
        let share = refused as f64 / sent as f64;
        eprintln!(
            "{jobs} jobs: {took:.2} s against an ideal {ideal} s, {refused} of {sent} refused ({:.1}%)",
            share * 100.0
        );
        assert!(took <= ideal * 1.25, "{jobs} jobs took {took:.2} s against an ideal {ideal} s");
        assert!(share <= max_share, "{refused} of {sent} refused");
    }
}

/// The same limit announced in headers: it is used to the full from the
/// first window on, without a single refusal.
#[tokio::test(start_paused = true)]
async fn an_announced_limit_is_used_as_it_frees_without_refusals() {
    for (jobs, ideal) in [(1200usize, 11.3f64), (6000, 91.3)] {
        let limit = SlidingLimit {
            limit: 600,
            window: secs(10),
            retry_after: Some(secs(10)),
            announce: true,
            admitted: Default::default(),
            refused: 0,
        };
        let s = Arc::new(Script {
            limit: Some(Mutex::new(limit)),
            latency: Duration::from_millis(100),
            ..Script::default()
        });
        let setup =
            Setup { jobs, concurrency: 50, adaptive: true, cooldown: CooldownPolicy::default(), ..Setup::default() };
        let t0 = Instant::now();
        let out = run(setup, s.clone(), nothing).await;
        let took = (Instant::now() - t0).as_secs_f64();
        let refused = s.limit.as_ref().expect("limit").lock().expect("limit").refused;
        let sent = s.calls().len();
        assert_eq!(out.report.succeeded as usize, jobs);
        eprintln!("announced, {jobs} jobs: {took:.2} s against an ideal {ideal} s, {refused} of {sent} refused");
        assert!(took <= ideal * 1.1, "{jobs} jobs took {took:.2} s against an ideal {ideal} s");
        assert!(refused as f64 <= sent as f64 * 0.01, "{refused} of {sent} refused");
    }
}

mod properties {
    //! Any mix of answers and any signals at any moments: every line ends
    //! in exactly one record or none, nothing answered is sent again,
    //! nothing is left on the wire without a record or a journal entry,
    //! and the exit code the run ends with says what the records say.

    use std::sync::atomic::{AtomicBool, Ordering};

    use proptest::prelude::*;

    use super::*;
    use crate::run::exit;

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => Just(Step::Ok),
            2 => (0u64..3).prop_map(|s| Step::RateLimited(Some(secs(s)))),
            2 => Just(Step::RateLimited(None)),
            2 => Just(Step::Fail(FailureClass::Overloaded)),
            2 => Just(Step::Fail(FailureClass::InvalidResponse)),
            2 => Just(Step::Fail(FailureClass::ClientError)),
            // Fail-fast: aborts the run.
            1 => Just(Step::Fail(FailureClass::Auth)),
            1 => Just(Step::Panic),
            2 => (1u64..5000).prop_map(|ms| Step::Slow(Duration::from_millis(ms))),
        ]
    }

    /// What the CLI's signal handler does: the first SIGINT/SIGTERM/SIGHUP
    /// stops, a second drops the calls on the wire; a service's cancel may
    /// drop them at once.
    #[derive(Debug, Clone, Copy)]
    enum Signal {
        Stop,
        StopNow,
    }

    /// A moment: any millisecond, or exactly when a 50 ms call answers (a
    /// signal and an answer at the same instant).
    fn moment() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..8000, (0u64..40).prop_map(|k| k * 50)]
    }

    fn signals() -> impl Strategy<Value = Vec<(u64, Signal)>> {
        let signal = prop_oneof![3 => Just(Signal::Stop), 1 => Just(Signal::StopNow)];
        prop::collection::vec((moment(), signal), 0..3)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn records_calls_and_exit_code_stay_consistent(
            scripts in prop::collection::vec(prop::collection::vec(step(), 1..4), 1..12),
            concurrency in 1usize..5,
            signals in signals(),
            grace_ms in 0u64..3000,
            cancel in any::<bool>(),
            batch_timeout in prop::option::of(moment()),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let n = scripts.len();
                let steps = scripts.into_iter().enumerate().map(|(i, s)| (format!("j{i}"), s)).collect();
                let s = Arc::new(Script { steps, latency: Duration::from_millis(50), ..Script::default() });
                let setup = Setup {
                    jobs: n,
                    concurrency,
                    stop_grace: Duration::from_millis(grace_ms),
                    abort_mode: if cancel { AbortMode::Cancel } else { AbortMode::Drain },
                    batch_timeout: batch_timeout.map(Duration::from_millis),
                    ..Setup::default()
                };
                let signalled = Arc::new(AtomicBool::new(false));
                let sent = signalled.clone();
                let mut schedule = signals.clone();
                schedule.sort_by_key(|(at, _)| *at);
                let out = run(setup, s.clone(), move |stop| async move {
                    let start = Instant::now();
                    for (at, signal) in schedule {
                        tokio::time::sleep_until(start + Duration::from_millis(at)).await;
                        sent.store(true, Ordering::SeqCst);
                        match signal {
                            Signal::Stop => stop.stop(),
                            Signal::StopNow => stop.stop_now(),
                        }
                    }
                }).await;
                let stopped = signalled.load(Ordering::SeqCst);
                // At most one record per line.
                let mut seen = std::collections::HashSet::new();
                for r in &out.records {
                    assert!(seen.insert(r.custom_id.clone()), "two records for {}", r.custom_id);
                }
                // Without a stop, every line has one (an abort included).
                if !stopped {
                    assert_eq!(out.records.len(), n);
                }
                // Nothing answered is sent again, and every answer is kept.
                let answered = s.answered.lock().expect("answered").clone();
                let mut once = std::collections::HashSet::new();
                for id in &answered {
                    assert!(once.insert(id.clone()), "{id} answered twice");
                    let r = out.record(id);
                    assert_eq!(r.batchllm.status, ItemStatus::Succeeded, "{id}");
                }
                // Nothing is left on the wire without a record: the journal
                // only names items that have one (a dropped call is
                // recorded `outcome_unknown`), so a resume runs the rest.
                for id in &out.journal {
                    assert!(seen.contains(id), "{id} left on the wire without a record");
                }
                // The report counts what was written.
                let succeeded = out.records.iter().filter(|r| r.batchllm.status == ItemStatus::Succeeded).count();
                assert_eq!(out.report.items as usize, out.records.len());
                assert_eq!(out.report.succeeded as usize, succeeded);
                assert_eq!(out.report.failed as usize, out.records.len() - succeeded);
                // The exit code says what the records say.
                let mut report = out.report.clone();
                report.termination = crate::run::termination(&out.ctx.control);
                let code = exit::code(&report, exit::SIGTERM);
                let all_succeeded = succeeded == n;
                match code {
                    exit::OK => assert!(all_succeeded && !stopped, "exit 0 with {succeeded} of {n} succeeded"),
                    exit::SOME_FAILED => assert!(!all_succeeded && !stopped && out.records.len() == n),
                    exit::ABORTED => {
                        assert!(!stopped && out.records.len() == n);
                        assert!(out.ctx.control.aborted().is_some());
                    }
                    exit::SIGTERM => assert!(stopped, "interrupted without a signal"),
                    other => panic!("exit code {other}"),
                }
                if !stopped && out.ctx.control.aborted().is_none() {
                    assert_eq!(code == exit::OK, all_succeeded, "exit {code} with {succeeded} of {n} succeeded");
                }
            });
        }
    }
}

#[tokio::test(start_paused = true)]
async fn shared_item_permits_bound_the_items_in_flight_across_runs() {
    // Two runs of 8 workers each share 3 permits: at most 3 calls at once.
    let items = Arc::new(tokio::sync::Semaphore::new(3));
    let (a, b) = (script(vec![Step::Ok]), script(vec![Step::Ok]));
    let setup = || Setup { jobs: 12, concurrency: 8, items: Some(items.clone()), ..Setup::default() };
    let t0 = Instant::now();
    let (ra, rb) = tokio::join!(run(setup(), a.clone(), nothing), run(setup(), b.clone(), nothing));
    assert_eq!((ra.records.len(), rb.records.len()), (12, 12));
    let mut starts: Vec<Instant> = a.calls().iter().chain(b.calls().iter()).map(|c| c.at).collect();
    starts.sort();
    for (i, at) in starts.iter().enumerate() {
        let in_flight = starts.iter().filter(|s| **s <= *at && **s + Duration::from_millis(100) > *at).count();
        assert!(in_flight <= 3, "call {i} at {:?}: {in_flight} in flight", *at - t0);
    }
    // 24 items of 100 ms, 3 at a time.
    assert_eq!(t0.elapsed(), Duration::from_millis(800));
    assert_eq!(items.available_permits(), 3, "every permit is back");
}
