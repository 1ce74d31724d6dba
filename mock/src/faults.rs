//! Fault injection: what goes wrong with an admitted request, and how long it
//! takes to answer.
//!
//! Two sources decide, in this order:
//!
//! 1. **Markers** in the prompt (the last user message), so a test can target
//!    one item of a batch:
//!    * `[[mock:fail-first=N]]`: the first N admitted requests carrying that
//!      exact prompt text fail (503, or the code of a `status` marker in the
//!      same prompt); later ones succeed. Counted per prompt text.
//!    * `[[mock:status=CODE]]` (400..=599): an error with that status.
//!    * `[[mock:insufficient_quota]]` (alias `[[mock:quota-per-day]]`): the
//!      provider's "out of quota" answer: OpenAI 429 `insufficient_quota`,
//!      Anthropic 400 "credit balance is too low", Gemini 429
//!      `RESOURCE_EXHAUSTED` with only per-day quota violations.
//!    * `[[mock:malformed]]`: a 200 with a truncated JSON body.
//!    * `[[mock:hang]]`: no answer for `hang_ms`, then a 504.
//!    * `[[mock:latency=MS]]`: answer after exactly MS milliseconds (replaces
//!      `latency_ms` + jitter; combines with the markers above).
//!    * `[[mock:header=NAME:VALUE]]`: send this header with the answer,
//!      whatever it is (a 429 of the rate window included), replacing one the
//!      mock would send under that name; a name given twice is sent twice.
//!      For absurd provider headers: `x-ratelimit-reset-requests:
//!      99999999999999999999s`, `anthropic-ratelimit-requests-reset:
//!      2999-01-01T00:00:00Z`, `retry-after:soon`.
//!    * `[[mock:answer=KIND]]`: a degenerate but well-formed success (see
//!      [`Shape`]): `empty` (no text, stopped for length, the budget billed
//!      as reasoning), `null` (no content), `no-choices`, `filtered`
//!      (content filter / refusal / `SAFETY`), `blocked` (Gemini: the prompt
//!      blocked, `promptFeedback.blockReason`). Each provider answers in its
//!      own shapes; a fault decided by another marker comes first.
//!
//!    Unknown or malformed markers are ignored.
//! 2. **Random faults**, when no fault marker decided: one uniform draw `u` in
//!    `[0, 1)` per request from an RNG seeded with `seed`; `u < error_rate`
//!    gives a 5xx (alternately 500 and 503, starting with 500), the next
//!    `malformed_rate` a malformed body, the next `hang_rate` a hang.
//!
//! Every request consumes exactly two draws (fault and jitter), markers or
//! not, so the same request sequence always meets the same faults.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{MockConfig, parse_header};
use crate::state::lock;

/// What goes wrong with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer with this error status (and the provider's body for it).
    Status(u16),
    /// Answer the provider's "out of quota / credit" error (not a rate limit).
    InsufficientQuota,
    /// Answer 200 with a body that is not valid JSON.
    Malformed,
    /// Do not answer for `hang_ms`, then give up with a 504.
    Hang,
}

/// The decision for one admitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The fault to inject, if any.
    pub fault: Option<Fault>,
    /// How long to wait before answering.
    pub delay: Duration,
}

/// A degenerate success, as `[[mock:answer=KIND]]` asks for it. Each
/// provider renders it where its API has such an answer:
///
/// | kind | OpenAI chat | Anthropic | Gemini |
/// |---|---|---|---|
/// | `empty` | `content: ""`, `finish_reason: "length"` | `content: []`, `stop_reason: "max_tokens"` | candidate without parts, `MAX_TOKENS` |
/// | `null` | `content: null`, `"stop"` | `content: []`, `"end_turn"` | candidate without `content`, `STOP` |
/// | `no-choices` | `choices: []` | as `null` | no `candidates` |
/// | `filtered` | `content: null`, `"content_filter"` | `content: []`, `"refusal"` | candidate without content, `SAFETY` |
/// | `blocked` | as `filtered` | as `filtered` | no candidates, `promptFeedback.blockReason: "SAFETY"` |
///
/// `empty` bills the whole completion budget (`max_tokens`, else
/// [`DEFAULT_MAX_TOKENS`](crate::tokens::DEFAULT_MAX_TOKENS)) as reasoning
/// tokens, like a reasoning model that spent it thinking; `filtered` bills
/// the answer that was withheld; the others bill the prompt only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Empty,
    Null,
    NoChoices,
    Filtered,
    Blocked,
}

