//! A batch run: validate, load the plugin, prepare, drive the engine, clean
//! up.
//!
//! The run is split by concern:
//! - [`policy`]: pure decisions after an attempt (retry, reconcile, estimate);
//! - [`gate`]: whether an attempt may start (cooldown, learned limits, RPM/TPM);
//! - [`engine`]: workers, the executor seam, the sink, stop and abort control;
//! - [`observe`]: events, metrics, progress and the report.
//!
//! This module owns the lifecycle around them. Everything that can fail is
//! set up *before* the plugin's `prepare` (results file, journal, events
//! file, metrics port), and once `prepare` succeeded `cleanup` runs on every
//! way out, so a resource the plugin created (a Gemini context cache) never
//! outlives the run because of a setup error or a signal.

mod dry;
pub mod engine;
pub mod exit;
pub mod gate;
pub mod observe;
pub mod policy;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

pub use dry::{DryRunReport, dry_run};
pub use engine::{AbortMode, ItemSettings, StopHandle};
pub use gate::{AdmissionLimits, CooldownPolicy, GateSettings};
pub use observe::{
    ClassCount, EventsError, Metrics, MetricsSnapshot, ProgressMode, RunReport, SuspendingStderr, Termination,
};
pub use policy::abort::AbortReason;
pub use policy::retry::RetryPolicy;

use crate::egress::Egress;
use crate::input::{InputError, JobsSource, Spool, SpoolWriter, spool::spool_path};
use crate::model::{FailureClass, Job, short_digest};
use crate::plugin::PluginSource;
use crate::results::{Checkpoint, Journal, Judgement, Previous, ResultsError, ResumeError, ResumeOptions, RunIdentity};
use crate::sandbox::{self, CompileCache, PluginInstance, SandboxError, SandboxLimits};
use crate::validate::{Decision, InputSummary, read_once};
use engine::{Budgets, Observers, PluginFactory, Pricing, RunContext, RunControl, Sink, queue};
use gate::Gates;
use observe::{Event, EventLog};

