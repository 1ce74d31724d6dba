//! A batch run: validate, load the plugin, prepare, fan out to workers,
//! write results, clean up.
//!
//! Data flows one way: a reader thread parses lines into a bounded queue;
//! `concurrency` workers each own a plugin instance and turn jobs into
//! records; one writer appends records to the results file and counts them
//! only after they are flushed.

mod class;
mod item;
mod report;
mod retry;
mod signals;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::{Mutex, mpsc};

pub use class::FailureClass;
pub use item::ItemSettings;
pub use report::{ClassCount, RunReport, Termination};
pub use retry::{Decision, FailureCounts, RetryPolicy};

use crate::egress::Egress;
use crate::input::{self, InputError, Job};
use crate::plugin::PluginSource;
use crate::results::{ResultRecord, ResultWriter, ResultsError};
use crate::sandbox::{self, CompileCache, PluginInstance, RunShared, SandboxEngine, SandboxError, SandboxLimits};
use item::Worker;

/// Everything a run needs, already validated by the CLI layer.
#[derive(Debug)]
pub struct RunConfig {
    pub jobs: PathBuf,
    pub output: PathBuf,
    pub overwrite: bool,
    pub plugin: PluginSource,
    /// The plugin configuration (a JSON object).
    pub plugin_config: serde_json::Map<String, serde_json::Value>,
    pub concurrency: usize,
    pub item: ItemSettings,
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
    let summary = input::validate_file(&config.jobs, 20).map_err(RunError::Input)?;
    tracing::info!(jobs = summary.jobs, file = %config.jobs.display(), "input validated");
    let mut writer = ResultWriter::create(&config.output, config.overwrite)?;
    let sandbox_err = |source| RunError::Sandbox { plugin: config.plugin.name.clone(), source };

    let instances = u32::try_from(config.concurrency + 2).unwrap_or(u32::MAX);
    let engine = SandboxEngine::new(&config.sandbox, instances).map_err(sandbox_err)?;
    let component = config.cache.load(&engine, &config.plugin.bytes, &config.plugin.digest).map_err(sandbox_err)?;
    let pre = sandbox::link(&engine, &component).map_err(sandbox_err)?;
    let shared = Arc::new(RunShared {
        plugin: config.plugin.name.clone(),
        config: serde_json::Value::Object(config.plugin_config.clone()).to_string(),
        run_state: Default::default(),
        egress: config.egress.clone(),
        limits: config.sandbox.clone(),
    });

    let mut first = PluginInstance::new(&pre, shared.clone()).await.map_err(sandbox_err)?;
    prepare(&mut first, &config.plugin.name).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let interrupts = spawn_interrupt_watch(stop.clone());
    let (job_tx, job_rx) = mpsc::channel::<Job>(config.concurrency * 2);
    let reader = spawn_reader(config.jobs.clone(), job_tx, stop.clone());
    let (record_tx, mut record_rx) = mpsc::channel::<ResultRecord>(config.concurrency * 2);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let settings = Arc::new(config.item.clone());
    let mut workers = tokio::task::JoinSet::new();
    let mut first = Some(first);
    for _ in 0..config.concurrency {
        let worker = Worker::new(pre.clone(), shared.clone(), settings.clone(), first.take());
        workers.spawn(work(worker, job_rx.clone(), record_tx.clone(), stop.clone()));
    }
    drop(record_tx);

    let mut report = RunReport::default();
    let mut write_error = None;
    while let Some(record) = record_rx.recv().await {
        match writer.write(&record) {
            Ok(()) => report.record(&record),
            Err(e) => {
                // Without a results file nothing may count: stop taking items.
                stop.store(true, Ordering::SeqCst);
                write_error.get_or_insert(e);
            }
        }
    }
    let mut leftover = None;
    while let Some(joined) = workers.join_next().await {
        if let Ok(Some(instance)) = joined {
            leftover.get_or_insert(instance);
        }
    }
    let _ = reader.await;
    interrupts.abort();
    cleanup(leftover, &pre, shared.clone()).await;

    if let Some(e) = write_error {
        return Err(e.into());
    }
    report.termination = if stop.load(Ordering::SeqCst) { Termination::Interrupted } else { Termination::Completed };
    let counters = config.egress.counters();
    report.http_requests = counters.requests.load(Ordering::Relaxed);
    report.egress_denied = counters.denied.load(Ordering::Relaxed);
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn prepare(instance: &mut PluginInstance, plugin: &str) -> Result<(), RunError> {
    let outcome = instance.prepare().await;
    let message = match outcome.result {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => format!("{:?}: {}", e.class, e.message),
        Err(call) => call.to_string(),
    };
    Err(RunError::Prepare { plugin: plugin.to_string(), message })
}

/// Calls `cleanup` exactly once, on a spare instance or a fresh one.
async fn cleanup(
    instance: Option<PluginInstance>,
    pre: &batchllm_bindings::StrategyPre<crate::sandbox::HostState>,
    shared: Arc<RunShared>,
) {
    let instance = match instance {
        Some(i) => Ok(i),
        None => PluginInstance::new(pre, shared).await,
    };
    let outcome = match instance {
        Ok(mut i) => i.cleanup().await.result.map_err(|e| e.to_string()).and_then(|r| r),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "plugin cleanup failed");
    }
}

/// A worker's loop: take jobs until the queue closes or the run stops.
async fn work(
    mut worker: Worker,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    records: mpsc::Sender<ResultRecord>,
    stop: Arc<AtomicBool>,
) -> Option<PluginInstance> {
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Some(job) = jobs.lock().await.recv().await else { break };
        let record = worker.run(job).await;
        if records.send(record).await.is_err() {
            break;
        }
    }
    worker.into_instance()
}

/// Feeds parsed jobs into the queue from a blocking thread.
fn spawn_reader(path: PathBuf, jobs: mpsc::Sender<Job>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let lines = match input::read_lines(&path) {
            Ok(lines) => lines,
            Err(e) => {
                tracing::error!(error = %e, "cannot reopen the jobs file");
                stop.store(true, Ordering::SeqCst);
                return;
            }
        };
        for entry in lines {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let (line, text) = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::error!(error = %e, "reading the jobs file failed mid-run");
                    stop.store(true, Ordering::SeqCst);
                    return;
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            match input::parse_line(&text, line) {
                Ok(job) => {
                    if jobs.blocking_send(job).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // The file changed since validation; stop rather than skip.
                    tracing::error!(line, problem = %e.problem, "input changed during the run; stopping");
                    stop.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    })
}

/// First Ctrl-C: stop taking new items, let in-flight ones finish.
/// Second Ctrl-C: exit at once with 130.
fn spawn_interrupt_watch(stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        tracing::warn!("interrupted: finishing in-flight items; press Ctrl-C again to exit now");
        stop.store(true, Ordering::SeqCst);
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::error!("interrupted twice: exiting without waiting for in-flight items");
            std::process::exit(130);
        }
    })
}
