//! The run's background tasks: the reader that feeds jobs, and the workers'
//! loop that turns them into records.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::context::RunContext;
use super::executor::ExecutorFactory;
use super::queue;
use super::record;
use super::sink::Finished;
use super::worker::Worker;
use crate::input::{Spool, SpoolEntry};
use crate::model::Job;
use crate::run::observe::Event;

/// A worker's loop: take jobs until the queue closes or the run stops.
pub(super) async fn work<F: ExecutorFactory>(
    mut worker: Worker<F>,
    jobs: queue::Consumer<Job>,
    records: mpsc::Sender<Finished>,
    ctx: Arc<RunContext>,
) -> Option<F::Executor> {
    loop {
        if ctx.control.stopping() {
            break;
        }
        // A permit before the job, so a job never waits outside the queue.
        let permit = match &ctx.items {
            Some(items) => tokio::select! {
                permit = items.clone().acquire_owned() => match permit {
                    Ok(permit) => Some(permit),
                    Err(_) => break,
                },
                () = ctx.control.until_stopping() => break,
            },
            None => None,
        };
        let job = tokio::select! {
            job = jobs.pop() => job,
            () = ctx.control.until_stopping() => None,
        };
        let Some(job) = job else { break };
        let (id, started) = (job.id.clone(), Instant::now());
        let kept = (job.line, job.fingerprint.clone(), job.context.clone(), job.endpoint.clone());
        // A panic is a bug in the host; it must not lose the item silently
        // nor take the run down: the item gets a `host_error` record.
        let record = match AssertUnwindSafe(worker.run(job)).catch_unwind().await {
            Ok(Some(record)) => record,
            Ok(None) => continue,
            Err(panic) => {
                worker.reset();
                let message = panic_message(panic.as_ref());
                tracing::error!(item = %id, panic = %message, "a worker failed on this item (a bug in the host)");
                let job = Job {
                    line: kept.0,
                    id,
                    prompt: String::new(),
                    params: Default::default(),
                    context: kept.2,
                    endpoint: kept.3,
                    fingerprint: kept.1,
                };
                let message = format!(
                    "the host failed while running this item ({message}); the provider may have answered it (--retry-failed sends it again)"
                );
                record::host_failure(&job, message, started, &ctx.identity)
            }
        };
        ctx.observe.event(|| {
            let b = &record.batchllm;
            Event::ItemFinished {
                item: &record.custom_id,
                line: b.line,
                status: b.status,
                class: b.error_class,
                attempts: b.attempts,
                ms: b.latency_ms,
                cost_usd: b.cost_usd,
            }
        });
        if let Some(reason) = ctx.budgets.charge(&record) {
            ctx.abort(reason);
        }
        // Wait until the record is written before taking another item, so
        // at any moment at most one answered-but-unrecorded item per worker
        // exists (what a crash could make the provider see twice).
        let (written, ack) = tokio::sync::oneshot::channel();
        if records.send(Finished { record, written }).await.is_err() {
            break;
        }
        let _ = ack.await;
        drop(permit);
    }
    worker.into_executor()
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Feeds the spooled jobs into the queue from a blocking thread. The spool
/// holds exactly the jobs to send, already validated and parsed (and the ids
/// of those a resume keeps, which are skipped); it is removed when the
/// reader is done with it.
pub(crate) fn spawn_reader(
    spool: Spool,
    jobs: queue::Producer<Job>,
    ctx: Arc<RunContext>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let entries = match spool.entries() {
            Ok(entries) => entries,
            Err(e) => {
                ctx.control.fail(format!("cannot read the spool {}: {e}", spool.path().display()));
                return;
            }
        };
        for entry in entries {
            // After an abort the remaining jobs still flow: workers turn
            // each into an `aborted` record without calling the plugin.
            if ctx.control.stopping() {
                return;
            }
            match entry {
                Ok(SpoolEntry::Run(job)) => {
                    if jobs.push_blocking(job).is_err() {
                        return;
                    }
                }
                Ok(SpoolEntry::Kept { .. }) => {}
                Err(e) => {
                    ctx.control.fail(format!("reading the spool {} failed mid-run: {e}", spool.path().display()));
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_read_whatever_their_type() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&42u8), "a panic without a message");
    }
}
