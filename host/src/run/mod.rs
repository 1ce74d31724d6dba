//! A batch run: validate, load the plugin, prepare, fan out to workers,
//! write results, clean up.
//!
//! Data flows one way: a reader thread parses lines into a bounded queue;
//! `concurrency` workers each own a plugin instance and turn jobs into
//! records; one writer appends records to the results file and counts them
//! only after they are flushed.

mod admission;
mod control;
mod cooldown;
mod dry;
mod estimate;
mod events;
mod item;
mod learned;
mod metrics;
mod order;
mod progress;
mod queue;
mod report;
mod retry;
mod signals;
mod sink;
mod tasks;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

pub use admission::{Admission, AdmissionLimits};
pub use control::{AbortMode, AbortReason, RunControl};
pub use cooldown::{CooldownPolicy, CooldownStats, Coordinator};
pub use dry::{DryRunReport, dry_run};
pub use events::{EventLog, EventsError};
pub use item::{ItemSettings, RunContext};
pub use learned::{LearnedLimits, parse_go_duration};
pub use progress::{ProgressMode, SuspendingStderr};
pub use report::{ClassCount, RunReport, Termination};
pub use retry::{Decision, FailureCounts, RetryPolicy};
pub use signals::{Reconciled, reconcile};

use crate::egress::Egress;
use crate::input::InputError;
use crate::model::FailureClass;
use crate::model::Job;
use crate::model::short_digest;
use crate::plugin::PluginSource;
use crate::results::{Checkpoint, Previous, ResultsError, ResumeError, ResumeOptions, RunIdentity};
use crate::sandbox::{
    self, CompileCache, HostState, PluginInstance, RunShared, SandboxEngine, SandboxError, SandboxLimits,
};
use crate::validate::{InputSummary, validate_file};
use batchllm_bindings::StrategyPre;
use item::Worker;
use sink::Sink;

/// Everything a run needs, already validated by the CLI layer.
#[derive(Debug)]
pub struct RunConfig {
    pub jobs: PathBuf,
    pub output: PathBuf,
    /// How an existing results file is treated (resume, overwrite, ...).
    pub resume: ResumeOptions,
    pub plugin: PluginSource,
    /// The plugin configuration (a JSON object).
    pub plugin_config: serde_json::Map<String, serde_json::Value>,
    /// The part of the configuration that identifies the run's answers
    /// (the user's settings, not host-injected ones).
    pub identity_config: serde_json::Map<String, serde_json::Value>,
    pub concurrency: usize,
    pub item: ItemSettings,
    pub cooldown: CooldownPolicy,
    pub admission: AdmissionLimits,
    /// Failure classes that abort the run (default: auth, quota_exhausted).
    pub fail_fast: Vec<FailureClass>,
    pub abort_mode: AbortMode,
    /// Limit on the whole run.
    pub batch_timeout: Option<Duration>,
    /// Token budget of the run (input + output, failed attempts included).
    pub max_total_tokens: Option<u64>,
    /// Write results in input order rather than completion order.
    pub preserve_order: bool,
    /// Prices for cost accounting.
    pub prices: crate::cost::PriceTable,
    /// Cost budget of the run, in US dollars.
    pub max_cost: Option<f64>,
    /// Where lifecycle events go (`--events`).
    pub events: Option<PathBuf>,
    /// `--schema`: the JSON Schema every output must match.
    pub schema: Option<Arc<crate::schema::OutputSchema>>,
    /// Serve Prometheus metrics here while running.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How progress is shown on stderr.
    pub progress: ProgressMode,
    pub sandbox: SandboxLimits,
    pub egress: Egress,
    pub cache: CompileCache,
}

/// Why a run could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{}", join_errors(.0))]
    Input(Vec<InputError>),
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error(transparent)]
    Resume(#[from] ResumeError),
    #[error(transparent)]
    Events(#[from] EventsError),
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("plugin `{plugin}`: {source}")]
    Sandbox { plugin: String, source: SandboxError },
    #[error("plugin `{plugin}` failed to prepare: {message}")]
    Prepare { plugin: String, message: String },
}