impl Shape {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "empty" | "empty-length" | "length" => Self::Empty,
            "null" | "content-null" => Self::Null,
            "no-choices" | "no_choices" | "none" => Self::NoChoices,
            "filtered" | "content-filter" | "content_filter" | "refusal" | "safety" => Self::Filtered,
            "blocked" | "prompt-blocked" => Self::Blocked,
            _ => return None,
        })
    }
}

/// The shape `[[mock:answer=KIND]]` in `prompt` asks for, if any.
pub(crate) fn shape(prompt: Option<&str>) -> Option<Shape> {
    prompt.and_then(|prompt| parse_markers(prompt).answer)
}

/// The `[[mock:...]]` markers found in a prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Markers {
    /// `[[mock:status=CODE]]`.
    pub status: Option<u16>,
    /// `[[mock:insufficient_quota]]` or `[[mock:quota-per-day]]`.
    pub insufficient_quota: bool,
    /// `[[mock:malformed]]`.
    pub malformed: bool,
    /// `[[mock:hang]]`.
    pub hang: bool,
    /// `[[mock:fail-first=N]]`.
    pub fail_first: Option<u32>,
    /// `[[mock:latency=MS]]`.
    pub latency_ms: Option<u64>,
    /// `[[mock:header=NAME:VALUE]]`, in order, as written (checked when
    /// sent).
    pub headers: Vec<(String, String)>,
    /// `[[mock:answer=KIND]]`.
    pub answer: Option<Shape>,
}

const MARKER_OPEN: &str = "[[mock:";
const MARKER_CLOSE: &str = "]]";

/// Finds every `[[mock:...]]` marker in `text`; later markers win.
pub(crate) fn parse_markers(text: &str) -> Markers {
    let mut markers = Markers::default();
    let mut rest = text;
    while let Some(start) = rest.find(MARKER_OPEN) {
        let body = &rest[start + MARKER_OPEN.len()..];
        let Some(end) = body.find(MARKER_CLOSE) else {
            break;
        };
        markers.apply(body[..end].trim());
        rest = &body[end + MARKER_CLOSE.len()..];
    }
    markers
}

impl Markers {
    /// Records one `key` or `key=value` directive.
    fn apply(&mut self, directive: &str) {
        let (key, value) = match directive.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.trim())),
            None => (directive, None),
        };
        match (key, value) {
            ("status", Some(code)) => {
                if let Ok(code) = code.parse::<u16>()
                    && (400..=599).contains(&code)
                {
                    self.status = Some(code);
                }
            }
            ("insufficient_quota" | "insufficient-quota" | "quota-per-day" | "quota_per_day", None) => {
                self.insufficient_quota = true;
            }
            ("malformed", None) => self.malformed = true,
            ("hang", None) => self.hang = true,
            ("fail-first" | "fail_first", Some(n)) => self.fail_first = n.parse().ok().or(self.fail_first),
            ("latency", Some(ms)) => self.latency_ms = ms.parse().ok().or(self.latency_ms),
            ("header", Some(header)) => match header.split_once(':') {
                Some((name, value)) => self.headers.push((name.trim().to_owned(), value.trim().to_owned())),
                None => tracing::debug!(directive, "ignoring a header marker without NAME:VALUE"),
            },
            ("answer", Some(kind)) => self.answer = Shape::parse(kind).or(self.answer),
            _ => tracing::debug!(directive, "ignoring unknown mock marker"),
        }
    }

    /// What the markers decide: `None` leaves it to chance, `Some(None)`
    /// means "succeed" (a spent `fail-first`), `Some(Some(fault))` injects.
    /// `seen` is how many requests (this one included) carried the prompt.
    fn fault(&self, seen: u32) -> Option<Option<Fault>> {
        if let Some(n) = self.fail_first {
            return Some((seen <= n).then(|| Fault::Status(self.status.unwrap_or(503))));
        }
        let fault = if let Some(code) = self.status {
            Fault::Status(code)
        } else if self.insufficient_quota {
            Fault::InsufficientQuota
        } else if self.malformed {
            Fault::Malformed
        } else if self.hang {
            Fault::Hang
        } else {
            return None;
        };
        Some(Some(fault))
    }
}

/// The headers of the `[[mock:header=NAME:VALUE]]` markers in `prompt`
/// that HTTP can carry (others are ignored, like any malformed marker).
pub(crate) fn marker_headers(prompt: &str) -> Vec<(HeaderName, HeaderValue)> {
    if !prompt.contains(MARKER_OPEN) {
        return Vec::new();
    }
    let parse = |(name, value): (String, String)| match parse_header(&name, &value) {
        Ok(header) => Some(header),
        Err(err) => {
            tracing::debug!(%err, "ignoring a header marker");
            None
        }
    };
    parse_markers(prompt).headers.into_iter().filter_map(parse).collect()
}

