//! Rate limits (requests and tokens per window), and what the provider
//! tells its clients about them.
//!
//! Two layers, because real providers differ in both:
//!
//! * [`Window`] is the rule: which requests are admitted. Every admitted
//!   request is remembered as `(time, tokens)`; a new one is rejected when
//!   admitting it would exceed the request limit (`rpm`) or the token limit
//!   (`tpm`) over the entries still counted. The window slides (the last
//!   `window_ms`) or is fixed (calendar-aligned windows that start empty),
//!   and a capacity schedule can shrink both limits for a while. Rejected
//!   requests are not remembered. Pure state: the caller supplies the clock.
//! * [`Limits`] is the server's window plus its manners: whether the budgets
//!   are announced (headers, numbers in the 429's text) and what a 429 says
//!   about when to retry (the truth, a fixed number of seconds, nothing).
//!
//! The provider modules turn the resulting [`Snapshot`]s and [`Rejection`]s
//! into their own headers and error bodies. [`earliest_finish`] runs the
//! same rule for a client that sends each request the moment it would be
//! admitted: the ideal schedule a benchmark compares with.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{CapacityChange, MockConfig, RetryAfter, WindowKind};
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
    /// The limit per window in force right now (smaller during a capacity
    /// dip).
    pub limit: u64,
    /// What is left of it right now.
    pub remaining: u64,
    /// Time until the window is empty again (the budget fully restored).
    pub reset: Duration,
}

/// The budgets after a decision; `None` for a budget that is not configured
/// (or not announced).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The request budget, when `rpm` is set.
    pub requests: Option<Quota>,
    /// The token budget, when `tpm` is set.
    pub tokens: Option<Quota>,
}

/// What a 429 says about when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The true wait, to the millisecond.
    Exact(Duration),
    /// A fixed number of whole seconds, whatever the truth.
    Seconds(u64),
    /// Nothing at all.
    Unknown,
}

impl Wait {
    /// The wait as a duration, when there is one.
    pub(crate) fn duration(self) -> Option<Duration> {
        match self {
            Wait::Exact(wait) => Some(wait),
            Wait::Seconds(secs) => Some(Duration::from_secs(secs)),
            Wait::Unknown => None,
        }
    }
}

/// Why a request was not admitted, with what a 429 needs to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// The exhausted budget.
    pub kind: LimitKind,
    /// Its limit in force.
    pub limit: u64,
    /// How much of it the window already holds.
    pub used: u64,
    /// How much the request asked for (1 request, or its token charge).
    pub requested: u64,
    /// What to say about when to retry. From the [`Window`], the time until
    /// the request would fit (a whole window when it never can).
    pub retry_after: Wait,
    /// Whether the 429 may state the limit, the usage and the wait in its
    /// text (a provider that announces its budgets does).
    pub detailed: bool,
    /// The budgets at the moment of rejection.
    pub snapshot: Snapshot,
}

/// The admission rule of a [`Window`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rules {
    /// Requests per window; `None` = unlimited.
    pub rpm: Option<u64>,
    /// Tokens per window; `None` = unlimited.
    pub tpm: Option<u64>,
    /// The window's length (never zero: `MockConfig::validate`).
    pub length: Duration,
    /// Sliding or fixed windows.
    pub kind: WindowKind,
    /// Capacity changes, counted from the window's origin.
    pub schedule: Vec<CapacityChange>,
    /// Refuse everything.
    pub refuse_all: bool,
}

impl Rules {
    /// The rules `config` describes.
    pub(crate) fn of(config: &MockConfig) -> Self {
        Self {
            rpm: config.rpm.map(u64::from),
            tpm: config.tpm,
            length: config.window(),
            kind: config.window_kind,
            schedule: config.capacity.clone(),
            refuse_all: config.always_429,
        }
    }

    /// Plain sliding limits, nothing else.
    #[cfg(test)]
    pub(crate) fn sliding(rpm: Option<u64>, tpm: Option<u64>, length: Duration) -> Self {
        Self { rpm, tpm, length, kind: WindowKind::Sliding, schedule: Vec::new(), refuse_all: false }
    }

    /// Whether anything can ever be refused.
    fn unlimited(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && !self.refuse_all
    }
}

