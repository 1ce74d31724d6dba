//! Coordinated cooldown of one quota scope.
//!
//! One rate limit pauses *every new attempt* of every worker in the scope,
//! retries included (the Python library only gated item starts, so retries
//! kept hammering). The pause is `max(policy, server hint)`. After it, attempt
//! starts are spaced by a slow-start ramp, so the scope is not hit by every
//! waiting worker at once. In-flight calls are never cancelled by a cooldown.
//!
//! Escalation follows evidence, not echoes:
//! - a 429 answering a request sent *before* the current cooldown began is
//!   the same overload seen late: it starts nothing, but a longer
//!   `retry-after` it carries still extends the pause;
//! - a 429 answering a probe of the ramp (sent after the pause began, before
//!   the ramp ended) pauses again at the same level: the ramp found the limit
//!   still binding, which is what a ramp is for;
//! - only a 429 for a request sent after a full cooldown *and* its ramp
//!   raises the level (the policy part grows by the multiplier, up to the
//!   cap), and a success sent after the pause began resets it. A success
//!   answering a request from before the pause says nothing about now.
//!
//! The ramp does not release a herd at its end: until a request sent after
//! the pause began has succeeded, starts stay spaced by the ramp's last
//! step (`slow_start_spacing / slow_start_attempts`); the first such
//! success opens the scope fully.
//!
//! Everything here is a pure function of the state and the time passed in;
//! [`super::Gates`] owns the lock and the clock.

use std::time::Duration;

use tokio::time::Instant;

use crate::run::policy::{later, saturating_duration};

/// Cooldown settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CooldownPolicy {
    /// Pause after a first rate limit when the server gives no longer hint.
    pub base: Duration,
    /// Growth per escalation.
    pub multiplier: f64,
    /// Cap on the policy part (a longer server hint still wins, up to the
    /// retry policy's `max_server_wait`).
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

impl CooldownPolicy {
    /// The policy part of the pause at escalation `level` (0 = first).
    fn pause(&self, level: u32) -> Duration {
        let exp = i32::try_from(level).unwrap_or(i32::MAX);
        let secs = self.base.as_secs_f64() * self.multiplier.powi(exp);
        saturating_duration(secs).min(self.max.max(self.base))
    }
}

/// What a rate limit did to the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitEffect {
    /// A new pause of this length began.
    Started(Duration),
    /// The current pause was lengthened to end this far from now.
    Extended(Duration),
    /// Already covered by the current pause.
    Absorbed,
}

/// The cooldown state of one scope.
#[derive(Debug, Default, Clone)]
pub(super) struct Cooldown {
    /// Start of the current (or last) pause.
    started: Option<Instant>,
    /// End of the current (or last) pause.
    until: Option<Instant>,
    /// End of the ramp that follows the pause, once the ramp is done; until
    /// then `None` (the ramp ends with its last slot).
    ramp_ended: Option<Instant>,
    /// Escalation level of the current pause (0 = first).
    level: u32,
    /// Pauses since the last success (0 when the scope is healthy).
    unresolved: u32,
    /// Attempts admitted since the pause ended (slow start).
    admitted_since: u32,
    /// Earliest start of the next attempt (slow-start spacing).
    next_slot: Option<Instant>,
    /// A request sent after the pause began has succeeded.
    recovered: bool,
}

impl Cooldown {
    /// Time until an attempt may start in this scope (zero: now).
    pub(super) fn wait(&self, now: Instant) -> Duration {
        let Some(until) = self.until else { return Duration::ZERO };
        // During the ramp the next slot; after it, its end (the last slot).
        let start = self.next_slot.unwrap_or(until).max(until);
        start.saturating_duration_since(now)
    }

    /// Books an attempt starting `now` (after [`Cooldown::wait`] said zero):
    /// advances the slow-start ramp.
    pub(super) fn admit(&mut self, policy: &CooldownPolicy, now: Instant) {
        let Some(until) = self.until else { return };
        let slow = policy.slow_start_attempts;
        if now < until {
            return;
        }
        if slow == 0 || self.admitted_since >= slow {
            self.ramp_ended.get_or_insert(now);
            if slow > 0 && !self.recovered {
                // No success yet: keep the ramp's last step, no herd.
                let floor = policy.slow_start_spacing / slow;
                let slot = self.next_slot.unwrap_or(until).max(now);
                self.next_slot = Some(later(slot, floor));
            }
            return;
        }
        let left = f64::from(slow - self.admitted_since) / f64::from(slow);
        let spacing = policy.slow_start_spacing.mul_f64(left);
        let slot = self.next_slot.unwrap_or(until).max(until).max(now);
        self.next_slot = Some(later(slot, spacing));
        self.admitted_since += 1;
        if self.admitted_since >= slow {
            self.ramp_ended = self.next_slot;
        }
    }

