//! The provider matrix of the rate-control work: seven ways real providers
//! and gateways signal (or hide) their rate limits, each a named set of
//! [`MockConfig`] knobs, so that the benchmark, the tests and a person
//! pointing a client at `batchllm-mock --profile B` all meet the same
//! provider.
//!
//! | row | provider |
//! |---|---|
//! | A | sliding window, limit headers on every answer, truthful `retry-after` (OpenAI-like) |
//! | B | sliding window, no limit headers, a bare 429 with a fixed `retry-after: 1` whatever the truth |
//! | C | as B without any `retry-after` |
//! | D | as B with fixed, calendar-aligned windows |
//! | E | token-bound: the limit is in tokens, the 429 says only `tokens`: no headers, no `retry-after` |
//! | F | as B, and the capacity halves from half a window into the run for 1.6 windows (16 s of a 10 s window) |
//! | G | as A; meant for the Anthropic (`anthropic-ratelimit-*`, `retry-after`) and Gemini (`RetryInfo`) endpoints |
//!
//! A profile sets the manners and the schedule; the budgets themselves
//! (`rpm`, `tpm`, `window_ms`) are the caller's, except that E drops `rpm`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::config::{CapacityChange, MockConfig, RetryAfter, WindowKind};

/// One row of the provider matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RateProfile {
    /// Announced limits, truthful `retry-after`.
    A,
    /// No limit headers, `retry-after: 1` always.
    B,
    /// No limit headers, no `retry-after`.
    C,
    /// As B, with fixed calendar-aligned windows.
    D,
    /// Token-bound, the 429 says only `tokens`.
    E,
    /// As B, the capacity halved for a while mid-run.
    F,
    /// As A, through the Anthropic and Gemini endpoints.
    G,
}

/// How much of its capacity an F provider keeps during the dip.
pub const DIP_SHARE: f64 = 0.5;

impl RateProfile {
    /// Every row, in order.
    pub const ALL: [RateProfile; 7] = [Self::A, Self::B, Self::C, Self::D, Self::E, Self::F, Self::G];

    /// The row's one-line description.
    pub fn describe(self) -> &'static str {
        match self {
            Self::A => "limit headers, truthful retry-after",
            Self::B => "no limit headers, retry-after: 1 always",
            Self::C => "no limit headers, no retry-after",
            Self::D => "fixed calendar windows, no headers, retry-after: 1",
            Self::E => "token-bound, 429 says only \"tokens\"",
            Self::F => "capacity halved for 1.6 windows mid-run, no headers, retry-after: 1",
            Self::G => "Anthropic headers / Gemini RetryInfo, truthful",
        }
    }

    /// The capacity dip of row F for a window of `window`: half the limits
    /// from half a window after start (or reset) for 1.6 windows.
    pub fn dip(window: Duration) -> CapacityChange {
        CapacityChange { from: window / 2, duration: window.mul_f64(1.6), share: DIP_SHARE }
    }

    /// Sets the row's manners on `config` (keeping its budgets and window
    /// length; E removes `rpm`, F adds the dip for `config.window_ms`).
    pub fn apply(self, config: &mut MockConfig) {
        let silent = |config: &mut MockConfig, retry_after| {
            config.limit_headers = false;
            config.retry_after = retry_after;
        };
        match self {
            Self::A | Self::G => {
                config.limit_headers = true;
                config.retry_after = RetryAfter::Truthful;
            }
            Self::B => silent(config, RetryAfter::Fixed(1)),
            Self::C => silent(config, RetryAfter::Absent),
            Self::D => {
                silent(config, RetryAfter::Fixed(1));
                config.window_kind = WindowKind::Fixed;
            }
            Self::E => {
                silent(config, RetryAfter::Absent);
                config.rpm = None;
            }
            Self::F => {
                silent(config, RetryAfter::Fixed(1));
                config.capacity.push(Self::dip(config.window()));
            }
        }
    }
}

impl fmt::Display for RateProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl FromStr for RateProfile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.to_string().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| format!("unknown profile {text:?}: expected one of A, B, C, D, E, F, G"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(profile: RateProfile) -> MockConfig {
        let mut config = MockConfig { rpm: Some(600), window_ms: 10_000, ..Default::default() };
        profile.apply(&mut config);
        config
    }

    #[test]
    fn rows() {
        let a = configured(RateProfile::A);
        assert_eq!(a, MockConfig { rpm: Some(600), window_ms: 10_000, ..Default::default() }, "A is the default");
        assert_eq!(configured(RateProfile::G), a);
        let b = configured(RateProfile::B);
        assert!(!b.limit_headers);
        assert_eq!(b.retry_after, RetryAfter::Fixed(1));
        assert_eq!(configured(RateProfile::C).retry_after, RetryAfter::Absent);
        let d = configured(RateProfile::D);
        assert_eq!((d.window_kind, d.retry_after), (WindowKind::Fixed, RetryAfter::Fixed(1)));
        let e = configured(RateProfile::E);
        assert_eq!((e.rpm, e.retry_after, e.limit_headers), (None, RetryAfter::Absent, false));
        let f = configured(RateProfile::F);
        let dip = CapacityChange { from: Duration::from_secs(5), duration: Duration::from_secs(16), share: 0.5 };
        assert_eq!(f.capacity, [dip]);
        for profile in RateProfile::ALL {
            assert!(configured(profile).validate().is_ok(), "{profile}");
            assert!(!profile.describe().is_empty());
        }
    }

    #[test]
    fn parses_letters() {
        assert_eq!("b".parse::<RateProfile>(), Ok(RateProfile::B));
        assert_eq!(" G ".parse::<RateProfile>(), Ok(RateProfile::G));
        assert!("H".parse::<RateProfile>().is_err());
    }
}
