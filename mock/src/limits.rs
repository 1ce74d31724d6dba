//! Sliding-window rate limits (requests and tokens per window).
//!
//! Every admitted request is remembered as `(time, tokens)` for one window
//! length. A new request is rejected when admitting it would exceed the
//! request limit (`rpm`) or the token limit (`tpm`) over the entries still in
//! the window; rejected requests are not remembered. The provider modules
//! turn the resulting [`Snapshot`]s and [`Rejection`]s into their own headers
//! and error bodies.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::MockConfig;
use crate::state::lock;

/// Which budget a rejected request ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitKind {
    /// Requests per window (`rpm`).
    Requests,
    /// Tokens per window (`tpm`).
    Tokens,
}

/// State of one configured budget, as reported in rate-limit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    /// The configured limit per window.
    pub limit: u64,
    /// What is left of it right now.
    pub remaining: u64,
    /// Time until the window is empty again (the budget fully restored).
    pub reset: Duration,
}

/// The budgets after a decision; `None` for a budget that is not configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The request budget, when `rpm` is set.
    pub requests: Option<Quota>,
    /// The token budget, when `tpm` is set.
    pub tokens: Option<Quota>,
}

/// Why a request was not admitted, with what a 429 needs to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// The exhausted budget.
    pub kind: LimitKind,
    /// Its limit.
    pub limit: u64,
    /// How much of it the window already holds.
    pub used: u64,
    /// How much the request asked for (1 request, or its token charge).
    pub requested: u64,
    /// Time until enough of the window expires for the request to fit (a
    /// whole window when it can never fit).
    pub retry_after: Duration,
    /// The budgets at the moment of rejection.
    pub snapshot: Snapshot,
}

/// The sliding window itself: plain state, the caller supplies the clock.
#[derive(Debug)]
pub(crate) struct Window {
    rpm: Option<u64>,
    tpm: Option<u64>,
    length: Duration,
    entries: VecDeque<(Instant, u64)>,
    used_tokens: u64,
}

impl Window {
    /// An empty window; `None` limits are unlimited.
    pub fn new(rpm: Option<u64>, tpm: Option<u64>, length: Duration) -> Self {
        Self { rpm, tpm, length, entries: VecDeque::new(), used_tokens: 0 }
    }

    /// Admits a request charging `tokens` at `now`, or explains why not.
    pub fn admit(&mut self, now: Instant, tokens: u64) -> Result<Snapshot, Rejection> {
        if self.rpm.is_none() && self.tpm.is_none() {
            return Ok(Snapshot::default());
        }
        self.expire(now);
        if let Some(rejection) = self.check(now, tokens) {
            return Err(rejection);
        }
        self.entries.push_back((now, tokens));
        self.used_tokens = self.used_tokens.saturating_add(tokens);
        Ok(self.snapshot(now))
    }

    /// The budgets at `now` without admitting anything.
    pub fn peek(&mut self, now: Instant) -> Snapshot {
        self.expire(now);
        self.snapshot(now)
    }

    /// Forgets every admitted request.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.used_tokens = 0;
    }

    /// Drops the entries that have left the window.
    fn expire(&mut self, now: Instant) {
        while let Some(&(at, tokens)) = self.entries.front()
            && now.saturating_duration_since(at) >= self.length
        {
            self.entries.pop_front();
            self.used_tokens = self.used_tokens.saturating_sub(tokens);
        }
    }

    /// The rejection for a request charging `tokens`, if it does not fit.
    fn check(&self, now: Instant, tokens: u64) -> Option<Rejection> {
        let requests = self.entries.len() as u64;
        if let Some(limit) = self.rpm
            && requests + 1 > limit
        {
            let retry_after = self.time_to_free(now, requests + 1 - limit, |_| 1);
            return Some(self.rejection(now, LimitKind::Requests, limit, requests, 1, retry_after));
        }
        if let Some(limit) = self.tpm
            && self.used_tokens.saturating_add(tokens) > limit
        {
            let excess = self.used_tokens.saturating_add(tokens) - limit;
            let retry_after = self.time_to_free(now, excess, |n| n);
            return Some(self.rejection(now, LimitKind::Tokens, limit, self.used_tokens, tokens, retry_after));
        }
        None
    }

    fn rejection(
        &self,
        now: Instant,
        kind: LimitKind,
        limit: u64,
        used: u64,
        requested: u64,
        retry_after: Duration,
    ) -> Rejection {
        Rejection { kind, limit, used, requested, retry_after, snapshot: self.snapshot(now) }
    }

    /// Time until entries worth `needed` units (as measured by `units`) have
    /// expired; a whole window when the window cannot free that much.
    fn time_to_free(&self, now: Instant, needed: u64, units: impl Fn(u64) -> u64) -> Duration {
        let mut freed = 0u64;
        for &(at, tokens) in &self.entries {
            freed = freed.saturating_add(units(tokens));
            if freed >= needed {
                return self.expires_in(at, now);
            }
        }
        self.length
    }

    /// Time until an entry admitted `at` leaves the window (no `Instant`
    /// arithmetic, so even absurd window lengths cannot overflow).
    fn expires_in(&self, at: Instant, now: Instant) -> Duration {
        self.length.saturating_sub(now.saturating_duration_since(at))
    }

    /// The budgets as they stand (after [`Window::expire`]).
    fn snapshot(&self, now: Instant) -> Snapshot {
        let reset = self.entries.back().map_or(Duration::ZERO, |&(at, _)| self.expires_in(at, now));
        let quota = |limit: u64, used: u64| Quota { limit, remaining: limit.saturating_sub(used), reset };
        Snapshot {
            requests: self.rpm.map(|limit| quota(limit, self.entries.len() as u64)),
            tokens: self.tpm.map(|limit| quota(limit, self.used_tokens)),
        }
    }
}

