//! The accepted range of every number a run option can hold.
//!
//! One check per option, run on each value whatever its source (a flag, a
//! `--config` key, or the built-in default), so a file can no longer slip
//! past what the command line refuses. The ranges keep the engine's
//! arithmetic safe, not only sensible: every value is finite (no NaN or
//! infinity reaches a `Duration`), every duration is at most a year (no
//! `Duration` overflow, no deadline past the end of time), and a rate is at
//! least one event a year, so the longest wait it can cause is a year too
//! (`--rpm 1e-300` would otherwise ask for a wait of ~10^302 seconds).
//! Zero is accepted only where it means something (`--cooldown 0`: no
//! pause); `--concurrency 0` and `--attempt-timeout 0` are refused rather
//! than quietly replaced.

/// A range check: `Err` holds what was expected, for the error message.
pub trait Check<T> {
    fn check(&self, value: &T) -> Result<(), &'static str>;
}

/// An integer range, both ends included.
#[derive(Debug, Clone, Copy)]
pub struct Int {
    pub min: i64,
    pub max: i64,
    /// What was expected, e.g. "an integer from 1 to 16384".
    pub expected: &'static str,
}

impl Check<i64> for Int {
    fn check(&self, value: &i64) -> Result<(), &'static str> {
        if (self.min..=self.max).contains(value) { Ok(()) } else { Err(self.expected) }
    }
}

/// A finite real range; the lower end is excluded when `above` is set.
#[derive(Debug, Clone, Copy)]
pub struct Real {
    pub min: f64,
    pub above: bool,
    pub max: f64,
    /// What was expected, e.g. "seconds from 0 to 31536000 (a year)".
    pub expected: &'static str,
}

impl Check<f64> for Real {
    fn check(&self, value: &f64) -> Result<(), &'static str> {
        let low = if self.above { *value > self.min } else { *value >= self.min };
        if value.is_finite() && low && *value <= self.max { Ok(()) } else { Err(self.expected) }
    }
}

/// A year in seconds: the longest duration or wait any option can ask for.
pub const YEAR_SECS: f64 = 365.0 * 86_400.0;

/// The shortest positive duration: below a millisecond a timer is noise.
pub const MIN_POSITIVE_SECS: f64 = 0.001;

/// A wait or a pause; 0 turns it off.
pub const SECS: Real = Real { min: 0.0, above: false, max: YEAR_SECS, expected: "seconds from 0 to 31536000 (a year)" };

/// A time limit or interval, which must be there.
pub const POSITIVE_SECS: Real =
    Real { min: MIN_POSITIVE_SECS, above: false, max: YEAR_SECS, expected: "seconds from 0.001 to 31536000 (a year)" };

/// A rate per minute: at least about one a year (2e-6 a minute is one
/// every 347 days), at most 10^12 a minute.
pub const PER_MINUTE: Real =
    Real { min: 2e-6, above: false, max: 1e12, expected: "a rate per minute from 0.000002 (about one a year) to 1e12" };

/// The cooldown's growth per consecutive rate limit.
pub const MULTIPLIER: Real = Real { min: 1.0, above: false, max: 100.0, expected: "a factor from 1 to 100" };

/// A budget in US dollars.
pub const USD: Real = Real { min: 0.0, above: true, max: 1e9, expected: "US dollars above 0, at most 1e9" };

pub const CONCURRENCY: Int = Int { min: 1, max: 16_384, expected: "an integer from 1 to 16384" };

/// Lines per chunk of a `--cluster` batch: a chunk is what a dead host's
/// successor takes over, so not the whole file, and at least one line.
pub const CHUNK_LINES: Int = Int { min: 1, max: 10_000_000, expected: "an integer from 1 to 10000000" };

/// A `--cluster` lease: long enough for a heartbeat (a third of it) to get
/// through a busy second, at most a day.
pub const LEASE_SECS: Real =
    Real { min: 1.0, above: false, max: 86_400.0, expected: "seconds from 1 to 86400 (a day)" };

