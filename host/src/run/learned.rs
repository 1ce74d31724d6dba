//! Limits learned from the provider's own rate-limit headers.
//!
//! When the user gives no `--rpm`, the host still avoids running into the
//! wall: every response's `x-ratelimit-remaining-requests` (OpenAI style) or
//! `anthropic-ratelimit-requests-remaining` says how many requests the
//! scope has left until the matching reset. The host keeps that budget,
//! spends one per admitted attempt, and when it is used up holds new
//! attempts until the reset, instead of learning about the limit from a
//! burst of 429s. Headers are hints: missing or unparsable ones change
//! nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::egress::Exchange;

#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Requests left before `reset_at`, after the ones admitted since.
    remaining: i64,
    reset_at: Instant,
}

/// Header-learned request budgets per scope.
#[derive(Debug, Default)]
pub struct LearnedLimits {
    budgets: Mutex<HashMap<String, Budget>>,
    in_flight: AtomicI64,
}

/// A permit for one attempt; returns its in-flight slot when dropped.
#[derive(Debug)]
pub struct InFlight<'a> {
    limits: &'a LearnedLimits,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.limits.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LearnedLimits {
    /// How long an attempt to `scope` (`None`: any scope) must wait for the
    /// budget to reset. Zero means go: call [`LearnedLimits::start`].
    pub fn delay(&self, scope: Option<&str>) -> Duration {
        let now = Instant::now();
        let budgets = lock(&self.budgets);
        let relevant: Vec<&Budget> = match scope {
            Some(s) => budgets.get(s).into_iter().collect(),
            None => budgets.values().collect(),
        };
        relevant
            .into_iter()
            .filter(|b| b.remaining <= 0 && b.reset_at > now)
            .map(|b| b.reset_at - now)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Spends one request of the budget and counts the attempt in flight.
    pub fn start(&self, scope: Option<&str>) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let mut budgets = lock(&self.budgets);
        let now = Instant::now();
        for (key, b) in budgets.iter_mut() {
            if scope.is_none_or(|s| s == key) && b.reset_at > now {
                b.remaining -= 1;
            }
        }
        InFlight { limits: self }
    }

    /// Learns from a finished attempt's exchanges.
    pub fn observe(&self, exchanges: &[Exchange]) {
        for e in exchanges {
            let Some((remaining, reset)) = request_budget(e) else { continue };
            // The server's count may not include attempts still in flight.
            let in_flight = self.in_flight.load(Ordering::SeqCst).max(0);
            let reported = remaining - in_flight;
            let reset_at = Instant::now() + reset;
            let mut budgets = lock(&self.budgets);
            let b = budgets.entry(e.authority.clone()).or_insert(Budget { remaining: reported, reset_at });
            if reset_at > b.reset_at + Duration::from_millis(50) && b.remaining <= 0 {
                // A new window: its budget replaces the exhausted one.
                *b = Budget { remaining: reported, reset_at };
            } else {
                b.remaining = b.remaining.min(reported);
                b.reset_at = b.reset_at.max(reset_at);
            }
        }
    }
}

/// `(remaining, time to reset)` of the requests limit in one response.
fn request_budget(e: &Exchange) -> Option<(i64, Duration)> {
    if let Some(rem) = e.header("x-ratelimit-remaining-requests") {
        let remaining = rem.trim().parse().ok()?;
        let reset = parse_go_duration(e.header("x-ratelimit-reset-requests")?)?;
        return Some((remaining, reset));
    }
    let remaining = e.header("anthropic-ratelimit-requests-remaining")?.trim().parse().ok()?;
    let reset_at = humantime::parse_rfc3339_weak(e.header("anthropic-ratelimit-requests-reset")?.trim()).ok()?;
    let reset = reset_at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
    Some((remaining, reset))
}

/// Parses Go-style durations as OpenAI sends them: `20ms`, `1s`, `6m0s`,
/// `1h2m3.5s`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(remaining: &str, reset: &str) -> Exchange {
        Exchange {
            authority: "api:443".into(),
            status: Some(200),
            signal_headers: vec![
                ("x-ratelimit-remaining-requests".into(), remaining.into()),
                ("x-ratelimit-reset-requests".into(), reset.into()),
            ],
            ..Exchange::default()
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("1h2m3.5s"), Some(Duration::from_secs_f64(3723.5)));
        assert_eq!(parse_go_duration("soon"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn an_exhausted_budget_holds_attempts_until_the_reset() {
        let l = LearnedLimits::default();
        assert_eq!(l.delay(None), Duration::ZERO, "nothing learned yet");
        l.observe(&[exchange("2", "2s")]);
        drop(l.start(Some("api:443")));
        assert_eq!(l.delay(Some("api:443")), Duration::ZERO, "one left");
        drop(l.start(Some("api:443")));
        let wait = l.delay(Some("api:443"));
        assert!(wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2), "{wait:?}");
        assert!(l.delay(None) > Duration::ZERO, "unknown-scope attempts wait too");
        assert_eq!(l.delay(Some("other:443")), Duration::ZERO);
    }

    #[test]
    fn attempts_in_flight_count_against_the_reported_budget() {
        let l = LearnedLimits::default();
        let a = l.start(None);
        let b = l.start(None);
        l.observe(&[exchange("2", "5s")]);
        assert!(l.delay(Some("api:443")) > Duration::ZERO, "2 left minus 2 in flight");
        drop((a, b));
    }

    #[test]
    fn a_new_window_replaces_an_exhausted_budget() {
        let l = LearnedLimits::default();
        l.observe(&[exchange("0", "20ms")]);
        assert!(l.delay(None) > Duration::ZERO);
        std::thread::sleep(Duration::from_millis(30));
        l.observe(&[exchange("10", "1s")]);
        assert_eq!(l.delay(None), Duration::ZERO);
    }

    #[test]
    fn missing_headers_change_nothing() {
        let l = LearnedLimits::default();
        l.observe(&[Exchange { authority: "x".into(), ..Exchange::default() }]);
        assert_eq!(l.delay(None), Duration::ZERO);
    }
}
