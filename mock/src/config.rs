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

use anyhow::{bail, ensure};

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
    /// Length of the sliding rate-limit window in milliseconds (tests use
    /// short windows so that limits recover quickly).
    pub window_ms: u64,
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
        Ok(())
    }

    /// The rate-limit window as a [`Duration`].
    pub(crate) fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }
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
    fn rejects_empty_window_and_zero_limits() {
        assert!(MockConfig { window_ms: 0, ..Default::default() }.validate().is_err());
        assert!(MockConfig { rpm: Some(0), ..Default::default() }.validate().is_err());
        assert!(MockConfig { tpm: Some(0), ..Default::default() }.validate().is_err());
    }
}