    /// Records a rate limit for an attempt sent at `sent`; `hint` is the
    /// server's wait, already capped by the retry policy.
    pub(super) fn on_rate_limit(
        &mut self,
        policy: &CooldownPolicy,
        sent: Instant,
        hint: Option<Duration>,
        now: Instant,
    ) -> RateLimitEffect {
        let hint = hint.unwrap_or_default();
        if self.started.is_some_and(|started| sent < started) {
            // Seen late: an echo of the overload that started this pause.
            return self.extend(later(now, hint), now);
        }
        let ramp_end = if policy.slow_start_attempts == 0 { self.until } else { self.ramp_ended };
        let in_ramp = self.started.is_some() && ramp_end.is_none_or(|end| sent < end);
        let level = match (self.unresolved, in_ramp) {
            (0, _) => 0,
            // The ramp probed and the limit still binds: pause again, same level.
            (_, true) => self.level,
            // A full pause and ramp did not help: escalate.
            (_, false) => self.level.saturating_add(1),
        };
        let pause = policy.pause(level).max(hint);
        self.started = Some(now);
        self.until = Some(later(now, pause));
        self.ramp_ended = None;
        self.level = level;
        self.unresolved = self.unresolved.saturating_add(1);
        self.admitted_since = 0;
        self.next_slot = None;
        self.recovered = false;
        RateLimitEffect::Started(pause)
    }

    fn extend(&mut self, end: Instant, now: Instant) -> RateLimitEffect {
        match self.until {
            Some(until) if end > until => {
                self.until = Some(end);
                self.next_slot = self.next_slot.map(|slot| slot.max(end));
                RateLimitEffect::Extended(end - now)
            }
            _ => RateLimitEffect::Absorbed,
        }
    }

    /// Records a success for an attempt sent at `sent`: a request sent after
    /// the pause began got through, so the next rate limit starts over.
    pub(super) fn on_success(&mut self, sent: Instant) {
        if self.started.is_none_or(|started| sent >= started) {
            self.unresolved = 0;
            self.level = 0;
            if !self.recovered {
                self.recovered = true;
                // The scope is open again from now on.
                self.next_slot = self.ramp_ended.and(self.next_slot).map(|slot| slot.min(sent));
            }
        }
    }

