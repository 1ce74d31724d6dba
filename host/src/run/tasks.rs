//! The run's background tasks: the reader, the workers' loop, the signal
//! and deadline watchers, and the plugin's lifecycle calls.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::item::Worker;
use super::queue;
use super::sink::Finished;
use super::{AbortReason, RunContext, RunError};
use crate::input;
use crate::model::Job;
use crate::sandbox::{HostState, PluginInstance, RunShared};

pub(super) async fn prepare(instance: &mut PluginInstance, plugin: &str) -> Result<(), RunError> {
    let outcome = instance.prepare().await;
    let message = match outcome.result {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => format!("{}: {}", crate::model::FailureClass::from(e.class).code(), e.message),
        Err(call) => call.to_string(),
    };
    Err(RunError::Prepare { plugin: plugin.to_string(), message })
}

/// Calls `cleanup` exactly once, on a spare instance or a fresh one.
pub(super) async fn cleanup(
    instance: Option<PluginInstance>,
    pre: &batchllm_bindings::StrategyPre<HostState>,
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

/// A worker's loop: take jobs until the queue closes or Ctrl-C.
pub(super) async fn work(
    mut worker: Worker,
    jobs: queue::Consumer<Job>,
    records: mpsc::Sender<Finished>,
    ctx: Arc<RunContext>,
) -> Option<PluginInstance> {
    loop {
        if ctx.control.interrupted() {
            break;
        }
        let Some(job) = jobs.pop().await else { break };
        let Some(record) = worker.run(job).await else { break };
        if ctx.events.enabled() {
            let b = &record.batchllm;
            let fields = serde_json::json!({
                "item": record.custom_id, "line": b.line, "status": b.status, "class": b.error_class,
                "attempts": b.attempts, "ms": b.latency_ms, "cost_usd": b.cost_usd,
            });
            ctx.events.emit("item_finished", fields);
        }
        // Fail-fast fires as the item ends, before this worker (or any other)
        // can take another queued item.
        if let Some(class) = record.batchllm.error_class.filter(|c| ctx.fail_fast.contains(c)) {
            ctx.abort(AbortReason::FailFast { class, item: record.custom_id.clone() });
        }
        let used =
            ctx.tokens_used.fetch_add(record.batchllm.usage.total(), Ordering::SeqCst) + record.batchllm.usage.total();
        if let Some(limit) = ctx.max_total_tokens.filter(|&l| used >= l) {
            ctx.abort(AbortReason::Budget { limit: format!("--max-total-tokens {limit}") });
        }
        let micros = (record.batchllm.cost_usd.unwrap_or(0.0) * 1e6).round() as u64;
        let spent = ctx.micro_dollars.fetch_add(micros, Ordering::SeqCst) + micros;
        if let Some(limit) = ctx.max_cost.filter(|&l| spent as f64 / 1e6 >= l) {
            ctx.abort(AbortReason::Budget { limit: format!("--max-cost {limit}") });
        }
        // Wait until the record is written before taking another item, so
        // at any moment at most one answered-but-unrecorded item per worker
        // exists (what a crash could make the provider see twice).
        let (written, ack) = tokio::sync::oneshot::channel();
        if records.send(Finished { record, written }).await.is_err() {
            break;
        }
        let _ = ack.await;
    }
    worker.into_instance()
}

/// Feeds parsed jobs into the queue from a blocking thread.
pub(super) fn spawn_reader(
    path: PathBuf,
    jobs: queue::Producer<Job>,
    ctx: Arc<RunContext>,
    done: Arc<std::collections::HashSet<String>>,
    order: Option<mpsc::UnboundedSender<usize>>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let lines = match input::read_lines(&path) {
            Ok(lines) => lines,
            Err(e) => {
                tracing::error!(error = %e, "cannot reopen the jobs file");
                ctx.control.interrupt();
                return;
            }
        };
        for entry in lines {
            // After an abort the remaining lines still flow: workers turn
            // each into an `aborted` record without calling the plugin.
            if ctx.control.interrupted() {
                return;
            }
            let (line, text) = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::error!(error = %e, "reading the jobs file failed mid-run");
                    ctx.control.interrupt();
                    return;
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            match input::parse_line(&text, line) {
                Ok(job) if done.contains(&job.id) => {}
                Ok(job) => {
                    // Announce the line before the job exists anywhere else,
                    // so its record can never arrive first.
                    if let Some(order) = &order {
                        let _ = order.send(job.line);
                    }
                    if jobs.push_blocking(job).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // The file changed since validation; stop rather than skip.
                    tracing::error!(line, problem = %e.problem, "input changed during the run; stopping");
                    ctx.control.interrupt();
                    return;
                }
            }
        }
    })
}

/// First Ctrl-C: stop taking new items, let in-flight ones finish.
/// Second Ctrl-C: drop in-flight calls; `cleanup` still runs.
pub(super) fn spawn_interrupt_watch(ctx: Arc<RunContext>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        tracing::warn!("interrupted: finishing in-flight items; press Ctrl-C again to stop at once");
        ctx.control.interrupt();
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::error!("interrupted twice: cancelling in-flight items");
            ctx.control.hard_stop();
        }
    })
}

/// Aborts the run when the batch deadline passes.
pub(super) fn spawn_batch_deadline(ctx: Arc<RunContext>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Some(deadline) = ctx.control.batch_deadline {
            tokio::time::sleep_until(deadline.into()).await;
            ctx.abort(AbortReason::BatchDeadline);
        }
    })
}
