//! Run-wide stop signals: fail-fast and budget aborts, the batch deadline,
//! and Ctrl-C.
//!
//! Two different stops, on purpose:
//! - an *abort* (fail-fast class, batch deadline) ends the run early but
//!   still gives every remaining input line a terminal record, so the results
//!   file says exactly what happened to each item;
//! - an *interrupt* (Ctrl-C) only stops taking new items: items never
//!   started get no record, so re-running resumes them.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::model::FailureClass;

/// Why a run was aborted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AbortReason {
    /// An item ended with a fail-fast class.
    FailFast { class: FailureClass, item: String },
    /// The batch deadline passed.
    BatchDeadline,
    /// A budget (`--max-total-tokens`) was used up.
    Budget { limit: String },
}

impl AbortReason {
    /// The class given to items the abort ends.
    pub fn class(&self) -> FailureClass {
        match self {
            AbortReason::FailFast { .. } | AbortReason::Budget { .. } => FailureClass::Aborted,
            AbortReason::BatchDeadline => FailureClass::BatchDeadlineExceeded,
        }
    }

    /// A sentence for result records and the summary.
    pub fn message(&self) -> String {
        match self {
            AbortReason::FailFast { class, item } => {
                format!("run aborted: item `{item}` failed with fail-fast class `{class}`")
            }
            AbortReason::BatchDeadline => "run aborted: the batch deadline passed".to_string(),
            AbortReason::Budget { limit } => format!("run aborted: the budget {limit} is used up"),
        }
    }
}

/// What happens to in-flight calls on abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AbortMode {
    /// Let in-flight attempts finish (no new attempt starts).
    #[default]
    Drain,
    /// Cancel in-flight attempts; their items end as aborted.
    Cancel,
}

/// Shared by every task of a run.
#[derive(Debug)]
pub struct RunControl {
    abort: CancellationToken,
    reason: OnceLock<AbortReason>,
    interrupted: AtomicBool,
    hard_stop: CancellationToken,
    /// When in-flight attempts must be cancelled.
    pub mode: AbortMode,
    /// The batch deadline, if any.
    pub batch_deadline: Option<Instant>,
}

impl RunControl {
    pub fn new(mode: AbortMode, batch_deadline: Option<Instant>) -> Self {
        RunControl {
            abort: CancellationToken::new(),
            reason: OnceLock::new(),
            interrupted: AtomicBool::new(false),
            hard_stop: CancellationToken::new(),
            mode,
            batch_deadline,
        }
    }

    /// Aborts the run; the first reason wins. Returns whether this call did it.
    pub fn abort(&self, reason: AbortReason) -> bool {
        let first = self.reason.set(reason.clone()).is_ok();
        if first {
            tracing::error!(reason = %reason.message(), "aborting the run");
        }
        self.abort.cancel();
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

    /// Resolves when in-flight attempts must stop: an abort in cancel mode.
    pub async fn until_cancelled(&self) {
        match self.mode {
            AbortMode::Cancel => self.abort.cancelled().await,
            AbortMode::Drain => std::future::pending().await,
        }
    }

    /// Ctrl-C: stop taking new items.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
    }

    /// Whether Ctrl-C was pressed.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Second Ctrl-C: drop in-flight calls; their items get no record.
    pub fn hard_stop(&self) {
        self.interrupt();
        self.hard_stop.cancel();
    }

    /// Whether a hard stop was requested.
    pub fn hard_stopped(&self) -> bool {
        self.hard_stop.is_cancelled()
    }

    /// Resolves on a hard stop.
    pub async fn until_hard_stop(&self) {
        self.hard_stop.cancelled().await;
    }
}
