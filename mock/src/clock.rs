//! Wall-clock formats the providers use: RFC 3339 timestamps (Anthropic's
//! `anthropic-ratelimit-*-reset` headers, Gemini's `expireTime`) and protobuf
//! Duration strings (Gemini's `ttl` and `RetryInfo.retryDelay`, `"1.5s"`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `time` as an RFC 3339 UTC timestamp with millisecond precision, e.g.
/// `2025-08-21T12:40:59.250Z`; times before 1970 are clamped to the epoch.
pub(crate) fn format_rfc3339(time: SystemTime) -> String {
    let millis = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let millis = i64::try_from(millis).unwrap_or(i64::MAX);
    let (days, ms_of_day) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms_of_day % 1000
    )
}

/// Parses a UTC RFC 3339 timestamp (`Z` suffix, optional fraction) such as
/// a client's `expireTime`; `None` for anything else.
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim().strip_suffix('Z').or_else(|| text.trim().strip_suffix('z'))?;
    let (date, time) = text.split_once(['T', 't'])?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let (time, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut time = time.splitn(3, ':').map(str::parse::<i64>);
    let (hour, minute, second) = (time.next()?.ok()?, time.next()?.ok()?, time.next()?.ok()?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: u64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let seconds = u64::try_from(seconds).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds) + Duration::from_millis(millis))
}

/// A protobuf Duration string: whole seconds as `"30s"`, else up to
/// millisecond precision (`"0.25s"`, `"1.5s"`).
pub(crate) fn format_duration(d: Duration) -> String {
    let millis = d.as_millis();
    if millis.is_multiple_of(1000) {
        return format!("{}s", millis / 1000);
    }
    let frac = format!("{:03}", millis % 1000);
    format!("{}.{}s", millis / 1000, frac.trim_end_matches('0'))
}

/// Parses a protobuf Duration string (`"300s"`, `"1.5s"`); `None` for
/// anything else, negative values included.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (0.0..1e12).contains(&seconds).then(|| Duration::from_secs_f64(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    #[test]
    fn rfc3339_round_trips() {
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(at(1_755_780_059_250)), "2025-08-21T12:40:59.250Z");
        for millis in [0, 951_782_400_000, 1_755_780_059_250, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339(&format_rfc3339(at(millis))), Some(at(millis)));
        }
        assert_eq!(parse_rfc3339("2025-08-21T12:40:59Z"), Some(at(1_755_780_059_000)));
        assert_eq!(parse_rfc3339("2025-08-21T12:40:59.123456789Z"), Some(at(1_755_780_059_123)));
        for bad in ["", "2025-08-21", "2025-08-21T12:40:59", "2025-13-01T00:00:00Z", "2025-08-21T12:40:59.x1Z"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(234)), "0.234s");
        assert_eq!(parse_duration("300s"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        for bad in ["", "300", "-1s", "abcs", "1e20s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