/// Mutable fault state: the RNG and the per-prompt counters.
#[derive(Debug)]
struct State {
    rng: StdRng,
    random_errors: u64,
    fail_first_seen: HashMap<String, u32>,
}

impl State {
    fn new(seed: u64) -> Self {
        Self { rng: StdRng::seed_from_u64(seed), random_errors: 0, fail_first_seen: HashMap::new() }
    }
}

/// The server's fault injector.
#[derive(Debug)]
pub(crate) struct Faults {
    error_rate: f64,
    malformed_rate: f64,
    hang_rate: f64,
    latency: Duration,
    jitter_ms: u64,
    hang: Duration,
    seed: u64,
    state: Mutex<State>,
}

impl Faults {
    /// A fault injector with the rates, delays and seed of `config`.
    pub(crate) fn new(config: &MockConfig) -> Self {
        Self {
            error_rate: config.error_rate,
            malformed_rate: config.malformed_rate,
            hang_rate: config.hang_rate,
            latency: Duration::from_millis(config.latency_ms),
            jitter_ms: config.jitter_ms,
            hang: Duration::from_millis(config.hang_ms),
            seed: config.seed,
            state: Mutex::new(State::new(config.seed)),
        }
    }

    /// Decides the fate of one admitted request whose prompt is `prompt`.
    pub(crate) fn plan(&self, prompt: Option<&str>) -> Plan {
        let markers = prompt.map(parse_markers).unwrap_or_default();
        let mut state = lock(&self.state);
        let draw: f64 = state.rng.random();
        let jitter = state.rng.random_range(0..=self.jitter_ms);
        let seen = match (markers.fail_first, prompt) {
            (Some(_), Some(prompt)) => bump(&mut state.fail_first_seen, prompt),
            _ => 0,
        };
        let fault = match markers.fault(seen) {
            Some(decided) => decided,
            None => self.random_fault(draw, &mut state),
        };
        let delay = match (fault, markers.latency_ms) {
            (Some(Fault::Hang), _) => self.hang,
            (_, Some(ms)) => Duration::from_millis(ms),
            (_, None) => self.latency + Duration::from_millis(jitter),
        };
        Plan { fault, delay }
    }

    /// Forgets the per-prompt counters and restarts the RNG from the seed.
    pub(crate) fn reset(&self) {
        *lock(&self.state) = State::new(self.seed);
    }

    /// The random fault for a uniform `draw` in `[0, 1)`.
    fn random_fault(&self, draw: f64, state: &mut State) -> Option<Fault> {
        let malformed_until = self.error_rate + self.malformed_rate;
        if draw < self.error_rate {
            state.random_errors += 1;
            let status = if state.random_errors % 2 == 1 { 500 } else { 503 };
            Some(Fault::Status(status))
        } else if draw < malformed_until {
            Some(Fault::Malformed)
        } else if draw < malformed_until + self.hang_rate {
            Some(Fault::Hang)
        } else {
            None
        }
    }
}