fn join_errors(errors: &[InputError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

impl RunError {
    /// Whether the fault is in what the user gave (exit code 2) rather than in
    /// the run (exit code 3).
    pub fn is_usage(&self) -> bool {
        !matches!(self, RunError::Prepare { .. })
    }
}

/// Runs a batch to the end (or to Ctrl-C) and reports what happened.
pub async fn run(config: RunConfig) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let (summary, checkpoint, identity) = validate_and_resume(&config)?;
    let plugin = load_plugin(&config).await?;
    let mut first = PluginInstance::new(&plugin.pre, plugin.shared.clone()).await.map_err(plugin.error())?;
    tasks::prepare(&mut first, &config.plugin.name).await?;

    let events = EventLog::open(config.events.as_deref())?;
    let journal = crate::results::Journal::create(&config.output, config.resume.fsync)?;
    let ctx = Arc::new(new_context(&config, identity, started, events, journal));
    let watchers = [tasks::spawn_interrupt_watch(ctx.clone()), tasks::spawn_batch_deadline(ctx.clone())];
    let Checkpoint { done, done_failed, writer, outcome_unknown, .. } = checkpoint;
    let done = Arc::new(done);
    let (job_tx, job_rx) = queue::bounded::<Job>(config.concurrency * 2);
    let (line_tx, line_rx) = mpsc::unbounded_channel::<usize>();
    let line_tx = config.preserve_order.then_some(line_tx);
    let reader = tasks::spawn_reader(config.jobs.clone(), job_tx, ctx.clone(), done.clone(), line_tx);
    let (record_tx, mut record_rx) = mpsc::channel::<sink::Finished>(config.concurrency * 2);
    let mut workers = tokio::task::JoinSet::new();
    let mut first = Some(first);
    for _ in 0..config.concurrency {
        let worker = Worker::new(plugin.pre.clone(), plugin.shared.clone(), ctx.clone(), first.take());
        workers.spawn(tasks::work(worker, job_rx.clone(), record_tx.clone(), ctx.clone()));
    }
    // Only workers hold the queue's ends now: when they stop (Ctrl-C), the
    // reader's next send fails instead of waiting forever.
    drop((record_tx, job_rx));

    ctx.events.emit(
        "run_started",
        serde_json::json!({"plugin": config.plugin.name, "plugin_sha256": config.plugin.digest,
            "jobs": summary.jobs, "already_done": done.len(), "concurrency": config.concurrency}),
    );
    ctx.metrics.set_items_to_run((summary.jobs - done.len()) as u64);
    let metrics_server = match config.metrics_addr {
        Some(addr) => Some(
            metrics::serve(addr, ctx.clone(), config.egress.clone())
                .await
                .map_err(|source| RunError::Metrics { addr, source })?
                .1,
        ),
        None => None,
    };
    let mut kept = RunReport::resumed(done.len() as u64, done_failed);
    kept.outcome_unknown = outcome_unknown;
    let to_run = (summary.jobs - done.len()) as u64;
    let mut sink = Sink::new(writer, kept, config.preserve_order, line_rx, config.progress, to_run);
    sink.drain(&mut record_rx, &ctx).await;

    let mut spare = None;
    while let Some(joined) = workers.join_next().await {
        if let Ok(Some(instance)) = joined {
            spare.get_or_insert(instance);
        }
    }
    let _ = reader.await;
    for w in watchers.into_iter().chain(metrics_server) {
        w.abort();
    }
    tasks::cleanup(spare, &plugin.pre, plugin.shared.clone()).await;
    let report = finish_report(sink.finish()?, &ctx, &config.egress, started);
    // Every item that was sent now has its record, unless calls were
    // dropped (second Ctrl-C): then the journal stays for the next run.
    if !ctx.control.hard_stopped() {
        ctx.journal.remove();
    }
    ctx.events.emit(
        "run_finished",
        serde_json::json!({"termination": report.termination, "items": report.items, "succeeded": report.succeeded,
            "failed": report.failed, "cost_usd": report.cost_usd, "seconds": report.elapsed.as_secs_f64()}),
    );
    ctx.events.flush();
    Ok(report)
}

/// The plugin, compiled, linked and ready to instantiate.
struct LoadedPlugin {
    name: String,
    pre: StrategyPre<HostState>,
    shared: Arc<RunShared>,
}

impl LoadedPlugin {
    fn error(&self) -> impl Fn(SandboxError) -> RunError + '_ {
        |source| RunError::Sandbox { plugin: self.name.clone(), source }
    }
}

