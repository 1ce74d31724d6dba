//! Coordinated cooldown per quota scope.
//!
//! One rate limit pauses *every new attempt* of every worker in the scope,
//! retries included (the Python library only gated item starts, so retries
//! kept hammering). The cooldown is `max(policy, server hint)`; the policy
//! part grows by a multiplier on consecutive rate limits up to a cap, and a
//! success resets it. A 429 answering a request sent *before* the current
//! cooldown began is the same overload seen late, so it does not start a
//! second, longer cooldown. After a cooldown, attempt starts are spaced by a
//! slow-start ramp so the scope is not hit by every waiting worker at once.
//! In-flight calls are never cancelled by a cooldown.
//!
//! A scope is the provider endpoint a plugin talked to (`host:port`); one run
//! has one plugin and its secrets, so this is plugin + endpoint + key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Cooldown settings.
#[derive(Debug, Clone)]
pub struct CooldownPolicy {
    /// Cooldown after a first rate limit when the server gives no hint.
    pub base: Duration,
    /// Growth per consecutive rate limit.
    pub multiplier: f64,
    /// Cap on the policy part (a larger server hint still wins, up to
    /// `max_server_wait` of the retry policy).
    pub max: Duration,
    /// Attempt starts spaced out after a cooldown (0 disables slow start).
    pub slow_start_attempts: u32,
    /// Spacing before the first attempt after a cooldown; shrinks linearly
    /// to zero over `slow_start_attempts`.
    pub slow_start_spacing: Duration,
}

impl Default for CooldownPolicy {
    fn default() -> Self {
        CooldownPolicy {
            base: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(60),
            slow_start_attempts: 16,
            slow_start_spacing: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, Default)]
struct ScopeState {
    /// End of the current (or last) cooldown.
    until: Option<Instant>,
    /// Start of the current (or last) cooldown.
    started: Option<Instant>,
    /// Rate limits without a success in between.
    consecutive: u32,
    /// Attempts admitted since the last cooldown ended (slow start).
    admitted_since: u32,
    /// Earliest start of the next attempt (slow-start spacing).
    next_slot: Option<Instant>,
}

/// Totals for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CooldownStats {
    pub rate_limits: u64,
    pub cooldowns: u64,
    pub total_cooldown: Duration,
}

/// The cooldown state of every scope of a run.
#[derive(Debug, Default)]
pub struct Coordinator {
    policy: CooldownPolicy,
    scopes: Mutex<HashMap<String, ScopeState>>,
    stats: Mutex<CooldownStats>,
}

impl Coordinator {
    pub fn new(policy: CooldownPolicy) -> Self {
        Coordinator { policy, ..Default::default() }
    }

    /// Records a rate limit seen by an attempt that started at `sent`.
    /// Returns the new cooldown's length if this started one.
    pub fn on_rate_limit(&self, scope: &str, sent: Instant, hint: Option<Duration>) -> Option<Duration> {
        let now = Instant::now();
        let mut stats = lock(&self.stats);
        stats.rate_limits += 1;
        let mut scopes = lock(&self.scopes);
        let s = scopes.entry(scope.to_string()).or_default();
        if s.started.is_some_and(|started| sent < started) {
            // Sent before the current cooldown began: already accounted for.
            return None;
        }
        s.consecutive += 1;
        let exp = i32::try_from(s.consecutive - 1).unwrap_or(i32::MAX);
        let policy = self.policy.base.as_secs_f64() * self.policy.multiplier.powi(exp);
        let policy = Duration::from_secs_f64(policy.min(self.policy.max.as_secs_f64()));
        let duration = hint.map_or(policy, |h| h.max(policy));
        s.started = Some(now);
        s.until = Some(now + duration);
        s.admitted_since = 0;
        s.next_slot = None;
        stats.cooldowns += 1;
        stats.total_cooldown += duration;
        tracing::warn!(scope, cooldown = ?duration, consecutive = s.consecutive, "rate limited: pausing the scope");
        Some(duration)
    }

    /// Records a success in `scope`: the consecutive count starts over.
    pub fn on_success(&self, scope: &str) {
        if let Some(s) = lock(&self.scopes).get_mut(scope) {
            s.consecutive = 0;
        }
    }

    /// How long an attempt must wait before starting, and books its slot.
    /// `scope` is the item's known scope; `None` waits for every scope (an
    /// item's first attempt, before it is known where it goes).
    pub fn admission_delay(&self, scope: Option<&str>) -> Duration {
        let now = Instant::now();
        let mut scopes = lock(&self.scopes);
        let mut wait = Duration::ZERO;
        let keys: Vec<String> = match scope {
            Some(s) => vec![s.to_string()],
            None => scopes.keys().cloned().collect(),
        };
        for key in keys {
            let s = scopes.entry(key).or_default();
            wait = wait.max(self.book(s, now));
        }
        wait
    }