/// Counts one more request for `key` and returns the new count.
fn bump(counts: &mut HashMap<String, u32>, key: &str) -> u32 {
    let count = counts.entry(key.to_owned()).or_insert(0);
    *count = count.saturating_add(1);
    *count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_marker() {
        let m = parse_markers("hi [[mock:status=429]] there");
        assert_eq!(m, Markers { status: Some(429), ..Default::default() });
        assert!(parse_markers("[[mock:insufficient_quota]]").insufficient_quota);
        assert!(parse_markers("[[mock:quota-per-day]]").insufficient_quota);
        assert!(parse_markers("[[mock:malformed]]").malformed);
        assert!(parse_markers("[[mock:hang]]").hang);
        assert_eq!(parse_markers("[[mock:fail-first=2]]").fail_first, Some(2));
        assert_eq!(parse_markers("[[mock:latency=150]]").latency_ms, Some(150));
    }

    #[test]
    fn combines_markers_and_ignores_junk() {
        let m = parse_markers("[[mock:fail-first=3]] x [[mock:status=429]][[mock:latency= 20 ]]");
        assert_eq!(m.fail_first, Some(3));
        assert_eq!(m.status, Some(429));
        assert_eq!(m.latency_ms, Some(20));
        for junk in [
            "[[mock:status=abc]]",
            "[[mock:status=200]]",
            "[[mock:bogus]]",
            "[[mock:status=500",
            "[mock:hang]",
            "[[mock:answer=sideways]]",
            "[[mock:header=no-colon]]",
        ] {
            assert_eq!(parse_markers(junk), Markers::default(), "{junk}");
        }
    }

    #[test]
    fn header_markers_keep_order_colons_and_garbage() {
        let prompt = "[[mock:header=x-ratelimit-reset-requests:99999999999999999999s]] \
            [[mock:header=anthropic-ratelimit-requests-reset: 2999-01-01T00:00:00Z]] \
            [[mock:header=retry-after:soon]][[mock:header=retry-after:1]]";
        let markers = parse_markers(prompt);
        let pairs: Vec<(&str, &str)> = markers.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("x-ratelimit-reset-requests", "99999999999999999999s"),
                ("anthropic-ratelimit-requests-reset", "2999-01-01T00:00:00Z"),
                ("retry-after", "soon"),
                ("retry-after", "1"),
            ]
        );
        let sendable = marker_headers(prompt);
        assert_eq!(sendable.len(), 4);
        assert_eq!(sendable[1].1, "2999-01-01T00:00:00Z");
        // A name HTTP cannot carry is dropped; the rest still go.
        let mixed = marker_headers("[[mock:header=bad name:1]][[mock:header=x-ok:ünï]]");
        assert_eq!(mixed.len(), 1);
        assert_eq!(mixed[0].1.as_bytes(), "ünï".as_bytes());
        assert!(marker_headers("no markers").is_empty());
    }

    #[test]
    fn answer_markers() {
        assert_eq!(shape(Some("[[mock:answer=empty]]")), Some(Shape::Empty));
        assert_eq!(shape(Some("[[mock:answer=null]]")), Some(Shape::Null));
        assert_eq!(shape(Some("[[mock:answer=no-choices]]")), Some(Shape::NoChoices));
        assert_eq!(shape(Some("[[mock:answer=filtered]]")), Some(Shape::Filtered));
        assert_eq!(shape(Some("[[mock:answer=blocked]]")), Some(Shape::Blocked));
        assert_eq!(shape(Some("plain")), None);
        assert_eq!(shape(None), None);
        // Not a fault: the request succeeds and the provider shapes it.
        let faults = Faults::new(&MockConfig::default());
        assert_eq!(faults.plan(Some("[[mock:answer=filtered]]")).fault, None);
    }

    #[test]
    fn fail_first_fails_n_times_per_prompt() {
        let faults = Faults::new(&MockConfig::default());
        let prompt = "[[mock:fail-first=2]] item 7";
        let faults_seen: Vec<_> = (0..4).map(|_| faults.plan(Some(prompt)).fault).collect();
        let failed = Some(Fault::Status(503));
        assert_eq!(faults_seen, [failed, failed, None, None]);
        // Another prompt has its own counter.
        assert_eq!(faults.plan(Some("[[mock:fail-first=1]] other")).fault, failed);
        faults.reset();
        assert_eq!(faults.plan(Some(prompt)).fault, failed);
    }

    #[test]
    fn fail_first_uses_status_marker() {
        let faults = Faults::new(&MockConfig::default());
        let prompt = "[[mock:fail-first=1]][[mock:status=429]]";
        assert_eq!(faults.plan(Some(prompt)).fault, Some(Fault::Status(429)));
        assert_eq!(faults.plan(Some(prompt)).fault, None);
    }

    #[test]
    fn random_faults_are_seeded_and_alternate() {
        let config = MockConfig { error_rate: 1.0, ..Default::default() };
        let faults = Faults::new(&config);
        let codes: Vec<_> = (0..4).map(|_| faults.plan(None).fault).collect();
        let (e500, e503) = (Some(Fault::Status(500)), Some(Fault::Status(503)));
        assert_eq!(codes, [e500, e503, e500, e503]);

        let mixed = MockConfig { error_rate: 0.3, malformed_rate: 0.3, hang_rate: 0.3, seed: 7, ..Default::default() };
        let run = || {
            let faults = Faults::new(&mixed);
            (0..50).map(|_| faults.plan(Some("x")).fault).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn delays() {
        let config = MockConfig { latency_ms: 100, jitter_ms: 10, hang_ms: 5000, ..Default::default() };
        let faults = Faults::new(&config);
        for _ in 0..20 {
            let delay = faults.plan(Some("x")).delay;
            assert!((Duration::from_millis(100)..=Duration::from_millis(110)).contains(&delay));
        }
        assert_eq!(faults.plan(Some("[[mock:latency=7]]")).delay, Duration::from_millis(7));
        let hang = faults.plan(Some("[[mock:hang]]"));
        assert_eq!(hang, Plan { fault: Some(Fault::Hang), delay: Duration::from_millis(5000) });
    }
}
