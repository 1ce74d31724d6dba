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

use std::sync::Mutex;
use std::time::{Duration, Instant};

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

#[derive(Debug)]
struct Bucket {
    per_sec: f64,
    capacity: f64,
    level: f64,
}

impl Bucket {
    fn new(per_minute: f64, burst_secs: f64) -> Self {
        let per_sec = per_minute / 60.0;
        let capacity = (per_sec * burst_secs).max(1.0);
        Bucket { per_sec, capacity, level: capacity }
    }

    fn refill(&mut self, elapsed: Duration) {
        self.level = (self.level + self.per_sec * elapsed.as_secs_f64()).min(self.capacity);
    }

    /// Time until `cost` can be taken (0 when it can now).
    fn wait_for(&self, cost: f64) -> Duration {
        // An oversized cost needs a full bucket, then goes into debt.
        let need = cost.min(self.capacity);
        if self.level >= need { Duration::ZERO } else { Duration::from_secs_f64((need - self.level) / self.per_sec) }
    }
}

#[derive(Debug)]
struct Buckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    last: Instant,
}

/// Admission control shared by every worker.
#[derive(Debug)]
pub struct Admission {
    buckets: Mutex<Buckets>,
    /// Whether any bucket exists (fixed at construction; checked per item).
    limited: bool,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Self {
        let burst = if limits.burst_secs > 0.0 { limits.burst_secs } else { 1.0 };
        Admission {
            buckets: Mutex::new(Buckets {
                requests: limits.rpm.map(|r| Bucket::new(r, burst)),
                tokens: limits.tpm.map(|t| Bucket::new(t, burst)),
                last: Instant::now(),
            }),
            limited: limits.rpm.is_some() || limits.tpm.is_some(),
        }
    }

    /// Whether any limit is configured.
    pub fn is_limited(&self) -> bool {
        self.limited
    }

    /// Tries to take one request and `tokens`; on failure returns how long to
    /// wait before trying again.
    pub fn try_acquire(&self, tokens: u64) -> Result<(), Duration> {
        let mut b = lock(&self.buckets);
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(b.last);
        b.last = now;
        let tokens = tokens as f64;
        let mut wait = Duration::ZERO;
        if let Some(r) = b.requests.as_mut() {
            r.refill(elapsed);
            wait = wait.max(r.wait_for(1.0));
        }
        if let Some(t) = b.tokens.as_mut() {
            t.refill(elapsed);
            wait = wait.max(t.wait_for(tokens));
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        if let Some(r) = b.requests.as_mut() {
            r.level -= 1.0;
        }
        if let Some(t) = b.tokens.as_mut() {
            t.level -= tokens;
        }
        Ok(())
    }

    /// Waits until one request and `tokens` are admitted, or `give_up`
    /// resolves first (returns false then).
    pub async fn acquire(&self, tokens: u64, give_up: impl std::future::Future<Output = ()>) -> bool {
        tokio::pin!(give_up);
        loop {
            match self.try_acquire(tokens) {
                Ok(()) => return true,
                Err(wait) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
                        _ = &mut give_up => return false,
                    }
                }
            }
        }
    }

    /// Corrects an estimate with the tokens actually used.
    pub fn reconcile(&self, estimated: u64, actual: u64) {
        if let Some(t) = lock(&self.buckets).tokens.as_mut() {
            t.level = (t.level + estimated as f64 - actual as f64).min(t.capacity);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_admits_everything() {
        let a = Admission::new(AdmissionLimits::default());
        assert!(!a.is_limited());
        for _ in 0..1000 {
            a.try_acquire(1_000_000).expect("no limit");
        }
    }

    #[test]
    fn rpm_allows_a_burst_then_paces() {
        // 600 rpm = 10/s, burst of 1 s = 10 requests.
        let a = Admission::new(AdmissionLimits { rpm: Some(600.0), tpm: None, burst_secs: 1.0 });
        for _ in 0..10 {
            a.try_acquire(0).expect("within burst");
        }
        let wait = a.try_acquire(0).expect_err("burst used up");
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
    }

    #[test]
    fn an_oversized_request_is_admitted_alone_when_the_bucket_is_full() {
        let a = Admission::new(AdmissionLimits { rpm: None, tpm: Some(600.0), burst_secs: 1.0 });
        // Capacity is 10 tokens; a 50-token request goes through on a full
        // bucket and leaves a debt of 40 tokens (4 s at 10/s).
        a.try_acquire(50).expect("admitted alone");
        let wait = a.try_acquire(1).expect_err("debt");
        assert!(wait > Duration::from_millis(4000) && wait <= Duration::from_millis(4100), "{wait:?}");
    }

    #[test]
    fn reconciling_refunds_and_charges() {
        let a = Admission::new(AdmissionLimits { rpm: None, tpm: Some(600.0), burst_secs: 1.0 });
        a.try_acquire(10).expect("full bucket");
        a.reconcile(10, 2); // used 2 of the 10 charged: 8 come back
        a.try_acquire(8).expect("refunded");
        a.reconcile(0, 20); // 20 more than charged: debt
        assert!(a.try_acquire(1).expect_err("in debt") > Duration::from_secs(1));
    }
}