    fn book(&self, s: &mut ScopeState, now: Instant) -> Duration {
        let Some(until) = s.until else { return Duration::ZERO };
        let slow = self.policy.slow_start_attempts;
        if until > now && slow == 0 {
            return until - now;
        }
        if slow == 0 || s.admitted_since >= slow {
            // The ramp is over once its last slot has passed.
            let end = s.next_slot.unwrap_or(until).max(until);
            return end.saturating_duration_since(now);
        }
        // Slow start: spacing shrinks linearly from `slow_start_spacing` to 0.
        let left = f64::from(slow - s.admitted_since) / f64::from(slow);
        let spacing = self.policy.slow_start_spacing.mul_f64(left);
        let slot = s.next_slot.unwrap_or(until).max(until).max(now);
        s.next_slot = Some(slot + spacing);
        s.admitted_since += 1;
        slot - now
    }

    /// Time left in the longest active cooldown (for progress display).
    pub fn longest_cooldown(&self) -> Duration {
        let now = Instant::now();
        lock(&self.scopes)
            .values()
            .filter_map(|s| s.until)
            .map(|u| u.saturating_duration_since(now))
            .max()
            .unwrap_or_default()
    }

    /// Totals so far.
    pub fn stats(&self) -> CooldownStats {
        *lock(&self.stats)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_slow_start() -> CooldownPolicy {
        CooldownPolicy { slow_start_attempts: 0, ..CooldownPolicy::default() }
    }

    #[test]
    fn a_rate_limit_pauses_the_scope_for_the_longer_of_policy_and_hint() {
        let c = Coordinator::new(no_slow_start());
        let sent = Instant::now();
        assert_eq!(c.on_rate_limit("api:443", sent, Some(Duration::from_secs(3))), Some(Duration::from_secs(3)));
        let wait = c.admission_delay(Some("api:443"));
        assert!(wait > Duration::from_millis(2900) && wait <= Duration::from_secs(3), "{wait:?}");
        assert_eq!(c.admission_delay(Some("other:443")), Duration::ZERO);
        // An item whose scope is unknown waits for every scope.
        assert!(c.admission_delay(None) > Duration::from_millis(2900));
    }

    #[test]
    fn late_429s_from_before_the_cooldown_do_not_extend_it() {
        let c = Coordinator::new(no_slow_start());
        let early = Instant::now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.on_rate_limit("s", Instant::now(), None).is_some());
        assert_eq!(c.on_rate_limit("s", early, Some(Duration::from_secs(30))), None);
        assert!(c.admission_delay(Some("s")) <= Duration::from_secs(1));
        assert_eq!(c.stats().rate_limits, 2);
        assert_eq!(c.stats().cooldowns, 1);
    }

    #[test]
    fn consecutive_rate_limits_grow_the_cooldown_up_to_the_cap_and_success_resets() {
        let c = Coordinator::new(CooldownPolicy { max: Duration::from_secs(3), ..no_slow_start() });
        let d: Vec<_> = (0..4).map(|_| c.on_rate_limit("s", Instant::now(), None).expect("new cooldown")).collect();
        assert_eq!(d, [1, 2, 3, 3].map(Duration::from_secs));
        c.on_success("s");
        assert_eq!(c.on_rate_limit("s", Instant::now(), None), Some(Duration::from_secs(1)));
    }

    #[test]
    fn slow_start_spaces_attempts_after_a_cooldown() {
        let policy = CooldownPolicy {
            base: Duration::ZERO,
            slow_start_attempts: 4,
            slow_start_spacing: Duration::from_millis(100),
            ..CooldownPolicy::default()
        };
        let c = Coordinator::new(policy);
        c.on_rate_limit("s", Instant::now(), None);
        let waits: Vec<u128> = (0..6).map(|_| c.admission_delay(Some("s")).as_millis()).collect();
        // Slots at +0, +100, +175, +225 (spacing 100, 75, 50, 25); the ramp
        // ends at +250, after which attempts are free again.
        assert!(waits[0] <= 1, "{waits:?}");
        assert!((95..=100).contains(&waits[1]), "{waits:?}");
        assert!((170..=175).contains(&waits[2]), "{waits:?}");
        assert!((220..=225).contains(&waits[3]), "{waits:?}");
        assert!((245..=250).contains(&waits[4]), "{waits:?}");
        assert!((245..=250).contains(&waits[5]), "{waits:?}");
    }
}