/// The window itself: plain state, the caller supplies the clock.
#[derive(Debug)]
pub(crate) struct Window {
    rules: Rules,
    /// The instant the capacity schedule counts from (start or reset).
    origin: Instant,
    /// How far into an epoch-aligned window `origin` fell (fixed windows).
    phase: Duration,
    entries: VecDeque<(Instant, u64)>,
    used_tokens: u64,
}

impl Window {
    /// An empty window starting at `origin`, `phase` into a calendar window.
    pub(crate) fn new(rules: Rules, origin: Instant, phase: Duration) -> Self {
        Self { rules, origin, phase, entries: VecDeque::new(), used_tokens: 0 }
    }

    /// Admits a request charging `tokens` at `now`, or explains why not.
    pub(crate) fn admit(&mut self, now: Instant, tokens: u64) -> Result<Snapshot, Rejection> {
        if self.rules.unlimited() {
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
    pub(crate) fn peek(&mut self, now: Instant) -> Snapshot {
        self.expire(now);
        self.snapshot(now)
    }

    /// Forgets every admitted request; the schedule starts again at
    /// `origin`, `phase` into a calendar window.
    pub(crate) fn restart(&mut self, origin: Instant, phase: Duration) {
        self.entries.clear();
        self.used_tokens = 0;
        self.origin = origin;
        self.phase = phase;
    }

    /// Drops the entries that no longer count.
    fn expire(&mut self, now: Instant) {
        while let Some(&(at, tokens)) = self.entries.front()
            && self.gone(at, now)
        {
            self.entries.pop_front();
            self.used_tokens = self.used_tokens.saturating_sub(tokens);
        }
    }

    /// Whether an entry admitted `at` no longer counts at `now`.
    fn gone(&self, at: Instant, now: Instant) -> bool {
        match self.rules.kind {
            WindowKind::Sliding => now.saturating_duration_since(at) >= self.rules.length,
            WindowKind::Fixed => self.calendar_index(at) < self.calendar_index(now),
        }
    }

    /// Time since the schedule's origin.
    fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.origin)
    }

    /// Which calendar window `at` falls in.
    fn calendar_index(&self, at: Instant) -> u128 {
        (self.elapsed(at) + self.phase).as_nanos() / self.rules.length.as_nanos().max(1)
    }

    /// Time from `now` until the next calendar boundary (never zero).
    fn to_boundary(&self, now: Instant) -> Duration {
        let length = self.rules.length.as_nanos().max(1);
        let into = (self.elapsed(now) + self.phase).as_nanos() % length;
        Duration::from_nanos(u64::try_from(length - into).unwrap_or(u64::MAX))
    }

    /// The share of the limits in force `offset` after `now`.
    fn share_at(&self, now: Instant, offset: Duration) -> f64 {
        if self.rules.refuse_all {
            return 0.0;
        }
        let at = self.elapsed(now).saturating_add(offset);
        self.rules
            .schedule
            .iter()
            .filter(|c| c.from <= at && at < c.from.saturating_add(c.duration))
            .map(|c| c.share)
            .fold(1.0, f64::min)
    }

    /// The limits `(rpm, tpm)` in force `offset` after `now`.
    fn limits_at(&self, now: Instant, offset: Duration) -> (Option<u64>, Option<u64>) {
        let share = self.share_at(now, offset);
        // Truncation is the documented `floor(limit * share)`.
        let scale = |limit: u64| if share >= 1.0 { limit } else { (limit as f64 * share).floor() as u64 };
        (self.rules.rpm.map(scale), self.rules.tpm.map(scale))
    }

    /// The rejection for a request charging `tokens`, if it does not fit.
    fn check(&self, now: Instant, tokens: u64) -> Option<Rejection> {
        let requests = self.entries.len() as u64;
        let (rpm, tpm) = self.limits_at(now, Duration::ZERO);
        let over_requests = self.rules.refuse_all || rpm.is_some_and(|limit| requests + 1 > limit);
        let (kind, limit, used, requested) = if over_requests {
            (LimitKind::Requests, rpm.unwrap_or(0), requests, 1)
        } else if let Some(limit) = tpm
            && self.used_tokens.saturating_add(tokens) > limit
        {
            (LimitKind::Tokens, limit, self.used_tokens, tokens)
        } else {
            return None;
        };
        let wait = self.earliest_fit(now, tokens).unwrap_or(self.rules.length);
        let snapshot = self.snapshot(now);
        Some(Rejection { kind, limit, used, requested, retry_after: Wait::Exact(wait), detailed: true, snapshot })
    }