/// Everything a run needs, already validated by the options layer.
#[derive(Debug)]
pub struct RunConfig {
    /// The jobs: a file, or stdin.
    pub jobs: JobsSource,
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
    /// Learn the limit of a provider that announces none from its answers.
    pub adaptive_rate: bool,
    /// Grow attempts in flight from one to `concurrency` over this long.
    pub startup_ramp: Option<Duration>,
    /// Failure classes that abort the run (default: auth, quota_exhausted).
    pub fail_fast: Vec<FailureClass>,
    pub abort_mode: AbortMode,
    /// Limit on the whole run.
    pub batch_timeout: Option<Duration>,
    /// How long calls on the wire may still answer after a stop (a signal).
    pub stop_grace: Duration,
    /// Token budget of the run (input + output, failed attempts included).
    pub max_total_tokens: Option<u64>,
    /// Write results in input order (rewritten at the end of the run).
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
    /// `--shard`: run only this shard's ids (every line is still validated).
    pub shard: Option<crate::model::shard::Shard>,
    /// `--cluster`: run the batch with other hosts (see `cluster::batch`).
    pub cluster: Option<crate::model::cluster::ClusterSettings>,
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
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin `{plugin}`: {source}")]
    Sandbox {
        plugin: String,
        #[source]
        source: SandboxError,
    },
    #[error("plugin `{plugin}` failed to prepare: {message}")]
    Prepare { plugin: String, message: String },
    #[error("--cluster: {0}")]
    Cluster(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn join_errors(errors: &[InputError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

impl RunError {
    /// Whether the fault is in what the user gave (exit code 2: nothing was
    /// sent) rather than in the run (exit code 3).
    pub fn is_usage(&self) -> bool {
        !matches!(self, RunError::Prepare { .. })
    }

    /// Whether a stop signal ended the run while the input was read
    /// (nothing was sent).
    pub fn is_stopped(&self) -> bool {
        matches!(self, RunError::Input(errors) if matches!(errors[..], [InputError::Stopped { .. }]))
    }
}

/// What a caller that runs many batches at once (the service) shares with
/// a run: injection points, each `None` by default (the run makes its own).
#[derive(Debug, Clone, Default)]
pub struct RunHooks {
    /// Gates shared with other runs, e.g. a tenant's RPM/TPM and cooldowns
    /// across its batches (build them with [`gate_settings`]); the run's own
    /// admission settings are then not used.
    pub gates: Option<Arc<Gates>>,
    /// Items in flight across runs: each item holds a permit until its
    /// record is written.
    pub items: Option<Arc<tokio::sync::Semaphore>>,
    /// The run's counters, to watch its progress while it runs
    /// ([`Metrics::snapshot`]).
    pub metrics: Option<Arc<Metrics>>,
}

/// Runs a batch to the end, or until `stop` asks it to stop, and reports
/// what happened.
pub async fn run(config: RunConfig, stop: StopHandle) -> Result<RunReport, RunError> {
    run_with(config, stop, RunHooks::default()).await
}

/// [`run`], with what the caller shares with the run.
pub async fn run_with(config: RunConfig, stop: StopHandle, hooks: RunHooks) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let (summary, spool, checkpoint, identity) = read_input(&config, &stop).await?;
    // Whatever can fail is set up before `prepare`.
    let events = EventLog::open(config.events.as_deref())?;
    if summary.jobs == 0 {
        return Ok(nothing_to_do(&config, checkpoint, events, started));
    }
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(observe::metrics::bind(addr).await.map_err(|source| RunError::Metrics { addr, source })?),
        None => None,
    };
    let journal = Journal::create(&config.output, config.resume.fsync)?;
    let (factory, first) = load_and_prepare(&config).await?;

    // From here on `cleanup` runs on every way out.
    let journal = engine::InFlight::File(journal);
    let ctx = Arc::new(new_context(&config, identity, started, stop, events, journal, hooks));
    let metrics_server = metrics_listener.and_then(|listener| {
        match observe::metrics::serve(listener, ctx.observe.metrics.clone(), ctx.gates.clone(), config.egress.clone()) {
            Ok((_, handle)) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint could not start");
                None
            }
        }
    });
    let Checkpoint { counts, writer } = checkpoint;
    let to_run = summary.to_run;
    ctx.observe.event(|| Event::RunStarted {
        plugin: &config.plugin.name,
        plugin_sha256: &config.plugin.digest,
        jobs: summary.jobs,
        already_done: counts.kept as usize,
        concurrency: config.concurrency,
    });
    ctx.observe.metrics.set_items_to_run(to_run);
    ctx.observe.metrics.set_started(counts.kept, counts.kept_failed);
    let kept = RunReport::resumed(&counts);

    let (job_tx, job_rx) = queue::bounded::<Job>(config.concurrency.saturating_mul(2));
    let reader = engine::spawn_reader(spool, job_tx, ctx.clone());
    let mut sink = Sink::new(writer, kept, config.progress, to_run);
    let spare = engine::drive(ctx.clone(), factory.clone(), Some(first), config.concurrency, job_rx, &mut sink).await;
    let _ = reader.await;
    if let Some(server) = metrics_server {
        server.abort();
    }
    cleanup(spare, &factory).await;

    let (report, write_error, writer) = sink.finish();
    drop(writer);
    if config.preserve_order
        && write_error.is_none()
        && let Err(e) = crate::results::sort_by_line(&config.output)
    {
        ctx.control.fail(format!("putting the results in input order failed: {e}"));
    }
    let report = finish_report(report, &ctx, &config.egress, started);
    // Every item that went on the wire now has its record (answered, or
    // `outcome_unknown` when its call was dropped), unless writing failed:
    // then the journal stays for the next run.
    if write_error.is_none() {
        ctx.journal.remove();
    }
    ctx.observe.event(|| Event::RunFinished {
        termination: report.termination,
        items: report.items,
        succeeded: report.succeeded,
        failed: report.failed,
        cost_usd: report.cost_usd,
        seconds: report.elapsed.as_secs_f64(),
    });
    ctx.observe.events.flush();
    Ok(report)
}

/// Loads the plugin and runs its `prepare` on a first instance; from then
/// on the caller owes it a `cleanup`.
pub(crate) async fn load_and_prepare(config: &RunConfig) -> Result<(Arc<PluginFactory>, PluginInstance), RunError> {
    let sandbox_error = |source| RunError::Sandbox { plugin: config.plugin.name.clone(), source };
    let plugin = sandbox::load(
        &config.plugin,
        &config.cache,
        &config.sandbox,
        config.concurrency.saturating_add(2),
        &config.plugin_config,
        config.egress.clone(),
    )
    .map_err(sandbox_error)?;
    let factory = Arc::new(PluginFactory { pre: plugin.pre.clone(), shared: plugin.shared.clone() });
    let mut first = PluginInstance::new(&factory.pre, factory.shared.clone()).await.map_err(sandbox_error)?;
    prepare(&mut first, &config.plugin.name).await?;
    Ok((factory, first))
}

async fn prepare(instance: &mut PluginInstance, plugin: &str) -> Result<(), RunError> {
    let outcome = instance.prepare().await;
    let message = match outcome.result {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => format!("{}: {}", e.class.code(), e.message),
        Err(call) => call.to_string(),
    };
    Err(RunError::Prepare { plugin: plugin.to_string(), message })
}

/// Calls `cleanup` exactly once, on a spare instance or a fresh one.
pub(crate) async fn cleanup(instance: Option<PluginInstance>, factory: &PluginFactory) {
    let instance = match instance {
        Some(i) => Ok(i),
        None => PluginInstance::new(&factory.pre, factory.shared.clone()).await,
    };
    let outcome = match instance {
        Ok(mut i) => i.cleanup().await.result.map_err(|e| e.to_string()).and_then(|r| r),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "plugin cleanup failed");
    }
}

