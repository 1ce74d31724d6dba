//! [`MockConfig`]: every knob of the mock server in one plain struct.
//!
//! The defaults describe a perfectly healthy provider (no latency, no limits,
//! no faults), so tests only spell out the behaviour they are about:
//!
//! ```
//! let config = batchllm_mock::MockConfig { rpm: Some(2), window_ms: 200, ..Default::default() };
//! assert!(config.validate().is_ok());
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use axum::http::{HeaderName, HeaderValue};

/// Default length of the rate-limit window: one minute, like the real RPM/TPM.
pub const DEFAULT_WINDOW_MS: u64 = 60_000;

/// Default time a hung request waits before it is finally answered (one hour,
/// i.e. longer than any sane client timeout).
pub const DEFAULT_HANG_MS: u64 = 3_600_000;

/// Default share of a long prompt reported as `cached_tokens`.
pub const DEFAULT_CACHED_RATIO: f64 = 0.5;

/// Configuration of a [`MockServer`](crate::MockServer).
///
/// Rates (`error_rate`, `malformed_rate`, `hang_rate`) are shares in `0..=1`
/// of the admitted requests; their sum must not exceed 1. They are drawn from
/// an RNG seeded with `seed`, so the same request sequence always gets the
/// same faults.
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfig {
    /// Address to listen on; port 0 picks a free port (see
    /// [`MockServer::addr`](crate::MockServer::addr)).
    pub bind: SocketAddr,
    /// Fixed delay before answering an admitted request, in milliseconds.
    pub latency_ms: u64,
    /// Extra uniform random delay `0..=jitter_ms` added to `latency_ms`.
    pub jitter_ms: u64,
    /// When set, provider requests must carry the key (OpenAI
    /// `authorization: Bearer <key>`, Anthropic `x-api-key`, Gemini
    /// `x-goog-api-key` or `?key=`) or they are refused the provider's way.
    pub api_key: Option<String>,
    /// Requests admitted per window; `None` = unlimited.
    pub rpm: Option<u32>,
    /// Tokens (estimated prompt + requested completion) admitted per window;
    /// `None` = unlimited.
    pub tpm: Option<u64>,
    /// Length of the rate-limit window in milliseconds (tests use short
    /// windows so that limits recover quickly).
    pub window_ms: u64,
    /// How requests are counted against the window: sliding (the last
    /// `window_ms`), or fixed calendar-aligned windows.
    pub window_kind: WindowKind,
    /// Whether the provider announces its budgets: the `x-ratelimit-*` /
    /// `anthropic-ratelimit-*` headers on every answer, and the limit, usage
    /// and exact wait in the text of a 429. Off, a 429 says only which
    /// budget ran out (`requests` or `tokens`), as many gateways do.
    pub limit_headers: bool,
    /// What a 429 from the rate window says about when to retry.
    pub retry_after: RetryAfter,
    /// Times at which the provider's capacity shrinks (see
    /// [`CapacityChange`]), counted from server start or the last reset.
    pub capacity: Vec<CapacityChange>,
    /// Refuse every provider request past the front door with a rate-limit
    /// 429, whatever the window holds (a persistent rate limit).
    pub always_429: bool,
    /// Headers added to every provider answer, replacing a header of the
    /// same name the mock would send (to inject absurd provider headers).
    pub extra_headers: Vec<(String, String)>,
    /// Share of admitted requests answered with a 5xx (alternately 500 and 503).
    pub error_rate: f64,
    /// Share of admitted requests answered 200 with a truncated JSON body.
    pub malformed_rate: f64,
    /// Share of admitted requests that hang for `hang_ms` before answering 504.
    pub hang_rate: f64,
    /// How long a hung request waits, in milliseconds.
    pub hang_ms: u64,
    /// Share of the prompt reported as cached for prompts of at least 1024
    /// tokens (see [`tokens::cached_tokens`](crate::tokens::cached_tokens)).
    pub cached_ratio: f64,
    /// Seed of the RNG behind the random faults and the jitter.
    pub seed: u64,
    /// When set, every logged request is also appended to this file as one
    /// JSON line (flushed per line), for out-of-process inspection.
    pub log_file: Option<PathBuf>,
    /// Keep every request in memory for [`MockServer::requests`]
    /// (crate::MockServer::requests). Benchmarks that send millions of
    /// requests turn it off and read [`MockServer::status_counts`]
    /// (crate::MockServer::status_counts) instead, so the provider's own
    /// bookkeeping neither grows nor steals CPU from the client under test.
    pub keep_requests: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            latency_ms: 0,
            jitter_ms: 0,
            api_key: None,
            rpm: None,
            tpm: None,
            window_ms: DEFAULT_WINDOW_MS,
            window_kind: WindowKind::Sliding,
            limit_headers: true,
            retry_after: RetryAfter::Truthful,
            capacity: Vec::new(),
            always_429: false,
            extra_headers: Vec::new(),
            error_rate: 0.0,
            malformed_rate: 0.0,
            hang_rate: 0.0,
            hang_ms: DEFAULT_HANG_MS,
            cached_ratio: DEFAULT_CACHED_RATIO,
            seed: 0,
            log_file: None,
            keep_requests: true,
        }
    }
}

