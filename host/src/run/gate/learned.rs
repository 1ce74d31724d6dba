//! Limits learned from the provider's own rate-limit headers.
//!
//! When the user gives no `--rpm`, the host still avoids running into the
//! wall: every response's `x-ratelimit-remaining-requests` (OpenAI style) or
//! `anthropic-ratelimit-requests-remaining` says how many requests the
//! scope has left until the matching reset. The host keeps the lowest
//! count of the window, spends the attempts in flight from it, and when it
//! is used up holds new attempts until the reset, instead of learning about
//! the limit from a burst of 429s.
//!
//! Headers are untrusted text from a server: missing or unparsable ones
//! change nothing, numbers saturate, and a reset further away than the
//! longest server wait the host honours (`--max-server-wait`) is cut to it,
//! exactly like `retry-after`.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::model::Exchange;
use crate::run::policy::{later, saturating_duration};

/// The request budget of one scope, as last reported.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    /// The fewest requests left the server reported in this window: its
    /// own count, which includes every attempt answered so far and maybe
    /// some still in flight.
    remaining: i64,
    reset_at: Instant,
}

impl Budget {
    /// Time until an attempt may start (zero: the budget allows it now),
    /// with `in_flight` attempts sent and not answered. The server's count
    /// may or may not include those yet, so all of them are spent from what
    /// it reported: never more than the budget, and the exact budget once
    /// they are answered. (Spending from a copy of the budget frozen at
    /// each answer instead never got back the attempts that were in flight
    /// at the answer and already counted by the server: a burst fell short
    /// of its window by about the concurrency, and a run needing two
    /// windows took three.) An answer wakes waiting attempts to look again.
    pub(super) fn wait(&self, in_flight: i64, now: Instant) -> Duration {
        if self.remaining.saturating_sub(in_flight.max(0)) <= 0 && self.reset_at > now {
            self.reset_at - now
        } else {
            Duration::ZERO
        }
    }
}

/// What one answer's headers said about the requests limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Report {
    /// Requests left, as the server counted at this answer.
    pub remaining: i64,
    /// When the window is restored.
    pub reset_at: Instant,
    /// The limit itself, when announced.
    pub limit: Option<u64>,
}

/// Learns from one answer: `budget` is the scope's budget so far,
/// `in_flight` the attempts sent and not yet answered, `max_wait` the
/// longest reset honoured. Returns what the headers said, if they said
/// anything usable.
pub(super) fn observe(
    budget: &mut Option<Budget>,
    exchange: &Exchange,
    in_flight: i64,
    max_wait: Duration,
    now: Instant,
    wall_now: SystemTime,
) -> Option<Report> {
    let (remaining, reset) = request_budget(exchange, wall_now)?;
    let reset_at = later(now, reset.min(max_wait));
    let limit = ["x-ratelimit-limit-requests", "anthropic-ratelimit-requests-limit"]
        .iter()
        .find_map(|name| exchange.header(name)?.trim().parse::<u64>().ok());
    let report = Report { remaining, reset_at, limit };
    match budget {
        // The same window: the server's count only grows in it (a sliding
        // window that frees room is seen at its reset).
        Some(b)
            if now < b.reset_at
                && !(reset_at > b.reset_at + Duration::from_millis(50) && b.wait(in_flight, now) > Duration::ZERO) =>
        {
            b.remaining = b.remaining.min(remaining);
            b.reset_at = b.reset_at.max(reset_at);
        }
        // First report, a window past its reset, or a new window replacing
        // an exhausted budget.
        _ => *budget = Some(Budget { remaining, reset_at }),
    }
    Some(report)
}

/// `(remaining, time to reset)` as the answer reported them, the reset cut
/// to `max_wait` (what a shared gate is told).
pub(super) fn reported(e: &Exchange, max_wait: Duration, wall_now: SystemTime) -> Option<(i64, Duration)> {
    request_budget(e, wall_now).map(|(remaining, reset)| (remaining, reset.min(max_wait)))
}