async fn load_plugin(config: &RunConfig) -> Result<LoadedPlugin, RunError> {
    let err = |source| RunError::Sandbox { plugin: config.plugin.name.clone(), source };
    let instances = u32::try_from(config.concurrency + 2).unwrap_or(u32::MAX);
    let engine = SandboxEngine::new(&config.sandbox, instances).map_err(err)?;
    let component = config.cache.load(&engine, &config.plugin.bytes, &config.plugin.digest).map_err(err)?;
    let pre = sandbox::link(&engine, &component).map_err(err)?;
    let shared = Arc::new(RunShared {
        plugin: config.plugin.name.clone(),
        config: serde_json::Value::Object(config.plugin_config.clone()).to_string(),
        run_state: Default::default(),
        egress: config.egress.clone(),
        limits: config.sandbox.clone(),
    });
    Ok(LoadedPlugin { name: config.plugin.name.clone(), pre, shared })
}

/// Validates the whole input and opens the results file, resuming from the
/// records it already holds: each input line is compared with its earlier
/// record during the same pass.
fn validate_and_resume(config: &RunConfig) -> Result<(InputSummary, Checkpoint, RunIdentity), RunError> {
    let identity = RunIdentity {
        plugin: config.plugin.digest[..16].to_string(),
        config: short_digest(serde_json::Value::Object(config.identity_config.clone()).to_string().as_bytes()),
    };
    let mut previous = Previous::read(&config.output, config.resume)?;
    let mut mismatch = None;
    let force = config.resume.force;
    let summary = validate_file(&config.jobs, 20, |job| {
        if let Some(p) = previous.as_mut()
            && let Some(what) = p.check_job(&job.id, job.line, &job.fingerprint)
            && !force
        {
            mismatch.get_or_insert(what);
        }
        None
    })
    .map_err(RunError::Input)?;
    if let (Some(what), Some(p)) = (mismatch, previous.as_ref()) {
        return Err(p.mismatch(what).into());
    }
    tracing::info!(jobs = summary.jobs, file = %config.jobs.display(), "input validated");
    let checkpoint = Checkpoint::open(&config.output, config.resume, &identity, previous)?;
    if !checkpoint.done.is_empty() || checkpoint.dropped > 0 {
        tracing::info!(
            done = checkpoint.done.len(),
            to_run = summary.jobs - checkpoint.done.len(),
            dropped = checkpoint.dropped,
            "resuming from {}",
            config.output.display()
        );
    }
    Ok((summary, checkpoint, identity))
}

fn new_context(
    config: &RunConfig,
    identity: RunIdentity,
    started: Instant,
    events: EventLog,
    journal: crate::results::Journal,
) -> RunContext {
    RunContext {
        settings: config.item.clone(),
        coordinator: Coordinator::new(config.cooldown.clone()),
        admission: Admission::new(config.admission),
        // The user's --rpm wins; without one, follow the provider's headers.
        learned: config.admission.rpm.is_none().then(LearnedLimits::default),
        control: RunControl::new(config.abort_mode, config.batch_timeout.map(|t| started + t)),
        fail_fast: config.fail_fast.clone(),
        identity,
        max_total_tokens: config.max_total_tokens,
        tokens_used: Default::default(),
        prices: config.prices.clone(),
        default_model: config.plugin_config.get("model").and_then(|m| m.as_str()).map(str::to_string),
        max_cost: config.max_cost,
        micro_dollars: Default::default(),
        events,
        metrics: Default::default(),
        retrying: Default::default(),
        admission_limits: config.admission,
        schema: config.schema.clone(),
        journal,
    }
}

fn finish_report(mut report: RunReport, ctx: &RunContext, egress: &Egress, started: Instant) -> RunReport {
    report.termination = match (ctx.control.aborted(), ctx.control.interrupted()) {
        (_, true) => Termination::Interrupted,
        (Some(_), false) => Termination::Aborted,
        (None, false) => Termination::Completed,
    };
    report.abort_reason = ctx.control.aborted().cloned();
    let counters = egress.counters();
    report.http_requests = counters.requests.load(Ordering::Relaxed);
    report.egress_denied = counters.denied.load(Ordering::Relaxed);
    report.cooldown = ctx.coordinator.stats();
    report.prices_as_of = ctx.prices.as_of.clone();
    report.elapsed = started.elapsed();
    report.finalize();
    report
}