/// A run whose input has no jobs: nothing to send, so no plugin is loaded;
/// the results file exists (empty, unless a resume kept records).
fn nothing_to_do(config: &RunConfig, checkpoint: Checkpoint, events: EventLog, started: Instant) -> RunReport {
    tracing::warn!(
        "{} has no jobs: nothing to do; {} {}",
        config.jobs,
        config.output.display(),
        if checkpoint.counts.kept > 0 { "keeps its records" } else { "is empty" }
    );
    drop(checkpoint.writer);
    let mut report = RunReport::resumed(&checkpoint.counts);
    events.emit(&Event::RunStarted {
        plugin: &config.plugin.name,
        plugin_sha256: &config.plugin.digest,
        jobs: 0,
        already_done: 0,
        concurrency: config.concurrency,
    });
    report.prices_as_of = config.prices.as_of.clone();
    report.elapsed = started.elapsed();
    report.finalize();
    events.emit(&Event::RunFinished {
        termination: report.termination,
        items: 0,
        succeeded: 0,
        failed: 0,
        cost_usd: 0.0,
        seconds: report.elapsed.as_secs_f64(),
    });
    events.flush();
    report
}

/// What identifies this run's answers in the records it writes.
pub(crate) fn run_identity(config: &RunConfig) -> RunIdentity {
    RunIdentity {
        plugin: config.plugin.digest.get(..16).unwrap_or(&config.plugin.digest).to_string(),
        config: short_digest(serde_json::Value::Object(config.identity_config.clone()).to_string().as_bytes()),
    }
}

/// Reads the input once, validating every line and judging it against the
/// records of an earlier run, spools what must be sent, then opens the
/// results file. Nothing is sent before this returns, so an error anywhere
/// in the input costs nothing.
///
/// The pass runs on a blocking thread: stdin may block for as long as the
/// producer upstream takes. A stop signal meanwhile ends the run at once
/// (the thread, possibly blocked in a read, is left behind; nothing was
/// sent and the results file was not touched).
async fn read_input(
    config: &RunConfig,
    stop: &StopHandle,
) -> Result<(InputSummary, Spool, Checkpoint, RunIdentity), RunError> {
    let identity = run_identity(config);
    let (input, output, resume, pass_identity) =
        (config.jobs.clone(), config.output.clone(), config.resume, identity.clone());
    let pass_stop = stop.clone();
    let spool_file = spool_path(&config.output);
    let shard = config.shard;
    let pass = tokio::task::spawn_blocking(move || {
        let mut previous = Previous::read(&output, resume, &pass_identity)?;
        let spool_file = spool_path(&output);
        let spool = SpoolWriter::create(&spool_file)
            .map_err(|source| RunError::Input(vec![InputError::Spool { path: spool_file.clone(), source }]))?;
        let mut refusal = None;
        let keep_going = || !pass_stop.is_stopping();
        let mut in_shard = 0;
        let read = read_once(&input, 20, spool, &keep_going, |job| {
            // Every line is validated; only the shard's jobs are this run's.
            if shard.is_some_and(|s| !s.contains(&job.id)) {
                return Decision::Skip;
            }
            in_shard += 1;
            match previous.as_mut() {
                None => Decision::Run,
                Some(p) => match p.judge(&job.id, job.line, &job.fingerprint) {
                    Judgement::Run => Decision::Run,
                    Judgement::Keep => Decision::Keep,
                    Judgement::Refuse(e) => {
                        refusal.get_or_insert(e);
                        Decision::Keep
                    }
                },
            }
        });
        let (mut summary, spool) = match read {
            Ok(read) => read,
            Err(errors) => {
                let _ = std::fs::remove_file(&spool_file);
                return Err(RunError::Input(errors));
            }
        };
        if let Some(e) = refusal {
            return Err(e.into());
        }
        if let Some(shard) = shard {
            tracing::info!(shard = %shard, of = summary.jobs, jobs = in_shard, "running one shard of the input");
            summary.jobs = in_shard;
        }
        Ok((summary, spool, previous))
    });
    let (summary, spool, previous) = tokio::select! {
        joined = pass => match joined {
            Ok(result) => result?,
            Err(e) => {
                let source = std::io::Error::other(format!("the input reader failed: {e}"));
                return Err(RunError::Input(vec![InputError::Io { input: config.jobs.clone(), source }]));
            }
        },
        () = stop.until_stopping() => {
            let _ = std::fs::remove_file(&spool_file);
            return Err(RunError::Input(vec![InputError::Stopped { input: config.jobs.clone() }]));
        }
    };
    tracing::info!(jobs = summary.jobs, input = %config.jobs, "input validated");
    let checkpoint = Checkpoint::open(&config.output, config.resume, previous)?;
    let c = &checkpoint.counts;
    if c.kept > 0 || c.changed > 0 || c.replayed > 0 || c.pruned > 0 {
        tracing::info!(
            kept = c.kept,
            changed = c.changed,
            retried = c.replayed,
            pruned = c.pruned,
            to_run = summary.to_run,
            "resuming from {}",
            config.output.display()
        );
    }
    Ok((summary, spool, checkpoint, identity))
}

