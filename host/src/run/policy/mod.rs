//! Failure policy: pure decisions about what happens after an attempt.
//!
//! - [`retry`]: whether an item gets another attempt, and after what wait;
//! - [`abort`]: why a run is aborted and what class the items it ends get;
//! - [`reconcile`]: the plugin's verdict corrected by what the host saw on
//!   the wire (a 429 is a rate limit whatever the plugin says);
//! - [`estimate`]: the token charge of an attempt, before the provider says.
//!
//! Nothing here reads a clock or a random source: both come in as
//! arguments, so every decision is unit-tested exactly.

pub mod abort;
pub mod estimate;
pub mod reconcile;
pub mod retry;

use std::time::Duration;

use tokio::time::Instant;

/// The longest wait the engine ever imposes: waits computed from absurd
/// settings or provider answers saturate here instead of overflowing.
pub const MAX_WAIT: Duration = Duration::from_secs(366 * 24 * 3600);

/// `secs` as a duration, saturating at [`MAX_WAIT`] (NaN and negatives are 0).
pub fn saturating_duration(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(MAX_WAIT).min(MAX_WAIT)
}

/// `at + d`, with `d` cut to [`MAX_WAIT`] (never overflows).
pub fn later(at: Instant, d: Duration) -> Instant {
    let d = d.min(MAX_WAIT);
    at.checked_add(d).unwrap_or(at)
}
