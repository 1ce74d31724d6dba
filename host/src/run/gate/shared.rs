//! The seam for gates shared by several hosts.
//!
//! The local [`super::Gates`] decide under a mutex on this process's clock.
//! A [`SharedGate`] makes the same decisions (cooldown with its slow start,
//! learned header budgets, RPM/TPM buckets) somewhere every host sees, one
//! atomic step per decision on one clock (`cluster::limiter` does it in
//! Redis scripts). The difference in shape is that a shared gate *reserves*
//! a send time instead of answering yes or no: a worker told to wait 300 ms
//! already owns the slot 300 ms from now, sleeps until it, and confirms
//! that no cooldown began meanwhile. Nobody polls, and the end of a pause
//! does not wake every host's workers at once. A slot is a time on the
//! gate's clock, mapped to this host's ([`Reservation::due`]): a worker
//! that wakes too long after it gives it up and asks again (`Gates`
//! decides how long is too long), so a slow reply or a busy host cannot
//! put several hosts' sends into one moment.
//!
//! [`super::Gates`] keeps the waiting discipline (one FIFO queue per host,
//! only its head asking again while the gates are closed) and falls back to
//! waiting when the shared gate cannot be reached: fail closed, never the
//! full limit on each host.

use std::fmt::Debug;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::{GateSettings, RateLimitEffect, Verdict};

/// A send slot granted by a shared gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    /// The slot on this host's clock: never before the gate's slot.
    pub due: Instant,
    /// When to ask whether the slot still holds (a reservation that had
    /// to wait, so a cooldown may have begun meanwhile), early enough for
    /// the answer to be back by the slot; `None`: send at once.
    pub confirm_at: Option<Instant>,
    /// The gate's name for this attempt (its in-flight entry).
    pub id: u64,
    /// The slot on the gate's clock, in milliseconds (what a later rate
    /// limit is compared with: was this sent before the pause began?).
    pub send_ms: f64,
}

/// What a shared gate answered to a request for a slot.
#[derive(Debug, Clone, PartialEq)]
pub enum Reserve {
    Granted(Reservation),
    /// The gates are closed (a cooldown, a used-up budget): ask again
    /// after this long.
    Closed(Duration),
    /// The next slot is too far ahead to hold: ask again after this long.
    Later(Duration),
}

/// How an attempt ended, for the shared gate.
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    pub scope: Option<&'a str>,
    pub verdict: Verdict,
    /// Request budgets read from the answer's headers: `(scope, remaining,
    /// time to reset)` (already capped by the longest honoured wait).
    pub budgets: Vec<(&'a str, i64, Duration)>,
    pub estimated_tokens: u64,
    pub used_tokens: u64,
}

/// The shared gate could not be asked (unreachable, refused, timed out).
#[derive(Debug, thiserror::Error)]
#[error("the shared limiter did not answer: {message}")]
pub struct SharedGateError {
    pub message: String,
    /// What failed underneath (Redis's own error), when something did.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Gates shared by every host of a cluster.
pub trait SharedGate: Send + Sync + Debug {
    /// A slot for an attempt to `scope` (`None`: not known yet, so every
    /// known scope must allow it) costing `tokens`.
    fn reserve<'a>(
        &'a self,
        settings: &'a GateSettings,
        scope: Option<&'a str>,
        tokens: u64,
    ) -> BoxFuture<'a, Result<Reserve, SharedGateError>>;

    /// Called at the slot of a reservation that had to wait: `None` when it
    /// still holds, else the wait of a cooldown that began meanwhile (the
    /// slot is given up).
    fn confirm<'a>(
        &'a self,
        scope: Option<&'a str>,
        reservation: &'a Reservation,
    ) -> BoxFuture<'a, Result<Option<Duration>, SharedGateError>>;

    /// Records the answer to the attempt of `reservation`; returns what a
    /// rate limit did to the scope.
    fn settle<'a>(
        &'a self,
        settings: &'a GateSettings,
        reservation: &'a Reservation,
        settlement: Settlement<'a>,
    ) -> BoxFuture<'a, Result<Option<RateLimitEffect>, SharedGateError>>;

    /// Gives up a reservation whose attempt never happened or was dropped
    /// unanswered (best effort: the gate also forgets it after a while).
    fn release(&self, reservation: &Reservation);
}