/// The context of a run: its gates (shared ones from `hooks`, else its
/// own), its in-flight journal, its controls and observers.
pub(crate) fn new_context(
    config: &RunConfig,
    identity: RunIdentity,
    started: Instant,
    stop: StopHandle,
    events: EventLog,
    journal: engine::InFlight,
    hooks: RunHooks,
) -> RunContext {
    let batch_deadline = config.batch_timeout.map(|t| policy::later(started, t));
    let mut observe = Observers::new(events);
    if let Some(metrics) = hooks.metrics {
        observe.metrics = metrics;
    }
    RunContext {
        settings: config.item.clone(),
        gates: hooks.gates.unwrap_or_else(|| Arc::new(Gates::new(gate_settings(config), started))),
        items: hooks.items,
        control: RunControl::new(config.abort_mode, batch_deadline, stop, config.stop_grace),
        budgets: Budgets::new(config.fail_fast.clone(), config.max_total_tokens, config.max_cost),
        // The model a record is priced on is the one the plugin reports (a
        // built-in reports its default), else the job's, else the
        // configured one; the built-in's default is the dry run's guess.
        pricing: Pricing { prices: config.prices.clone(), default_model: configured_model(config) },
        identity,
        schema: config.schema.clone(),
        journal,
        observe,
    }
}

/// How a run ended, by its control: a host failure wins over a stop, a
/// stop over an abort.
pub(crate) fn termination(control: &RunControl) -> Termination {
    if control.host_failure().is_some() {
        Termination::Failed
    } else if control.stopping() {
        Termination::Interrupted
    } else if control.aborted().is_some() {
        Termination::Aborted
    } else {
        Termination::Completed
    }
}

/// The gates' settings a run's configuration asks for.
pub fn gate_settings(config: &RunConfig) -> GateSettings {
    GateSettings {
        cooldown: config.cooldown.clone(),
        admission: config.admission,
        // The user's --rpm wins; without one, follow the provider's headers.
        learn_from_headers: config.admission.rpm.is_none(),
        adaptive: config.adaptive_rate,
        max_server_wait: config.item.retry.max_server_wait,
        startup_ramp: config.startup_ramp.map(|over| gate::StartupRamp { over, concurrency: config.concurrency }),
    }
}

/// The model an item runs on when neither the job nor the plugin says: the
/// plugin configuration's `model`, else the built-in plugin's own default.
pub(crate) fn default_model(config: &RunConfig) -> Option<String> {
    let configured = configured_model(config);
    let builtin = config.plugin.builtin.then(|| crate::providers::find(&config.plugin.name)).flatten();
    configured.or_else(|| builtin.and_then(|p| p.default_model).map(str::to_string))
}

/// The plugin configuration's `model`.
fn configured_model(config: &RunConfig) -> Option<String> {
    config.plugin_config.get("model").and_then(|m| m.as_str()).map(str::to_string)
}

pub(crate) fn finish_report(mut report: RunReport, ctx: &RunContext, egress: &Egress, started: Instant) -> RunReport {
    let control = &ctx.control;
    report.termination = termination(control);
    report.abort_reason = control.aborted().cloned();
    report.host_failure = control.host_failure().map(str::to_string);
    let counters = egress.counters();
    report.http_requests = counters.requests.load(Ordering::Relaxed);
    report.egress_denied = counters.denied.load(Ordering::Relaxed);
    report.cooldown = ctx.gates.stats();
    report.prices_as_of = ctx.pricing.prices.as_of.clone();
    report.elapsed = started.elapsed();
    report.finalize();
    report
}
