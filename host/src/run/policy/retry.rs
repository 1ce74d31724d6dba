//! When to try an item again, and how long to wait first.
//!
//! The host owns this policy; plugins only classify. Two budgets, as in
//! async-batch-llm: `max_attempts` counts failures other than rate limits,
//! `max_rate_limit_retries` counts rate limits, so a throttled provider does
//! not burn an item's attempts. Validation failures (`invalid_response`) are
//! retried without backoff: waiting does not make a model answer better.
//! A rate-limited item has no backoff of its own either: it waits out the
//! scope's coordinated cooldown (`run::gate::cooldown`) like every other
//! attempt in the scope.

use std::time::Duration;

use super::saturating_duration;
use crate::model::FailureClass;

/// The retry settings of a run.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts allowed for failures other than rate limits (>= 1).
    pub max_attempts: u32,
    /// Rate-limit retries allowed per item.
    pub max_rate_limit_retries: u32,
    /// Backoff before the 2nd attempt.
    pub initial_backoff: Duration,
    /// Cap on a single backoff.
    pub max_backoff: Duration,
    /// Growth per failed attempt.
    pub multiplier: f64,
    /// Multiply each backoff by a random factor in [0.5, 1.0].
    pub jitter: bool,
    /// Longest server-requested wait the host honours as given; longer hints
    /// are capped to this.
    pub max_server_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            max_rate_limit_retries: 20,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: true,
            max_server_wait: Duration::from_secs(120),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Try again after waiting this long.
    Retry(Duration),
    /// The item ends failed.
    GiveUp,
}

/// Counts of an item's failures so far, the current one included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCounts {
    /// Failures that use the attempts budget.
    pub attempts: u32,
    /// Rate-limit failures.
    pub rate_limits: u32,
}

impl RetryPolicy {
    /// Decides after a failure of `class`. `server_wait` is the provider's
    /// hint, if any; `unit` in [0, 1) is the jitter draw.
    pub fn decide(
        &self,
        class: FailureClass,
        counts: FailureCounts,
        server_wait: Option<Duration>,
        unit: f64,
    ) -> Decision {
        if !class.is_retryable() {
            return Decision::GiveUp;
        }
        let hint = self.server_wait(server_wait);
        if class == FailureClass::RateLimited {
            if counts.rate_limits > self.max_rate_limit_retries {
                return Decision::GiveUp;
            }
            return Decision::Retry(Duration::ZERO);
        }
        if counts.attempts >= self.max_attempts {
            return Decision::GiveUp;
        }
        if class == FailureClass::InvalidResponse {
            return Decision::Retry(Duration::ZERO);
        }
        let backoff = self.backoff(counts.attempts, unit);
        Decision::Retry(hint.map_or(backoff, |h| h.max(backoff)))
    }

    /// A server's requested wait, capped at `max_server_wait`.
    pub fn server_wait(&self, hint: Option<Duration>) -> Option<Duration> {
        hint.map(|w| w.min(self.max_server_wait))
    }

    /// `min(initial * multiplier^(n-1), max)`, times the jitter factor.
    pub fn backoff(&self, failures: u32, unit: f64) -> Duration {
        let exp = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let raw = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exp);
        let capped = raw.min(self.max_backoff.as_secs_f64());
        let factor = if self.jitter { 0.5 + unit.clamp(0.0, 1.0) * 0.5 } else { 1.0 };
        saturating_duration(capped * factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { jitter: false, ..RetryPolicy::default() }
    }

    fn counts(attempts: u32, rate_limits: u32) -> FailureCounts {
        FailureCounts { attempts, rate_limits }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = policy();
        assert_eq!(p.backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(p.backoff(2, 0.0), Duration::from_secs(2));
        assert_eq!(p.backoff(3, 0.0), Duration::from_secs(4));
        assert_eq!(p.backoff(30, 0.0), Duration::from_secs(60));
        let j = RetryPolicy::default();
        assert_eq!(j.backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(j.backoff(1, 0.999_999), Duration::from_secs_f64(0.999_999_5));
    }

    #[test]
    fn fatal_classes_are_tried_once() {
        for class in
            [FailureClass::ClientError, FailureClass::Auth, FailureClass::QuotaExhausted, FailureClass::TooLarge]
        {
            assert_eq!(policy().decide(class, counts(1, 0), None, 0.0), Decision::GiveUp);
        }
    }

    #[test]
    fn attempts_budget_ends_transient_failures() {
        let p = policy();
        assert_eq!(
            p.decide(FailureClass::Overloaded, counts(1, 0), None, 0.0),
            Decision::Retry(Duration::from_secs(1))
        );
        assert_eq!(
            p.decide(FailureClass::Overloaded, counts(2, 0), None, 0.0),
            Decision::Retry(Duration::from_secs(2))
        );
        assert_eq!(p.decide(FailureClass::Overloaded, counts(3, 0), None, 0.0), Decision::GiveUp);
    }

    #[test]
    fn rate_limits_use_their_own_budget_and_wait_in_the_cooldown() {
        let p = RetryPolicy { max_rate_limit_retries: 2, ..policy() };
        let hint = Some(Duration::from_millis(1500));
        // Attempts used up by other failures do not stop rate-limit retries,
        // and the wait is the scope's coordinated cooldown, not a backoff.
        assert_eq!(p.decide(FailureClass::RateLimited, counts(3, 1), hint, 0.0), Decision::Retry(Duration::ZERO));
        assert_eq!(p.decide(FailureClass::RateLimited, counts(0, 2), None, 0.0), Decision::Retry(Duration::ZERO));
        assert_eq!(p.decide(FailureClass::RateLimited, counts(0, 3), hint, 0.0), Decision::GiveUp);
        assert_eq!(p.server_wait(Some(Duration::from_secs(3600))), Some(Duration::from_secs(120)));
    }

    #[test]
    fn a_server_hint_lengthens_a_transient_backoff() {
        let hint = Some(Duration::from_secs(5));
        assert_eq!(
            policy().decide(FailureClass::Overloaded, counts(1, 0), hint, 0.0),
            Decision::Retry(Duration::from_secs(5))
        );
    }

    #[test]
    fn absurd_settings_saturate() {
        let p = RetryPolicy {
            initial_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            multiplier: f64::MAX,
            ..policy()
        };
        for n in [0, 1, 2, 1000, u32::MAX] {
            assert!(p.backoff(n, 0.5) <= super::super::MAX_WAIT);
        }
        assert!(matches!(
            p.decide(FailureClass::Overloaded, counts(1, 0), Some(Duration::MAX), 0.0),
            Decision::Retry(_)
        ));
    }

    #[test]
    fn validation_failures_retry_without_backoff() {
        assert_eq!(
            policy().decide(FailureClass::InvalidResponse, counts(1, 0), None, 0.0),
            Decision::Retry(Duration::ZERO)
        );
        assert_eq!(policy().decide(FailureClass::InvalidResponse, counts(3, 0), None, 0.0), Decision::GiveUp);
    }
}
