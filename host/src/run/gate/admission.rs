//! Proactive admission: requests and tokens per minute, before sending.
//!
//! Two token buckets refilled continuously (the OpenAI cookbook's baseline),
//! with the cookbook's defects fixed:
//! - the bucket's burst is small (`burst` seconds' worth, default 1 s), since
//!   providers enforce per-minute limits over shorter periods;
//! - a request larger than the whole bucket is admitted alone once the bucket
//!   is full, instead of blocking the queue forever;
//! - the token charge (prompt estimate + max output tokens) is reconciled
//!   with the usage the response reports: unused tokens are refunded, extra
//!   ones become debt that delays later requests.
//!
//! Pure state: the time comes in as an argument, and every wait saturates
//! (a rate so small that the next token is years away waits the longest
//! wait the host allows, it never overflows).

use std::time::Duration;

use tokio::time::Instant;

use crate::run::policy::saturating_duration;

/// Configured limits.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AdmissionLimits {
    /// Requests per minute.
    pub rpm: Option<f64>,
    /// Tokens per minute (input + output).
    pub tpm: Option<f64>,
    /// Seconds of rate a bucket may hold (its burst size).
    pub burst_secs: f64,
}

#[derive(Debug, Clone)]
struct Bucket {
    per_sec: f64,
    capacity: f64,
    level: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_minute: f64, burst_secs: f64, now: Instant) -> Self {
        let per_sec = finite_positive(per_minute) / 60.0;
        let capacity = (per_sec * burst_secs).max(1.0);
        Bucket { per_sec, capacity, level: capacity, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.level = (self.level + self.per_sec * elapsed).min(self.capacity);
    }

    /// Time until `cost` can be taken (0 when it can now).
    fn wait_for(&self, cost: f64) -> Duration {
        // An oversized cost needs a full bucket, then goes into debt.
        let need = cost.min(self.capacity);
        if self.level >= need { Duration::ZERO } else { saturating_duration((need - self.level) / self.per_sec) }
    }
}

/// A rate that cannot be used as given becomes the smallest positive one
/// (the options layer refuses such values; this keeps the engine total).
fn finite_positive(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { f64::MIN_POSITIVE }
}

/// The RPM and TPM buckets of a run.
#[derive(Debug, Clone)]
pub(super) struct Buckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

impl Buckets {
    pub(super) fn new(limits: AdmissionLimits, now: Instant) -> Self {
        let burst = if limits.burst_secs.is_finite() && limits.burst_secs > 0.0 { limits.burst_secs } else { 1.0 };
        Buckets {
            requests: limits.rpm.map(|r| Bucket::new(r, burst, now)),
            tokens: limits.tpm.map(|t| Bucket::new(t, burst, now)),
        }
    }

    /// Whether any limit is configured.
    pub(super) fn is_limited(&self) -> bool {
        self.requests.is_some() || self.tokens.is_some()
    }

    /// Time until one request of `tokens` fits (zero: now).
    pub(super) fn wait(&mut self, tokens: u64, now: Instant) -> Duration {
        let mut wait = Duration::ZERO;
        if let Some(r) = self.requests.as_mut() {
            r.refill(now);
            wait = wait.max(r.wait_for(1.0));
        }
        if let Some(t) = self.tokens.as_mut() {
            t.refill(now);
            wait = wait.max(t.wait_for(tokens as f64));
        }
        wait
    }

    /// Takes one request and `tokens` (after [`Buckets::wait`] said zero).
    pub(super) fn take(&mut self, tokens: u64) {
        if let Some(r) = self.requests.as_mut() {
            r.level -= 1.0;
        }
        if let Some(t) = self.tokens.as_mut() {
            t.level -= tokens as f64;
        }
    }

    /// Corrects an estimate with the tokens actually used.
    pub(super) fn reconcile(&mut self, estimated: u64, actual: u64) {
        if let Some(t) = self.tokens.as_mut() {
            t.level = (t.level + estimated as f64 - actual as f64).min(t.capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: Option<f64>, tpm: Option<f64>) -> AdmissionLimits {
        AdmissionLimits { rpm, tpm, burst_secs: 1.0 }
    }

    fn admit(b: &mut Buckets, tokens: u64, now: Instant) -> Result<(), Duration> {
        match b.wait(tokens, now) {
            w if w.is_zero() => {
                b.take(tokens);
                Ok(())
            }
            w => Err(w),
        }
    }

    #[test]
    fn unlimited_admits_everything() {
        let now = Instant::now();
        let mut b = Buckets::new(AdmissionLimits::default(), now);
        assert!(!b.is_limited());
        for _ in 0..1000 {
            admit(&mut b, 1_000_000, now).expect("no limit");
        }
    }

    #[test]
    fn rpm_allows_a_burst_then_paces() {
        // 600 rpm = 10/s, burst of 1 s = 10 requests.
        let now = Instant::now();
        let mut b = Buckets::new(limits(Some(600.0), None), now);
        for _ in 0..10 {
            admit(&mut b, 0, now).expect("within burst");
        }
        let wait = admit(&mut b, 0, now).expect_err("burst used up");
        assert!(wait > Duration::from_millis(99) && wait <= Duration::from_millis(101), "{wait:?}");
        admit(&mut b, 0, now + Duration::from_millis(100)).expect("refilled");
    }

    #[test]
    fn an_oversized_request_is_admitted_alone_when_the_bucket_is_full() {
        let now = Instant::now();
        let mut b = Buckets::new(limits(None, Some(600.0)), now);
        // Capacity is 10 tokens; a 50-token request goes through on a full
        // bucket and leaves a debt of 40 tokens (4 s at 10/s, plus 0.1 s for
        // the next token).
        admit(&mut b, 50, now).expect("admitted alone");
        let wait = admit(&mut b, 1, now).expect_err("debt");
        assert!(wait > Duration::from_millis(4099) && wait <= Duration::from_millis(4101), "{wait:?}");
    }

    #[test]
    fn reconciling_refunds_and_charges() {
        let now = Instant::now();
        let mut b = Buckets::new(limits(None, Some(600.0)), now);
        admit(&mut b, 10, now).expect("full bucket");
        b.reconcile(10, 2); // used 2 of the 10 charged: 8 come back
        admit(&mut b, 8, now).expect("refunded");
        b.reconcile(0, 20); // 20 more than charged: debt
        assert!(admit(&mut b, 1, now).expect_err("in debt") > Duration::from_secs(1));
    }

    #[test]
    fn absurd_rates_wait_long_but_never_panic() {
        let now = Instant::now();
        for rate in [0.0, 1e-300, -5.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE] {
            let mut b = Buckets::new(AdmissionLimits { rpm: Some(rate), tpm: Some(rate), burst_secs: 1e-300 }, now);
            let _ = admit(&mut b, u64::MAX, now);
            let wait = b.wait(u64::MAX, now);
            assert!(wait <= crate::run::policy::MAX_WAIT, "{rate}: {wait:?}");
            b.reconcile(0, u64::MAX);
        }
    }
}