/// `(remaining, time to reset)` of the requests limit in one response.
fn request_budget(e: &Exchange, wall_now: SystemTime) -> Option<(i64, Duration)> {
    if let Some(rem) = e.header("x-ratelimit-remaining-requests") {
        let remaining = rem.trim().parse().ok()?;
        let reset = parse_go_duration(e.header("x-ratelimit-reset-requests")?)?;
        return Some((remaining, reset));
    }
    let remaining = e.header("anthropic-ratelimit-requests-remaining")?.trim().parse().ok()?;
    let reset_at = humantime::parse_rfc3339_weak(e.header("anthropic-ratelimit-requests-reset")?.trim()).ok()?;
    let reset = reset_at.duration_since(wall_now).unwrap_or(Duration::ZERO);
    Some((remaining, reset))
}

/// Parses Go-style durations as OpenAI sends them: `20ms`, `1s`, `6m0s`,
/// `1h2m3.5s`. Absurd values saturate at the host's longest wait.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match rest.get(..unit_len)? {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = rest.get(unit_len..)?;
    }
    (total >= 0.0 && !total.is_nan()).then(|| saturating_duration(total))
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::policy::MAX_WAIT;

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

    fn learn(budget: &mut Option<Budget>, e: &Exchange, in_flight: i64, now: Instant) {
        let _ = observe(budget, e, in_flight, Duration::from_secs(120), now, SystemTime::now());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("1h2m3.5s"), Some(Duration::from_secs_f64(3723.5)));
        assert_eq!(parse_go_duration("soon"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("99999999999999999999s"), Some(MAX_WAIT));
        assert_eq!(parse_go_duration("1e400s"), None, "not a Go duration");
        assert_eq!(parse_go_duration("µ"), None);
        assert_eq!(parse_go_duration("5µ"), None);
    }

    #[test]
    fn an_exhausted_budget_holds_attempts_until_the_reset() {
        let now = Instant::now();
        let mut b = None;
        learn(&mut b, &exchange("2", "2s"), 0, now);
        let budget = b.expect("learned");
        assert_eq!(budget.wait(1, now), Duration::ZERO, "one sent, one left");
        assert_eq!(budget.wait(2, now), Duration::from_secs(2));
        assert_eq!(budget.wait(2, now + Duration::from_secs(2)), Duration::ZERO);
    }

    #[test]
    fn attempts_in_flight_count_against_the_reported_budget() {
        let now = Instant::now();
        let mut b = None;
        learn(&mut b, &exchange("2", "5s"), 2, now);
        assert!(b.expect("learned").wait(2, now) > Duration::ZERO, "2 left minus 2 in flight");
        assert_eq!(b.expect("learned").wait(1, now), Duration::ZERO, "one of them answered");
    }

    #[test]
    fn a_new_window_replaces_an_exhausted_budget() {
        let now = Instant::now();
        let mut b = None;
        learn(&mut b, &exchange("0", "20ms"), 0, now);
        assert!(b.expect("learned").wait(0, now) > Duration::ZERO);
        let later = now + Duration::from_millis(30);
        learn(&mut b, &exchange("10", "1s"), 0, later);
        assert_eq!(b.expect("learned").wait(0, later), Duration::ZERO);
    }

    #[test]
    fn absurd_resets_are_capped_like_retry_after() {
        let now = Instant::now();
        for (remaining, reset) in [("0", "100000h"), ("0", "99999999999999999999s"), ("-9223372036854775808", "1s")] {
            let mut b = None;
            learn(&mut b, &exchange(remaining, reset), i64::MAX, now);
            assert!(b.expect("learned").wait(0, now) <= Duration::from_secs(120), "{reset}");
        }
        let anthropic = Exchange {
            authority: "api:443".into(),
            signal_headers: vec![
                ("anthropic-ratelimit-requests-remaining".into(), "0".into()),
                ("anthropic-ratelimit-requests-reset".into(), "2999-01-01T00:00:00Z".into()),
            ],
            ..Exchange::default()
        };
        let mut b = None;
        learn(&mut b, &anthropic, 0, now);
        assert_eq!(b.expect("learned").wait(0, now), Duration::from_secs(120));
    }

    #[test]
    fn missing_or_garbage_headers_change_nothing() {
        let now = Instant::now();
        let mut b = None;
        learn(&mut b, &Exchange { authority: "x".into(), ..Exchange::default() }, 0, now);
        learn(&mut b, &exchange("lots", "1s"), 0, now);
        learn(&mut b, &exchange("5", "whenever"), 0, now);
        assert!(b.is_none());
    }
}