pub const ATTEMPTS: Int = Int { min: 1, max: 1_000, expected: "an integer from 1 to 1000" };

pub const RATE_LIMIT_RETRIES: Int = Int { min: 0, max: 1_000_000, expected: "an integer from 0 to 1000000" };

pub const SLOW_START_ATTEMPTS: Int = Int { min: 0, max: 10_000, expected: "an integer from 0 to 10000" };

/// Output tokens charged per job: 10 million is far above any model's
/// output limit, and keeps a token bucket's debt (tokens / rate) finite.
pub const OUTPUT_TOKENS: Int = Int { min: 0, max: 10_000_000, expected: "an integer from 0 to 10000000" };

pub const TOKEN_BUDGET: Int = Int { min: 1, max: i64::MAX, expected: "a positive integer" };

/// Linear memory per instance, in MiB (wasm32 addresses at most 4 GiB; the
/// upper end leaves room for memory64 components).
pub const REQUESTS_PER_CALL: Int = Int { min: 1, max: 10_000, expected: "an integer from 1 to 10000" };

/// Linear memory per instance, in MiB.
pub const MEMORY_MB: Int = Int { min: 16, max: 65_536, expected: "an integer from 16 to 65536" };

/// A clap value parser running `check` on what `parse` made of the text, for
/// the flag-only options (which have no `--config` key to check).
pub fn flag_parser<T, C>(check: C) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
    C: Check<T> + Clone + Send + Sync + 'static,
{
    move |text: &str| {
        let value = text.trim().parse::<T>().map_err(|e| e.to_string())?;
        check.check(&value).map_err(|expected| format!("expected {expected}"))?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reals_refuse_nan_infinities_and_the_ends_outside() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.5, YEAR_SECS * 1.000_001, 1e300] {
            assert!(SECS.check(&bad).is_err(), "{bad}");
        }
        assert!(SECS.check(&0.0).is_ok());
        assert!(SECS.check(&YEAR_SECS).is_ok());
        assert!(POSITIVE_SECS.check(&0.0).is_err());
        assert!(POSITIVE_SECS.check(&0.000_1).is_err());
        assert!(POSITIVE_SECS.check(&0.001).is_ok());
        assert!(USD.check(&0.0).is_err());
        assert!(USD.check(&0.01).is_ok());
        assert!(MULTIPLIER.check(&0.99).is_err());
    }

    #[test]
    fn the_slowest_rate_waits_at_most_a_year() {
        assert!(PER_MINUTE.check(&1e-300).is_err());
        assert!(PER_MINUTE.check(&0.0).is_err());
        let slowest = PER_MINUTE.min;
        assert!(PER_MINUTE.check(&slowest).is_ok());
        assert!(PER_MINUTE.check(&0.000_001_99).is_err());
        // One request at the slowest rate: 60 / rpm seconds.
        assert!(60.0 / slowest <= YEAR_SECS);
        assert!(PER_MINUTE.expected.contains("0.000002"), "the text shows the real lower end");
    }

    #[test]
    fn ints_include_both_ends() {
        assert!(CONCURRENCY.check(&0).is_err());
        assert!(CONCURRENCY.check(&1).is_ok());
        assert!(CONCURRENCY.check(&16_384).is_ok());
        assert!(CONCURRENCY.check(&16_385).is_err());
        assert!(TOKEN_BUDGET.check(&i64::MAX).is_ok());
    }

    #[test]
    fn flag_parser_parses_then_checks() {
        let parse = flag_parser::<f64, _>(POSITIVE_SECS);
        assert_eq!(parse(" 2.5"), Ok(2.5));
        assert!(parse("0").expect_err("zero").contains("from 0.001"));
        assert!(parse("nan").is_err());
        assert!(parse("x").is_err());
    }
}