impl MockConfig {
    /// Checks that the knobs make sense together (shares in `0..=1` summing to
    /// at most 1, a non-empty window, non-zero limits).
    ///
    /// [`MockServer::start`](crate::MockServer::start) calls this first.
    pub fn validate(&self) -> anyhow::Result<()> {
        check_share("error_rate", self.error_rate)?;
        check_share("malformed_rate", self.malformed_rate)?;
        check_share("hang_rate", self.hang_rate)?;
        check_share("cached_ratio", self.cached_ratio)?;
        let faults = self.error_rate + self.malformed_rate + self.hang_rate;
        ensure!(faults <= 1.0 + 1e-9, "error_rate + malformed_rate + hang_rate must be at most 1 (got {faults})");
        ensure!(self.window_ms > 0, "window_ms must be greater than 0");
        ensure!(self.rpm != Some(0), "rpm must be greater than 0 (leave it unset for no limit)");
        ensure!(self.tpm != Some(0), "tpm must be greater than 0 (leave it unset for no limit)");
        for (i, change) in self.capacity.iter().enumerate() {
            check_share(&format!("capacity[{i}].share"), change.share)?;
            ensure!(!change.duration.is_zero(), "capacity[{i}].duration must be greater than 0");
        }
        self.parsed_headers()?;
        Ok(())
    }

    /// [`MockConfig::extra_headers`] as HTTP headers; fails naming the first
    /// one that is not a valid header.
    pub(crate) fn parsed_headers(&self) -> anyhow::Result<Vec<(HeaderName, HeaderValue)>> {
        self.extra_headers.iter().map(|(name, value)| parse_header(name, value)).collect()
    }

    /// The rate-limit window as a [`Duration`].
    pub(crate) fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }
}

/// How requests are counted against the rate window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WindowKind {
    /// The requests admitted during the last `window_ms` (OpenAI-like).
    #[default]
    Sliding,
    /// Windows of `window_ms` aligned on the Unix epoch (a 60 s window
    /// turns over on the minute), each starting empty, as gateways that
    /// count per calendar minute do.
    Fixed,
}

/// What a 429 from the rate window says about when to retry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RetryAfter {
    /// The true wait until the request would fit: `retry-after` (whole
    /// seconds, rounded up) and `retry-after-ms` on OpenAI, `retry-after` on
    /// Anthropic, `RetryInfo.retryDelay` on Gemini.
    #[default]
    Truthful,
    /// Always this many seconds, whatever the truth (`retry-after` only; on
    /// Gemini the `retryDelay`).
    Fixed(u64),
    /// No hint at all: no `retry-after`, no `RetryInfo`.
    Absent,
}

/// A stretch of time during which the provider admits only `share` of its
/// configured limits (`floor(limit * share)` per window, both `rpm` and
/// `tpm`): e.g. half its capacity for 16 s, one minute into the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityChange {
    /// Start, counted from server start or the last reset.
    pub from: Duration,
    /// How long it lasts.
    pub duration: Duration,
    /// Share of the limits admitted meanwhile, in `0..=1` (0 refuses every
    /// request). Where changes overlap, the smallest share applies.
    pub share: f64,
}

/// One header as given in a configuration or a marker, checked the way
/// the HTTP stack will send it.
pub(crate) fn parse_header(name: &str, value: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    let parsed = HeaderName::from_bytes(name.trim().as_bytes())
        .with_context(|| format!("extra header {name:?}: not a valid header name (letters, digits and -_ only)"))?;
    let value = HeaderValue::from_bytes(value.as_bytes()).with_context(|| {
        format!("extra header {name}: value {value:?} cannot be sent in a header (no control characters)")
    })?;
    Ok((parsed, value))
}

/// Rejects a share outside `0..=1` (including NaN).
fn check_share(name: &str, value: f64) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&value) {
        bail!("{name} must be between 0 and 1 (got {value})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_healthy() {
        let config = MockConfig::default();
        assert!(config.validate().is_ok());
        assert_eq!(config.bind.port(), 0);
        assert_eq!(config.error_rate, 0.0);
        assert!(config.rpm.is_none() && config.tpm.is_none() && config.api_key.is_none());
    }

    #[test]
    fn rejects_bad_shares() {
        let bad = |config: MockConfig| config.validate().is_err();
        assert!(bad(MockConfig { error_rate: 1.5, ..Default::default() }));
        assert!(bad(MockConfig { hang_rate: f64::NAN, ..Default::default() }));
        assert!(bad(MockConfig { error_rate: 0.6, malformed_rate: 0.6, ..Default::default() }));
        assert!(bad(MockConfig { cached_ratio: -0.1, ..Default::default() }));
    }

    #[test]
    fn rejects_bad_capacity_and_headers() {
        let dip = |share: f64, duration_ms: u64| MockConfig {
            capacity: vec![CapacityChange {
                from: Duration::ZERO,
                duration: Duration::from_millis(duration_ms),
                share,
            }],
            ..Default::default()
        };
        assert!(dip(0.5, 1000).validate().is_ok());
        assert!(dip(0.0, 1000).validate().is_ok());
        assert!(dip(1.5, 1000).validate().is_err());
        assert!(dip(0.5, 0).validate().is_err());
        let header = |name: &str, value: &str| MockConfig {
            extra_headers: vec![(name.into(), value.into())],
            ..Default::default()
        };
        assert!(header("x-ratelimit-reset-requests", "99999999999999999999s").validate().is_ok());
        assert!(header("retry-after", "ünïcode garbage").validate().is_ok(), "obs-text bytes are sendable");
        let error = header("bad name", "1").validate().expect_err("space in a name");
        assert!(error.to_string().contains("\"bad name\""), "{error}");
        assert!(header("x-a", "line\nbreak").validate().is_err());
    }

    #[test]
    fn rejects_empty_window_and_zero_limits() {
        assert!(MockConfig { window_ms: 0, ..Default::default() }.validate().is_err());
        assert!(MockConfig { rpm: Some(0), ..Default::default() }.validate().is_err());
        assert!(MockConfig { tpm: Some(0), ..Default::default() }.validate().is_err());
    }
}