    /// Time left in the pause (for progress display).
    pub(super) fn remaining(&self, now: Instant) -> Duration {
        self.until.map(|u| u.saturating_duration_since(now)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn no_slow_start() -> CooldownPolicy {
        CooldownPolicy { slow_start_attempts: 0, ..CooldownPolicy::default() }
    }

    #[test]
    fn a_rate_limit_pauses_for_the_longer_of_policy_and_hint() {
        let (p, t0) = (no_slow_start(), Instant::now());
        let mut c = Cooldown::default();
        assert_eq!(c.wait(t0), Duration::ZERO);
        assert_eq!(c.on_rate_limit(&p, t0, Some(secs(3)), t0), RateLimitEffect::Started(secs(3)));
        assert_eq!(c.wait(t0 + secs(1)), secs(2));
        assert_eq!(c.wait(t0 + secs(3)), Duration::ZERO);
        assert_eq!(c.on_rate_limit(&p, t0 + secs(4), None, t0 + secs(4)), RateLimitEffect::Started(secs(2)));
    }

    #[test]
    fn a_late_429_never_escalates_but_its_longer_hint_extends_the_pause() {
        let (p, t0) = (no_slow_start(), Instant::now());
        let mut c = Cooldown::default();
        c.on_rate_limit(&p, t0 + secs(1), None, t0 + secs(1));
        // Sent before the pause began, answered inside it.
        assert_eq!(c.on_rate_limit(&p, t0, None, t0 + Duration::from_millis(1500)), RateLimitEffect::Absorbed);
        assert_eq!(
            c.on_rate_limit(&p, t0, Some(secs(5)), t0 + Duration::from_millis(1500)),
            RateLimitEffect::Extended(secs(5))
        );
        assert_eq!(c.wait(t0 + secs(2)), Duration::from_millis(4500));
        assert_eq!(c.level, 0, "no escalation from an echo");
    }

    #[test]
    fn probes_of_one_ramp_are_one_event_and_escalation_needs_a_full_pause_and_ramp() {
        let p = CooldownPolicy {
            slow_start_attempts: 2,
            slow_start_spacing: Duration::from_millis(100),
            ..CooldownPolicy::default()
        };
        let t0 = Instant::now();
        let mut c = Cooldown::default();
        assert_eq!(c.on_rate_limit(&p, t0, None, t0), RateLimitEffect::Started(secs(1)));
        // The first probe after the pause is refused: same level, 1 s again.
        let probe = t0 + secs(1);
        assert_eq!(c.wait(probe), Duration::ZERO);
        c.admit(&p, probe);
        let answer = probe + Duration::from_millis(10);
        assert_eq!(c.on_rate_limit(&p, probe, None, answer), RateLimitEffect::Started(secs(1)));
        // This time the whole ramp passes (two slots), then the limit still
        // binds: now the pause doubles.
        let t1 = answer + secs(1);
        c.admit(&p, t1);
        let t2 = t1 + c.wait(t1);
        c.admit(&p, t2);
        let after_ramp = t2 + Duration::from_millis(100);
        assert_eq!(c.wait(after_ramp), Duration::ZERO);
        assert_eq!(c.on_rate_limit(&p, after_ramp, None, after_ramp), RateLimitEffect::Started(secs(2)));
    }

    #[test]
    fn only_a_success_sent_after_the_pause_began_resets_the_level() {
        let (p, t0) = (no_slow_start(), Instant::now());
        let mut c = Cooldown::default();
        c.on_rate_limit(&p, t0, None, t0);
        c.on_rate_limit(&p, t0 + secs(2), None, t0 + secs(2));
        assert_eq!(c.level, 1);
        c.on_success(t0 + secs(1)); // stale: sent before the second pause
        assert_eq!(c.level, 1);
        c.on_success(t0 + secs(5));
        assert_eq!(c.on_rate_limit(&p, t0 + secs(6), None, t0 + secs(6)), RateLimitEffect::Started(secs(1)));
    }

    #[test]
    fn escalation_is_capped_but_a_longer_hint_wins() {
        let p = CooldownPolicy { max: secs(3), ..no_slow_start() };
        let t0 = Instant::now();
        let mut c = Cooldown::default();
        let mut t = t0;
        let mut pauses = Vec::new();
        for _ in 0..4 {
            let RateLimitEffect::Started(d) = c.on_rate_limit(&p, t, None, t) else { panic!("a new pause") };
            pauses.push(d);
            t += d + Duration::from_millis(1);
        }
        assert_eq!(pauses, [1, 2, 3, 3].map(secs));
        assert_eq!(c.on_rate_limit(&p, t, Some(secs(30)), t), RateLimitEffect::Started(secs(30)));
    }

    #[test]
    fn slow_start_spaces_attempts_after_a_pause() {
        let p = CooldownPolicy {
            base: Duration::ZERO,
            slow_start_attempts: 4,
            slow_start_spacing: Duration::from_millis(100),
            ..CooldownPolicy::default()
        };
        let t0 = Instant::now();
        let mut c = Cooldown::default();
        c.on_rate_limit(&p, t0, None, t0);
        let mut now = t0;
        let mut starts = Vec::new();
        for _ in 0..6 {
            now += c.wait(now);
            c.admit(&p, now);
            starts.push((now - t0).as_millis());
        }
        // Spacing 100, 75, 50, 25, then 25 until a success: no herd.
        assert_eq!(starts, [0, 100, 175, 225, 250, 275]);
        // A request sent after the pause succeeded: the scope is open.
        c.on_success(t0 + ms(250));
        let open = t0 + ms(300);
        assert_eq!(c.wait(open), Duration::ZERO);
        c.admit(&p, open);
        assert_eq!(c.wait(open), Duration::ZERO);
    }

    #[test]
    fn absurd_settings_saturate_instead_of_panicking() {
        let p = CooldownPolicy { base: Duration::MAX, multiplier: f64::MAX, max: Duration::MAX, ..no_slow_start() };
        let t0 = Instant::now();
        let mut c = Cooldown::default();
        for i in 0..100 {
            let t = t0 + secs(i);
            c.on_rate_limit(&p, t, Some(Duration::MAX / 2), t);
        }
    }
}