    /// The shortest wait after which a request charging `tokens` would be
    /// admitted if nothing else were; `None` when it never would be (it is
    /// larger than the limit, or the capacity stays at zero).
    ///
    /// Only the moments at which something changes are candidates: an entry
    /// leaving the window (sliding), the next calendar boundary (fixed) and
    /// the capacity schedule's edges.
    pub(crate) fn earliest_fit(&self, now: Instant, tokens: u64) -> Option<Duration> {
        if self.rules.refuse_all {
            return None;
        }
        if self.rules.schedule.is_empty() {
            return self.earliest_fit_constant(now, tokens);
        }
        let elapsed = self.elapsed(now);
        let mut candidates: Vec<Duration> = self
            .rules
            .schedule
            .iter()
            .flat_map(|c| [c.from, c.from.saturating_add(c.duration)])
            .filter(|&edge| edge > elapsed)
            .map(|edge| edge - elapsed)
            .collect();
        match self.rules.kind {
            WindowKind::Sliding => candidates.extend(self.entries.iter().map(|&(at, _)| self.expires_in(at, now))),
            WindowKind::Fixed => candidates.push(self.to_boundary(now)),
        }
        candidates.sort_unstable();
        candidates.dedup();
        let fixed_boundary = self.to_boundary(now);
        let mut gone = 0usize;
        let mut gone_tokens = 0u64;
        for offset in candidates {
            match self.rules.kind {
                WindowKind::Sliding => {
                    while let Some(&(at, charged)) = self.entries.get(gone)
                        && self.expires_in(at, now) <= offset
                    {
                        gone += 1;
                        gone_tokens = gone_tokens.saturating_add(charged);
                    }
                }
                WindowKind::Fixed if offset >= fixed_boundary => {
                    gone = self.entries.len();
                    gone_tokens = self.used_tokens;
                }
                WindowKind::Fixed => {}
            }
            let (rpm, tpm) = self.limits_at(now, offset);
            let requests = (self.entries.len() - gone) as u64;
            let used = self.used_tokens.saturating_sub(gone_tokens);
            let fits_requests = rpm.is_none_or(|limit| requests < limit);
            let fits_tokens = tpm.is_none_or(|limit| used.saturating_add(tokens) <= limit);
            if !self.rules.refuse_all && fits_requests && fits_tokens {
                return Some(offset);
            }
        }
        None
    }

    /// [`Window::earliest_fit`] when the limits never change: one pass over
    /// the entries, oldest first, without allocating (a client hammering a
    /// full window gets a 429 computed this way for every request).
    fn earliest_fit_constant(&self, now: Instant, tokens: u64) -> Option<Duration> {
        let (rpm, tpm) = (self.rules.rpm, self.rules.tpm);
        if tpm.is_some_and(|limit| tokens > limit) || rpm == Some(0) {
            return None;
        }
        if self.rules.kind == WindowKind::Fixed {
            return Some(self.to_boundary(now));
        }
        let fits = |requests: usize, used: u64| {
            rpm.is_none_or(|limit| (requests as u64) < limit)
                && tpm.is_none_or(|limit| used.saturating_add(tokens) <= limit)
        };
        let mut used = self.used_tokens;
        for (gone, &(at, charged)) in self.entries.iter().enumerate() {
            used = used.saturating_sub(charged);
            if fits(self.entries.len() - gone - 1, used) {
                return Some(self.expires_in(at, now));
            }
        }
        None
    }

    /// Time until an entry admitted `at` leaves a sliding window (no
    /// `Instant` arithmetic, so even absurd window lengths cannot overflow).
    fn expires_in(&self, at: Instant, now: Instant) -> Duration {
        self.rules.length.saturating_sub(now.saturating_duration_since(at))
    }

    /// The budgets as they stand (after [`Window::expire`]).
    fn snapshot(&self, now: Instant) -> Snapshot {
        let reset = match (self.entries.back(), self.rules.kind) {
            (None, _) => Duration::ZERO,
            (Some(&(at, _)), WindowKind::Sliding) => self.expires_in(at, now),
            (Some(_), WindowKind::Fixed) => self.to_boundary(now),
        };
        let (rpm, tpm) = self.limits_at(now, Duration::ZERO);
        let quota = |limit: u64, used: u64| Quota { limit, remaining: limit.saturating_sub(used), reset };
        Snapshot {
            requests: rpm.map(|limit| quota(limit, self.entries.len() as u64)),
            tokens: tpm.map(|limit| quota(limit, self.used_tokens)),
        }
    }
}