/// The server's rate limits: one shared [`Window`] behind a mutex.
#[derive(Debug)]
pub(crate) struct Limits {
    window: Mutex<Window>,
}

impl Limits {
    /// Limits as configured by `rpm`, `tpm` and `window_ms`.
    pub fn new(config: &MockConfig) -> Self {
        let window = Window::new(config.rpm.map(u64::from), config.tpm, config.window());
        Self { window: Mutex::new(window) }
    }

    /// See [`Window::admit`].
    pub fn admit(&self, now: Instant, tokens: u64) -> Result<Snapshot, Rejection> {
        lock(&self.window).admit(now, tokens)
    }

    /// See [`Window::peek`].
    pub fn peek(&self, now: Instant) -> Snapshot {
        lock(&self.window).peek(now)
    }

    /// See [`Window::clear`].
    pub fn clear(&self) {
        lock(&self.window).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn unlimited_admits_everything_and_reports_nothing() {
        let mut window = Window::new(None, None, ms(1000));
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(window.admit(t0, 1_000_000), Ok(Snapshot::default()));
        }
    }

    #[test]
    fn request_limit_slides() {
        let mut window = Window::new(Some(2), None, ms(1000));
        let t0 = Instant::now();
        let first = window.admit(t0, 10).expect("first fits");
        assert_eq!(first.requests, Some(Quota { limit: 2, remaining: 1, reset: ms(1000) }));
        window.admit(t0 + ms(300), 10).expect("second fits");

        let rejected = window.admit(t0 + ms(400), 10).expect_err("third is over the limit");
        assert_eq!(rejected.kind, LimitKind::Requests);
        assert_eq!((rejected.limit, rejected.used, rejected.requested), (2, 2, 1));
        assert_eq!(rejected.retry_after, ms(600)); // the first entry expires at 1000
        assert_eq!(rejected.snapshot.requests.map(|q| q.remaining), Some(0));

        // Once the first entry has left the window there is room again.
        let later = window.admit(t0 + ms(1000), 10).expect("fits after expiry");
        assert_eq!(later.requests.map(|q| (q.remaining, q.reset)), Some((0, ms(1000))));
    }

    #[test]
    fn token_limit_waits_for_enough_tokens_to_expire() {
        let mut window = Window::new(None, Some(100), ms(1000));
        let t0 = Instant::now();
        window.admit(t0, 30).expect("fits");
        window.admit(t0 + ms(100), 50).expect("fits");
        let rejected = window.admit(t0 + ms(200), 40).expect_err("30 + 50 + 40 > 100");
        assert_eq!(rejected.kind, LimitKind::Tokens);
        assert_eq!((rejected.limit, rejected.used, rejected.requested), (100, 80, 40));
        // Needs 20 tokens freed: the first entry (30) expires at 1000.
        assert_eq!(rejected.retry_after, ms(800));
        let snapshot = window.admit(t0 + ms(250), 20).expect("exactly fills the budget");
        assert_eq!(snapshot.tokens.map(|q| q.remaining), Some(0));
    }

    #[test]
    fn oversized_request_waits_a_whole_window() {
        let mut window = Window::new(None, Some(100), ms(1000));
        let rejected = window.admit(Instant::now(), 101).expect_err("never fits");
        assert_eq!(rejected.retry_after, ms(1000));
    }

    #[test]
    fn rejected_requests_are_not_charged_and_clear_resets() {
        let mut window = Window::new(Some(1), Some(1000), ms(1000));
        let t0 = Instant::now();
        window.admit(t0, 10).expect("fits");
        assert!(window.admit(t0, 10).is_err());
        assert_eq!(window.peek(t0).tokens.map(|q| q.remaining), Some(990));
        window.clear();
        assert_eq!(window.peek(t0).requests.map(|q| (q.remaining, q.reset)), Some((1, Duration::ZERO)));
    }
}
