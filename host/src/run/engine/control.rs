//! Run-wide stop signals: aborts, the batch deadline, and stop requests.
//!
//! Two different stops, on purpose:
//! - an *abort* (fail-fast class, budget, batch deadline) ends the run early
//!   but still gives every remaining input line a terminal record, so the
//!   results file says exactly what happened to each item;
//! - a *stop* (SIGINT, SIGTERM, SIGHUP in the CLI; a cancel in a service)
//!   ends every wait at once and starts no new attempt; items that were not
//!   on the wire keep no record, so re-running resumes them. Calls already
//!   on the wire get a grace period to answer; after it (or at once on a
//!   second request, [`StopHandle::stop_now`]) they are dropped and their
//!   items end `outcome_unknown`, since the provider may have answered.
//!
//! In-flight calls are dropped in three cases, all through one token: an
//! abort in `cancel` mode, a stop whose grace ran out, and a stop-now.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::run::policy::abort::AbortReason;

/// What happens to in-flight calls on abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AbortMode {
    /// Let in-flight attempts finish (no new attempt starts).
    #[default]
    Drain,
    /// Cancel in-flight attempts; their items end `outcome_unknown`.
    Cancel,
}

/// How a caller asks a run to stop: cheap to clone, safe to use from a
/// signal handler task or another thread.
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    graceful: CancellationToken,
    now: CancellationToken,
}

impl StopHandle {
    /// Stop waiting and starting; let calls on the wire answer (within the
    /// run's grace).
    pub fn stop(&self) {
        self.graceful.cancel();
    }

    /// Stop at once: drop calls on the wire too.
    pub fn stop_now(&self) {
        self.graceful.cancel();
        self.now.cancel();
    }

    /// Whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.graceful.is_cancelled()
    }

    /// Resolves once a stop is requested.
    pub async fn until_stopping(&self) {
        self.graceful.cancelled().await;
    }
}

/// Shared by every task of a run.
#[derive(Debug)]
pub struct RunControl {
    abort: CancellationToken,
    reason: OnceLock<AbortReason>,
    stop: StopHandle,
    /// Cancelled when in-flight calls must be dropped.
    drop_calls: CancellationToken,
    /// A failure of the host itself (results file, a bug), once one happened.
    host_failure: OnceLock<String>,
    mode: AbortMode,
    /// The batch deadline, if any.
    pub batch_deadline: Option<Instant>,
    /// How long calls on the wire may still answer after a stop.
    pub stop_grace: Duration,
}

impl RunControl {
    pub fn new(mode: AbortMode, batch_deadline: Option<Instant>, stop: StopHandle, stop_grace: Duration) -> Self {
        RunControl {
            abort: CancellationToken::new(),
            reason: OnceLock::new(),
            stop,
            drop_calls: CancellationToken::new(),
            host_failure: OnceLock::new(),
            mode,
            batch_deadline,
            stop_grace,
        }
    }

    /// Aborts the run; the first reason wins. Returns whether this call did it.
    pub fn abort(&self, reason: AbortReason) -> bool {
        let first = self.reason.set(reason.clone()).is_ok();
        if first {
            tracing::error!(reason = %reason.message(), "aborting the run");
        }
        self.abort.cancel();
        if self.mode == AbortMode::Cancel {
            self.drop_calls.cancel();
        }
        first
    }

    /// The abort reason, once aborted.
    pub fn aborted(&self) -> Option<&AbortReason> {
        self.reason.get()
    }

    /// Resolves when the run is aborted.
    pub async fn until_aborted(&self) {
        self.abort.cancelled().await;
    }

    /// Whether a stop was requested (no new item, no new attempt).
    pub fn stopping(&self) -> bool {
        self.stop.is_stopping()
    }

    /// Resolves when a stop is requested.
    pub async fn until_stopping(&self) {
        self.stop.graceful.cancelled().await;
    }

    /// The handle that requests stops (the engine stops itself on a host failure).
    pub fn stop_handle(&self) -> &StopHandle {
        &self.stop
    }

    /// Whether in-flight calls are being dropped.
    pub fn dropping_calls(&self) -> bool {
        self.drop_calls.is_cancelled()
    }

    /// Resolves when in-flight calls must be dropped.
    pub async fn until_calls_dropped(&self) {
        self.drop_calls.cancelled().await;
    }

    /// Resolves when any wait must end: a stop or an abort.
    pub async fn until_wait_ends(&self) {
        tokio::select! {
            () = self.stop.graceful.cancelled() => {}
            () = self.abort.cancelled() => {}
        }
    }

    /// Records a failure of the host itself and stops the run: nothing more
    /// may be sent when results can no longer be kept.
    pub fn fail(&self, message: String) {
        if self.host_failure.set(message.clone()).is_ok() {
            tracing::error!(error = %message, "the host failed; stopping the run");
        }
        self.stop.stop();
    }

    /// The host failure, if one happened.
    pub fn host_failure(&self) -> Option<&str> {
        self.host_failure.get().map(String::as_str)
    }

    /// Drops in-flight calls when asked: at once on a stop-now, after the
    /// grace on a stop. Runs for the whole run (the engine aborts it at the end).
    pub async fn watch_stops(&self) {
        self.stop.graceful.cancelled().await;
        tokio::select! {
            () = tokio::time::sleep(self.stop_grace) => {
                tracing::warn!(grace = ?self.stop_grace, "calls still on the wire after the stop grace: dropping them");
            }
            () = self.stop.now.cancelled() => {}
        }
        self.drop_calls.cancel();
    }

    /// Aborts the run when the batch deadline passes.
    pub async fn watch_batch_deadline(&self) {
        if let Some(deadline) = self.batch_deadline {
            tokio::time::sleep_until(deadline).await;
            self.abort(AbortReason::BatchDeadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_waits_at_once_and_drops_calls_after_the_grace() {
        let stop = StopHandle::default();
        let control = Arc::new(RunControl::new(AbortMode::Drain, None, stop.clone(), Duration::from_secs(10)));
        let watcher = tokio::spawn({
            let c = control.clone();
            async move { c.watch_stops().await }
        });
        let t0 = Instant::now();
        stop.stop();
        control.until_wait_ends().await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert!(!control.dropping_calls());
        control.until_calls_dropped().await;
        assert_eq!(t0.elapsed(), Duration::from_secs(10));
        watcher.await.expect("join");
    }

    #[tokio::test(start_paused = true)]
    async fn stop_now_drops_calls_at_once_and_cancel_mode_aborts_drop_them_too() {
        let stop = StopHandle::default();
        let control = Arc::new(RunControl::new(AbortMode::Drain, None, stop.clone(), Duration::from_secs(10)));
        let watcher = tokio::spawn({
            let c = control.clone();
            async move { c.watch_stops().await }
        });
        stop.stop_now();
        watcher.await.expect("join");
        assert!(control.dropping_calls());

        let cancel = RunControl::new(AbortMode::Cancel, None, StopHandle::default(), Duration::ZERO);
        assert!(cancel.abort(AbortReason::BatchDeadline));
        assert!(!cancel.abort(AbortReason::Budget { limit: "x".into() }), "first reason wins");
        assert!(cancel.dropping_calls());
        assert_eq!(cancel.aborted(), Some(&AbortReason::BatchDeadline));
        let drain = RunControl::new(AbortMode::Drain, None, StopHandle::default(), Duration::ZERO);
        drain.abort(AbortReason::BatchDeadline);
        assert!(!drain.dropping_calls(), "drain lets calls finish");
    }
}