/// The server's rate limits: one shared [`Window`] behind a mutex, and
/// what the provider tells about it.
#[derive(Debug)]
pub(crate) struct Limits {
    window: Mutex<Window>,
    announce: bool,
    retry_after: RetryAfter,
}

impl Limits {
    /// Limits as configured, starting now.
    pub(crate) fn new(config: &MockConfig) -> Self {
        let (origin, phase) = now_and_phase(config.window());
        let window = Window::new(Rules::of(config), origin, phase);
        Self { window: Mutex::new(window), announce: config.limit_headers, retry_after: config.retry_after }
    }

    /// See [`Window::admit`]; the answer as the provider tells it.
    pub(crate) fn admit(&self, now: Instant, tokens: u64) -> Result<Snapshot, Rejection> {
        let decided = lock(&self.window).admit(now, tokens);
        decided.map(|snapshot| self.told(snapshot)).map_err(|rejection| self.tell(rejection))
    }

    /// See [`Window::peek`]; the budgets as the provider tells them.
    pub(crate) fn peek(&self, now: Instant) -> Snapshot {
        let snapshot = lock(&self.window).peek(now);
        self.told(snapshot)
    }

    /// Forgets every admitted request and restarts the capacity schedule.
    pub(crate) fn clear(&self) {
        let mut window = lock(&self.window);
        let (origin, phase) = now_and_phase(window.rules.length);
        window.restart(origin, phase);
    }

    /// The budgets, or nothing when they are not announced.
    fn told(&self, snapshot: Snapshot) -> Snapshot {
        if self.announce { snapshot } else { Snapshot::default() }
    }

    /// A rejection as the provider words it.
    fn tell(&self, rejection: Rejection) -> Rejection {
        let retry_after = match self.retry_after {
            RetryAfter::Truthful => rejection.retry_after,
            RetryAfter::Fixed(secs) => Wait::Seconds(secs),
            RetryAfter::Absent => Wait::Unknown,
        };
        Rejection { retry_after, detailed: self.announce, snapshot: self.told(rejection.snapshot), ..rejection }
    }
}

/// The current instant, and how far into an epoch-aligned window of
/// `length` the wall clock is.
fn now_and_phase(length: Duration) -> (Instant, Duration) {
    let (origin, wall) = (Instant::now(), SystemTime::now());
    (origin, calendar_phase(wall, length))
}

/// How far `wall` is into an epoch-aligned window of `length`.
pub fn calendar_phase(wall: SystemTime, length: Duration) -> Duration {
    let since_epoch = wall.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let into = since_epoch % length.as_nanos().max(1);
    Duration::from_nanos(u64::try_from(into).unwrap_or(u64::MAX))
}

/// A client that sends each request the moment the provider would admit
/// it: the best any client can do, the ideal a benchmark compares with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdealClient {
    /// Requests to complete.
    pub requests: usize,
    /// Tokens each request charges against `tpm`.
    pub tokens: u64,
    /// Requests in flight at once (at least 1).
    pub concurrency: usize,
    /// How long the provider takes to answer an admitted request.
    pub latency: Duration,
}

