//! Orchestration: workers take jobs from a bounded queue, run their attempts
//! through an [`Executor`], and hand records to one sink.
//!
//! [`drive`] is the engine without files or plugins: the caller gives it a
//! job queue, an executor factory and a record sink, so the same code runs
//! a real batch and the engine's tests (a scripted executor, records in a
//! vector, paused time).

pub mod context;
pub mod control;
pub mod executor;
pub mod queue;
mod record;
pub mod sink;
mod tasks;
mod worker;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio::sync::mpsc;

pub use context::{Budgets, InFlight, ItemSettings, JournalError, Observers, Pricing, RunContext, SharedJournal};
pub use control::{AbortMode, RunControl, StopHandle};
pub use executor::{Executor, ExecutorFactory, PluginFactory};
pub use sink::{RecordSink, Sink};
pub(crate) use tasks::spawn_reader;
pub use worker::Worker;

use crate::model::Job;

/// Runs every job of `jobs` on `concurrency` workers into `sink`, until the
/// queue is empty or the run stops. `first` is an executor to reuse (the
/// one `prepare` ran on). Returns a usable executor for `cleanup`, if any
/// worker kept one.
pub async fn drive<F: ExecutorFactory, W: RecordSink>(
    ctx: Arc<RunContext>,
    factory: Arc<F>,
    first: Option<F::Executor>,
    concurrency: usize,
    jobs: queue::Consumer<Job>,
    sink: &mut Sink<W>,
) -> Option<F::Executor> {
    let watchers = [
        tokio::spawn({
            let ctx = ctx.clone();
            async move { ctx.control.watch_stops().await }
        }),
        tokio::spawn({
            let ctx = ctx.clone();
            async move { ctx.control.watch_batch_deadline().await }
        }),
    ];
    let (record_tx, mut record_rx) = mpsc::channel::<sink::Finished>(concurrency.max(1) * 2);
    let mut workers = tokio::task::JoinSet::new();
    let mut first = first;
    for _ in 0..concurrency.max(1) {
        let worker = Worker::new(factory.clone(), ctx.clone(), first.take());
        workers.spawn(tasks::work(worker, jobs.clone(), record_tx.clone(), ctx.clone()));
    }
    // Only workers hold the queue's ends now: when they stop, the reader's
    // next push fails instead of waiting forever.
    drop((record_tx, jobs));
    sink.drain(&mut record_rx, &ctx).await;

    let mut spare = None;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(Some(executor)) => {
                spare.get_or_insert(executor);
            }
            Ok(None) => {}
            Err(e) => ctx.control.fail(format!("a worker task failed: {e}")),
        }
    }
    for w in watchers {
        w.abort();
    }
    spare
}
