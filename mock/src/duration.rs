//! Go-style duration strings (`1s`, `6m0s`, `20ms`, `1.234s`), the format
//! OpenAI uses in `x-ratelimit-reset-*` headers and in rate-limit messages.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Formats `d` like Go's `time.Duration.String()`.
///
/// Below one second a single unit is used (`ns`, `µs`, `ms`); from one second
/// on, hours and minutes are spelled out as needed and the seconds carry the
/// fraction (`1h0m0s`, `6m0s`, `8.64s`). Zero is `0s`.
pub(crate) fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < NANOS_PER_SEC {
        return sub_second(nanos);
    }
    let secs = nanos / NANOS_PER_SEC;
    let (hours, minutes) = (secs / 3600, secs / 60 % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    let seconds = nanos % (60 * NANOS_PER_SEC);
    out.push_str(&decimal(seconds, NANOS_PER_SEC, 9));
    out.push('s');
    out
}

/// Rounds `d` up to whole milliseconds, so that header values stay short and
/// never claim a wait shorter than the real one.
pub(crate) fn ceil_millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

/// A duration below one second in its largest fitting unit.
fn sub_second(nanos: u128) -> String {
    let (scale, digits, unit) = match nanos {
        0..1_000 => (1, 0, "ns"),
        1_000..1_000_000 => (1_000, 3, "µs"),
        _ => (1_000_000, 6, "ms"),
    };
    format!("{}{unit}", decimal(nanos, scale, digits))
}

/// `value / scale` as a decimal with trailing zeros (and a bare `.`) trimmed;
/// `digits` is the number of decimal digits of `scale`.
fn decimal(value: u128, scale: u128, digits: usize) -> String {
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(ms(20)), "20ms");
        assert_eq!(go_duration(ms(1)), "1ms");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_nanos(7)), "7ns");
        assert_eq!(go_duration(ms(1000)), "1s");
        assert_eq!(go_duration(ms(1234)), "1.234s");
        assert_eq!(go_duration(ms(8640)), "8.64s");
        assert_eq!(go_duration(ms(59_999)), "59.999s");
        assert_eq!(go_duration(ms(60_000)), "1m0s");
        assert_eq!(go_duration(ms(360_000)), "6m0s");
        assert_eq!(go_duration(ms(90_500)), "1m30.5s");
        assert_eq!(go_duration(ms(3_600_000)), "1h0m0s");
        assert_eq!(go_duration(ms(3_723_000)), "1h2m3s");
    }

    #[test]
    fn ceil_millis_rounds_up() {
        assert_eq!(ceil_millis(Duration::from_nanos(1)), ms(1));
        assert_eq!(ceil_millis(Duration::from_micros(1001)), ms(2));
        assert_eq!(ceil_millis(ms(7)), ms(7));
        assert_eq!(ceil_millis(Duration::ZERO), Duration::ZERO);
    }
}