/// The ideal schedule under `config`'s limits: when the last answer of
/// `client`'s requests arrives, counted from its first request. `phase` is
/// how far into a calendar window the first request falls (fixed windows
/// only); the capacity schedule counts from the first request. `None` when
/// some request can never be admitted.
///
/// With latency 0 and a sliding window of R per W this is
/// `(ceil(N / R) - 1) * W`.
pub fn earliest_finish(config: &MockConfig, client: &IdealClient, phase: Duration) -> Option<Duration> {
    let origin = Instant::now();
    let mut window = Window::new(Rules::of(config), origin, phase);
    // When each in-flight slot is free again, earliest first.
    let mut slots: BinaryHeap<Reverse<Duration>> =
        (0..client.concurrency.max(1)).map(|_| Reverse(Duration::ZERO)).collect();
    let (mut admitted, mut finish) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..client.requests {
        let Reverse(free) = slots.pop()?;
        // Requests go in order: none is admitted before the previous one.
        let mut at = free.max(admitted);
        loop {
            let now = origin.checked_add(at)?;
            if window.admit(now, client.tokens).is_ok() {
                break;
            }
            // Positive, and followed by an admission (or `None`).
            at = at.checked_add(window.earliest_fit(now, client.tokens)?)?;
        }
        admitted = at;
        let done = at.checked_add(client.latency)?;
        finish = finish.max(done);
        slots.push(Reverse(done));
    }
    Some(finish)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn sliding(rpm: Option<u64>, tpm: Option<u64>, length: Duration) -> Window {
        Window::new(Rules::sliding(rpm, tpm, length), Instant::now(), Duration::ZERO)
    }

    fn wait_of(rejection: &Rejection) -> Duration {
        rejection.retry_after.duration().expect("the window always tells")
    }

    #[test]
    fn unlimited_admits_everything_and_reports_nothing() {
        let mut window = sliding(None, None, ms(1000));
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(window.admit(t0, 1_000_000), Ok(Snapshot::default()));
        }
    }

    #[test]
    fn request_limit_slides() {
        let mut window = sliding(Some(2), None, ms(1000));
        let t0 = Instant::now();
        let first = window.admit(t0, 10).expect("first fits");
        assert_eq!(first.requests, Some(Quota { limit: 2, remaining: 1, reset: ms(1000) }));
        window.admit(t0 + ms(300), 10).expect("second fits");

        let rejected = window.admit(t0 + ms(400), 10).expect_err("third is over the limit");
        assert_eq!(rejected.kind, LimitKind::Requests);
        assert_eq!((rejected.limit, rejected.used, rejected.requested), (2, 2, 1));
        assert_eq!(rejected.retry_after, Wait::Exact(ms(600))); // the first entry expires at 1000
        assert!(rejected.detailed);
        assert_eq!(rejected.snapshot.requests.map(|q| q.remaining), Some(0));

        // Once the first entry has left the window there is room again.
        let later = window.admit(t0 + ms(1000), 10).expect("fits after expiry");
        assert_eq!(later.requests.map(|q| (q.remaining, q.reset)), Some((0, ms(1000))));
    }

    #[test]
    fn token_limit_waits_for_enough_tokens_to_expire() {
        let mut window = sliding(None, Some(100), ms(1000));
        let t0 = Instant::now();
        window.admit(t0, 30).expect("fits");
        window.admit(t0 + ms(100), 50).expect("fits");
        let rejected = window.admit(t0 + ms(200), 40).expect_err("30 + 50 + 40 > 100");
        assert_eq!(rejected.kind, LimitKind::Tokens);
        assert_eq!((rejected.limit, rejected.used, rejected.requested), (100, 80, 40));
        // Needs 20 tokens freed: the first entry (30) expires at 1000.
        assert_eq!(wait_of(&rejected), ms(800));
        let snapshot = window.admit(t0 + ms(250), 20).expect("exactly fills the budget");
        assert_eq!(snapshot.tokens.map(|q| q.remaining), Some(0));
    }

    #[test]
    fn oversized_request_waits_a_whole_window() {
        let mut window = sliding(None, Some(100), ms(1000));
        let now = Instant::now();
        let rejected = window.admit(now, 101).expect_err("never fits");
        assert_eq!(wait_of(&rejected), ms(1000));
        assert_eq!(window.earliest_fit(now, 101), None);
    }

    #[test]
    fn rejected_requests_are_not_charged_and_restart_resets() {
        let mut window = sliding(Some(1), Some(1000), ms(1000));
        let t0 = Instant::now();
        window.admit(t0, 10).expect("fits");
        assert!(window.admit(t0, 10).is_err());
        assert_eq!(window.peek(t0).tokens.map(|q| q.remaining), Some(990));
        window.restart(t0, Duration::ZERO);
        assert_eq!(window.peek(t0).requests.map(|q| (q.remaining, q.reset)), Some((1, Duration::ZERO)));
    }

    #[test]
    fn fixed_windows_empty_at_calendar_boundaries() {
        let rules = Rules { kind: WindowKind::Fixed, ..Rules::sliding(Some(2), None, ms(1000)) };
        let t0 = Instant::now();
        // The origin falls 700 ms into a calendar window: it turns over at +300.
        let mut window = Window::new(rules, t0, ms(700));
        let first = window.admit(t0, 1).expect("fits");
        assert_eq!(first.requests.map(|q| q.reset), Some(ms(300)));
        window.admit(t0 + ms(100), 1).expect("fits");
        let rejected = window.admit(t0 + ms(200), 1).expect_err("full until the boundary");
        assert_eq!(rejected.retry_after, Wait::Exact(ms(100)));
        // A sliding window would still hold both; a fixed one is empty again.
        window.admit(t0 + ms(300), 1).expect("new window");
        window.admit(t0 + ms(301), 1).expect("new window");
        let rejected = window.admit(t0 + ms(302), 1).expect_err("full again");
        assert_eq!(rejected.retry_after, Wait::Exact(ms(998)));
    }

    #[test]
    fn capacity_dip_lowers_the_limit_then_restores_it() {
        let dip = CapacityChange { from: ms(1000), duration: ms(2000), share: 0.5 };
        let rules = Rules { schedule: vec![dip], ..Rules::sliding(Some(4), None, ms(1000)) };
        let t0 = Instant::now();
        let mut window = Window::new(rules, t0, Duration::ZERO);
        for i in 0..4 {
            window.admit(t0 + ms(i), 1).expect("full capacity before the dip");
        }
        // At 1000 the first entry has left, but the limit is now 2 and three
        // entries remain until 1001, 1002, 1003: room once two have gone.
        let rejected = window.admit(t0 + ms(1000), 1).expect_err("over the halved limit");
        assert_eq!((rejected.limit, rejected.used), (2, 3));
        assert_eq!(rejected.snapshot.requests.map(|q| q.limit), Some(2));
        assert_eq!(wait_of(&rejected), ms(2));
        window.admit(t0 + ms(1002), 1).expect("fits under the halved limit");
        window.admit(t0 + ms(2500), 1).expect("the entries of 3 and 1002 have left");
        window.admit(t0 + ms(2600), 1).expect("the second of two");
        window.admit(t0 + ms(2700), 1).expect_err("two in the window");
        // The dip ends at 3000: the limit is 4 again before anything leaves.
        assert_eq!(window.earliest_fit(t0 + ms(2700), 1), Some(ms(300)));
        window.admit(t0 + ms(3000), 1).expect("capacity restored");
    }

    #[test]
    fn constant_limits_take_the_short_path_to_the_same_answer() {
        // A schedule far in the future forces the general scan without
        // changing any limit in the test's time span.
        let later = CapacityChange { from: Duration::from_secs(3600), duration: ms(1), share: 0.5 };
        for kind in [WindowKind::Sliding, WindowKind::Fixed] {
            let plain = Rules { kind, ..Rules::sliding(Some(5), Some(400), ms(1000)) };
            let scheduled = Rules { schedule: vec![later], ..plain.clone() };
            let t0 = Instant::now();
            let mut short = Window::new(plain, t0, ms(250));
            let mut long = Window::new(scheduled, t0, ms(250));
            for step in 0..200u64 {
                let (now, tokens) = (t0 + ms(step * 37), 10 + step * 13 % 120);
                assert_eq!(short.admit(now, tokens), long.admit(now, tokens), "{kind:?} step {step}");
                assert_eq!(short.earliest_fit(now, tokens), long.earliest_fit(now, tokens), "{kind:?} step {step}");
            }
            assert_eq!(short.earliest_fit(t0, 401), None, "larger than the token limit");
            assert_eq!(long.earliest_fit(t0, 401), None);
        }
    }

    #[test]
    fn refuse_all_never_admits() {
        let rules = Rules { refuse_all: true, ..Rules::sliding(None, None, ms(500)) };
        let mut window = Window::new(rules, Instant::now(), Duration::ZERO);
        let rejected = window.admit(Instant::now(), 1).expect_err("refused");
        assert_eq!((rejected.kind, rejected.limit), (LimitKind::Requests, 0));
        assert_eq!(wait_of(&rejected), ms(500));
        let zero = CapacityChange { from: Duration::ZERO, duration: Duration::MAX, share: 0.0 };
        let rules = Rules { schedule: vec![zero], ..Rules::sliding(Some(10), None, ms(500)) };
        let mut window = Window::new(rules, Instant::now(), Duration::ZERO);
        assert!(window.admit(Instant::now(), 1).is_err(), "a zero share refuses too");
    }

    #[test]
    fn limits_tell_what_the_provider_announces() {
        let config = |limit_headers, retry_after| MockConfig {
            rpm: Some(1),
            window_ms: 1000,
            limit_headers,
            retry_after,
            ..Default::default()
        };
        let now = Instant::now();
        let limits = Limits::new(&config(true, RetryAfter::Truthful));
        assert!(limits.admit(now, 1).expect("fits").requests.is_some());
        let rejected = limits.admit(now, 1).expect_err("over");
        assert!(rejected.detailed && rejected.snapshot.requests.is_some());
        assert_eq!(rejected.retry_after, Wait::Exact(ms(1000)));

        let limits = Limits::new(&config(false, RetryAfter::Fixed(1)));
        assert_eq!(limits.admit(now, 1), Ok(Snapshot::default()), "no headers on successes");
        let rejected = limits.admit(now, 1).expect_err("over");
        assert!(!rejected.detailed);
        assert_eq!(rejected.snapshot, Snapshot::default());
        assert_eq!(rejected.retry_after, Wait::Seconds(1));
        assert_eq!(limits.peek(now), Snapshot::default());

        let limits = Limits::new(&config(true, RetryAfter::Absent));
        limits.admit(now, 1).expect("fits");
        assert_eq!(limits.admit(now, 1).map_err(|r| r.retry_after), Err(Wait::Unknown));
        limits.clear();
        limits.admit(now, 1).expect("cleared");
    }

    fn client(requests: usize, tokens: u64) -> IdealClient {
        IdealClient { requests, tokens, concurrency: 10_000, latency: Duration::ZERO }
    }

    #[test]
    fn ideal_schedule() {
        let config = MockConfig { rpm: Some(600), window_ms: 10_000, ..Default::default() };
        let ideal = |config: &MockConfig, n: usize| earliest_finish(config, &client(n, 20), Duration::ZERO);
        // (ceil(N / R) - 1) windows.
        assert_eq!(ideal(&config, 600), Some(Duration::ZERO));
        assert_eq!(ideal(&config, 1200), Some(ms(10_000)));
        assert_eq!(ideal(&config, 6000), Some(ms(90_000)));
        // Fixed windows with the first request mid-window: the second
        // window begins sooner.
        let fixed = MockConfig { window_kind: WindowKind::Fixed, ..config.clone() };
        assert_eq!(earliest_finish(&fixed, &client(1200, 20), ms(4000)), Some(ms(6000)));
        // Half the capacity from 5 s for 16 s: 600 at 0, 300 at 10 s and at
        // 20 s.
        let dip = CapacityChange { from: ms(5000), duration: ms(16_000), share: 0.5 };
        let dipped = MockConfig { capacity: vec![dip], ..config.clone() };
        assert_eq!(ideal(&dipped, 1200), Some(ms(20_000)));
        // Tokens: 1,000 tokens per window at 100 each is 10 per window.
        let tpm = MockConfig { rpm: None, tpm: Some(1000), ..config.clone() };
        assert_eq!(earliest_finish(&tpm, &client(30, 100), Duration::ZERO), Some(ms(20_000)));
        // Never admitted.
        assert_eq!(earliest_finish(&tpm, &client(1, 1001), Duration::ZERO), None);
        let refused = MockConfig { always_429: true, ..config.clone() };
        assert_eq!(ideal(&refused, 1), None);
        assert_eq!(ideal(&config, 0), Some(Duration::ZERO));
    }

    #[test]
    fn ideal_schedule_with_latency_and_concurrency() {
        let config = MockConfig { rpm: Some(600), window_ms: 10_000, ..Default::default() };
        let slow = IdealClient { requests: 1200, tokens: 20, concurrency: 50, latency: ms(100) };
        // 600 go out in 12 waves of 50 (0 to 1.1 s); each of the next 600
        // waits for the one admitted a window earlier: the last at 11.1 s,
        // answered at 11.2 s.
        assert_eq!(earliest_finish(&config, &slow, Duration::ZERO), Some(ms(11_200)));
        let unlimited = MockConfig::default();
        // Without limits only concurrency counts: 24 waves of 100 ms.
        assert_eq!(earliest_finish(&unlimited, &slow, Duration::ZERO), Some(ms(2_400)));
    }

    #[test]
    fn calendar_phase_is_the_time_into_the_window() {
        let wall = UNIX_EPOCH + Duration::from_millis(1_755_780_047_250);
        assert_eq!(calendar_phase(wall, ms(60_000)), ms(47_250));
        assert_eq!(calendar_phase(wall, ms(10_000)), ms(7_250));
    }
}
