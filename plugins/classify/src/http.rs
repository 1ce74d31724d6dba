//! Provider-agnostic classification of failed calls.
//!
//! The host's retry policy is keyed on the [`Class`]; a strategy's job is
//! to classify honestly, never to decide on retries. [`from_http`] covers what
//! every HTTP API shares; the provider modules refine its result with what
//! only the provider's error body says (for example OpenAI's
//! `insufficient_quota` → `quota-exhausted`) through [`from_http_refined`]
//! (or [`from_http_with`] for a rule of its own).
//!
//! | status | class |
//! | --- | --- |
//! | 429 | `rate-limited` |
//! | 401, 403 | `auth` |
//! | 413 | `too-large` |
//! | 400, 404, 405, 410, 422 | `client-error` |
//! | 408 | `timeout` |
//! | 409, 500, 502, 503, 504, 529, any other 5xx | `overloaded` (409 is retried, as the OpenAI SDK does) |
//! | anything else | `other` |

use crate::text::{body_text, excerpt};
use crate::{Class, Failure};
use serde_json::Value;

/// The value of the first header named `name` (ASCII case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The longest provider message (in bytes) copied into an error message.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// The class of a non-2xx HTTP status, per the table in the module docs.
pub fn class_for_status(status: u16) -> Class {
    match status {
        429 => Class::RateLimited,
        401 | 403 => Class::Auth,
        413 => Class::TooLarge,
        400 | 404 | 405 | 410 | 422 => Class::ClientError,
        408 => Class::Timeout,
        409 => Class::Overloaded,
        500..=599 => Class::Overloaded,
        _ => Class::Other,
    }
}

/// Classifies a provider's non-2xx answer.
///
/// - `class` from [`class_for_status`];
/// - `message`: `HTTP <status> <reason>: <provider message>`, the provider
///   message read from the usual JSON shapes (`error.message`, `error`,
///   `message`, `detail`) or an excerpt of a non-JSON body;
/// - `http_status`: always `status`;
/// - `retry_after_ms`, on any status: header `retry-after-ms`, else
///   `retry-after` (seconds, possibly fractional; an HTTP-date is treated as
///   unknown because a strategy has no clock), else a Gemini-style
///   `error.details[].retryDelay`, else, for 429 only, a "try again in 644ms" /
///   "try again in 9.816s" phrase in the body;
/// - `response_body`: the body when it is JSON.
pub fn from_http(status: u16, headers: &[(String, String)], body: &str) -> Failure {
    let json = serde_json::from_str::<Value>(body).ok();
    from_http_parsed(status, headers, body, json.as_ref())
}

/// [`from_http`] for a body already parsed (`json` is `body` as JSON, `None`
/// when it is not JSON).
fn from_http_parsed(status: u16, headers: &[(String, String)], body: &str, json: Option<&Value>) -> Failure {
    let reason = reason_phrase(status);
    let head = if reason.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status} {reason}") };
    let message = match provider_message(json, body) {
        Some(m) => format!("{head}: {m}"),
        None => head,
    };
    let mut err = Failure::new(class_for_status(status), message).with_http_status(status);
    err.retry_after_ms = header(headers, "retry-after-ms")
        .and_then(parse_retry_after_ms_header)
        .or_else(|| header(headers, "retry-after").and_then(parse_retry_after_header))
        .or_else(|| json.and_then(retry_info_delay_ms))
        .or_else(|| (status == 429).then(|| parse_try_again_in(body)).flatten());
    if json.is_some() {
        err.response_body = Some(body.to_owned());
    }
    err
}

/// [`from_http`] for a body given as bytes (invalid UTF-8 replaced).
pub fn from_http_bytes(status: u16, headers: &[(String, String)], body: &[u8]) -> Failure {
    from_http(status, headers, &body_text(body))
}

/// Classifies a provider's non-2xx answer by the status ([`from_http`]),
/// then by what only the provider's error body says.
///
/// `refine` gets the body parsed as JSON (`None` when it is not JSON) and
/// returns the provider's class for it, or `None` to keep the status's. The
/// class is then settled with [`Failure::reclassified`]: one the host
/// does not retry drops the wait hint, whether or not `refine` chose it (a
/// 400 with a `retry-after` header is still not worth waiting for).
///
/// ```
/// use batchllm_classify::{Class, http};
///
/// let body = br#"{"error": {"type": "overloaded_error", "message": "Overloaded"}}"#;
/// let e = http::from_http_refined(400, &[], body, |json| {
///     let kind = json?.pointer("/error/type")?.as_str()?;
///     (kind == "overloaded_error").then_some(Class::Overloaded)
/// });
/// assert_eq!((e.class, e.http_status), (Class::Overloaded, Some(400)));
/// assert_eq!(e.message, "HTTP 400 Bad Request: Overloaded");
/// ```
pub fn from_http_refined(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    refine: impl FnOnce(Option<&Value>) -> Option<Class>,
) -> Failure {
    from_http_with(status, headers, body, |err, json| {
        let class = refine(json).unwrap_or(err.class);
        err.reclassified(class)
    })
}

/// [`from_http`] on a body given as bytes, then `refine` on the result and
/// the body parsed as JSON (`None` when it is not JSON); the body is decoded
/// and parsed once. For a plugin whose refinement is more than a class (see
/// [`from_http_refined`] for the usual one).
pub fn from_http_with(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    refine: impl FnOnce(Failure, Option<&Value>) -> Failure,
) -> Failure {
    let text = body_text(body);
    let json = serde_json::from_str::<Value>(&text).ok();
    refine(from_http_parsed(status, headers, &text, json.as_ref()), json.as_ref())
}

/// The message of an error a provider sent inside a 2xx answer (`{"error":
/// ...}` in place of a result): `HTTP <status> response carries an error:
/// <provider message>`, the provider message as [`provider_message`] reads
/// it from `json` (the answer's `text` parsed).
pub fn embedded_error_message(status: u16, json: &Value, text: &str) -> String {
    let detail = provider_message(Some(json), text).unwrap_or_default();
    format!("HTTP {status} response carries an error: {detail}")
}

/// The human-readable message in a provider's error body: `error.message`
/// (OpenAI, Anthropic, Gemini), `error` as a string, `message`, or `detail`
/// (FastAPI-based servers); for a non-JSON body, an excerpt of it. `None`
/// for an empty body.
pub fn provider_message(json: Option<&Value>, body: &str) -> Option<String> {
    if let Some(json) = json {
        let candidates = [json.pointer("/error/message"), json.get("error"), json.get("message"), json.get("detail")];
        for c in candidates.into_iter().flatten() {
            match c {
                Value::String(s) if !s.trim().is_empty() => {
                    return Some(excerpt(s.trim(), MAX_MESSAGE_BYTES));
                }
                Value::Array(_) => return Some(excerpt(&c.to_string(), MAX_MESSAGE_BYTES)),
                _ => {}
            }
        }
    }
    let trimmed = body.trim();
    (!trimmed.is_empty()).then(|| excerpt(trimmed, MAX_MESSAGE_BYTES))
}

/// Parses a `retry-after-ms` header value (milliseconds, possibly fractional,
/// rounded up).
pub fn parse_retry_after_ms_header(value: &str) -> Option<u64> {
    decimal_to_ns(value.trim(), 1_000_000).map(ns_to_ms)
}

/// Parses a `retry-after` header value given in seconds (possibly fractional,
/// rounded up to whole milliseconds). An HTTP-date gives `None`: converting it
/// needs a clock, and a strategy has none.
pub fn parse_retry_after_header(value: &str) -> Option<u64> {
    decimal_to_ns(value.trim(), 1_000_000_000).map(ns_to_ms)
}

/// Finds a "try again in 644ms" / "Please try again in 9.816s" / "retry in
/// 1m30s" phrase (any case) in `text` and returns its duration in
/// milliseconds, rounded up.
pub fn parse_try_again_in(text: &str) -> Option<u64> {
    // ASCII lowercasing keeps byte offsets valid for `text`.
    let lower = text.to_ascii_lowercase();
    for needle in ["try again in ", "retry in ", "retry after "] {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(needle) {
            let start = from + pos + needle.len();
            if let Some(ms) = parse_duration_ms(&text[start..]) {
                return Some(ms);
            }
            from = start;
        }
    }
    None
}

/// Parses a duration at the start of `text`, in milliseconds rounded up.
///
/// Accepts Go-style compound durations (`644ms`, `9.816s`, `1m30s`,
/// `1h2m3.5s`, `500us`) and simple spelled-out ones (`2 seconds`,
/// `1.5 minutes`). Text after the duration is ignored. `None` when `text` does
/// not start with a number followed by a known unit.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let mut rest = text.trim_start();
    let mut total_ns: u128 = 0;
    let mut parsed_any = false;
    loop {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            break;
        }
        let number = &rest[..num_len];
        let after_number = &rest[num_len..];
        let unit_start = after_number.trim_start_matches(' ');
        let unit_len = unit_start.find(|c: char| !c.is_alphabetic()).unwrap_or(unit_start.len());
        let Some(factor) = unit_ns(&unit_start[..unit_len]) else {
            break;
        };
        let Some(ns) = decimal_to_ns(number, factor) else {
            break;
        };
        total_ns = total_ns.saturating_add(ns);
        parsed_any = true;
        rest = &unit_start[unit_len..];
        // Go-style components follow each other without a separator.
        if !rest.starts_with(|c: char| c.is_ascii_digit()) {
            break;
        }
    }
    parsed_any.then(|| ns_to_ms(total_ns))
}

/// Gemini's `RetryInfo`: `{"error":{"details":[{"@type":"…RetryInfo","retryDelay":"27s"}]}}`.
fn retry_info_delay_ms(json: &Value) -> Option<u64> {
    crate::google_rpc::retry_delay_ms(json)
}

fn unit_ns(unit: &str) -> Option<u128> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000_000_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000_000_000,
        _ => return None,
    })
}

/// `number` (digits with at most one `.`) times `factor` nanoseconds, rounded
/// up to whole nanoseconds, computed exactly.
fn decimal_to_ns(number: &str, factor: u128) -> Option<u128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits past nanosecond precision of the largest unit cannot matter.
    let frac = &frac[..frac.len().min(18)];
    let scale = 10u128.pow(u32::try_from(frac.len()).ok()?);
    let int_value: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac_value: u128 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    let mantissa = int_value.checked_mul(scale)?.checked_add(frac_value)?;
    let total = mantissa.checked_mul(factor)?;
    Some(total.div_ceil(scale))
}

fn ns_to_ms(ns: u128) -> u64 {
    u64::try_from(ns.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// The standard reason phrase of common error statuses ("" when unknown).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn status_table() {
        use Class::*;
        let cases = [
            (429, RateLimited),
            (401, Auth),
            (403, Auth),
            (413, TooLarge),
            (400, ClientError),
            (404, ClientError),
            (405, ClientError),
            (410, ClientError),
            (422, ClientError),
            (409, Overloaded),
            (408, Timeout),
            (500, Overloaded),
            (502, Overloaded),
            (503, Overloaded),
            (504, Overloaded),
            (529, Overloaded),
            (599, Overloaded),
            (418, Other),
            (302, Other),
            (600, Other),
        ];
        for (status, class) in cases {
            let e = from_http(status, &[], "");
            assert_eq!(e.class, class, "status {status}");
            assert_eq!(e.http_status, Some(status));
        }
    }

    #[test]
    fn try_again_in_phrases() {
        let openai = "Rate limit reached for gpt-4o-mini in organization org-x on tokens per min (TPM): \
                      Limit 200000, Used 199632, Requested 614. Please try again in 644ms. Visit …";
        assert_eq!(parse_try_again_in(openai), Some(644));
        assert_eq!(parse_try_again_in("Please try again in 9.816s."), Some(9816));
        assert_eq!(parse_try_again_in("please TRY AGAIN IN 1m30s"), Some(90_000));
        assert_eq!(parse_try_again_in("Please try again in 6m0s."), Some(360_000));
        assert_eq!(parse_try_again_in("try again in 1h2m3.5s"), Some(3_723_500));
        assert_eq!(parse_try_again_in("Please retry in 27.428353394s."), Some(27_429));
        assert_eq!(parse_try_again_in("try again in 2 seconds"), Some(2000));
        assert_eq!(parse_try_again_in("try again in 0.0001s"), Some(1));
        assert_eq!(parse_try_again_in("try again in 20"), None);
        assert_eq!(parse_try_again_in("try again in a moment"), None);
        assert_eq!(parse_try_again_in("try again in a bit, or try again in 3s"), Some(3000));
        assert_eq!(parse_try_again_in("no phrase here"), None);
    }

    #[test]
    fn retry_after_headers() {
        assert_eq!(parse_retry_after_header("2"), Some(2000));
        assert_eq!(parse_retry_after_header(" 1.5 "), Some(1500));
        assert_eq!(parse_retry_after_header("0.0004"), Some(1));
        assert_eq!(parse_retry_after_header("0"), Some(0));
        assert_eq!(parse_retry_after_header("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after_header("-1"), None);
        assert_eq!(parse_retry_after_header(""), None);
        assert_eq!(parse_retry_after_header("."), None);
        assert_eq!(parse_retry_after_ms_header("644"), Some(644));
        assert_eq!(parse_retry_after_ms_header("12.2"), Some(13));
        assert_eq!(parse_retry_after_header("99999999999999999999999999999999999999999"), None);
    }

    #[test]
    fn retry_after_precedence() {
        let body = r#"{"error":{"message":"Please try again in 5s"}}"#;
        let e = from_http(429, &h(&[("Retry-After-Ms", "250"), ("retry-after", "1")]), body);
        assert_eq!(e.retry_after_ms, Some(250));
        let e = from_http(429, &h(&[("Retry-After", "1")]), body);
        assert_eq!(e.retry_after_ms, Some(1000));
        let e = from_http(429, &h(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]), body);
        assert_eq!(e.retry_after_ms, Some(5000));
        let e = from_http(429, &[], "Too many requests");
        assert_eq!(e.retry_after_ms, None);
        // Headers count on any status, the body phrase only on 429.
        let e = from_http(503, &h(&[("retry-after", "3")]), body);
        assert_eq!(e.retry_after_ms, Some(3000));
        let e = from_http(503, &[], body);
        assert_eq!(e.retry_after_ms, None);
    }

    #[test]
    fn gemini_retry_info() {
        let body = r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"27s"}]}}"#;
        assert_eq!(from_http(429, &[], body).retry_after_ms, Some(27_000));
    }

    #[test]
    fn messages_and_bodies() {
        let body = r#"{"error":{"message":"Invalid model","type":"invalid_request_error"}}"#;
        let e = from_http(404, &[], body);
        assert_eq!(e.message, "HTTP 404 Not Found: Invalid model");
        assert_eq!(e.response_body.as_deref(), Some(body));

        let e = from_http(502, &[], "<html>bad gateway</html>");
        assert_eq!(e.message, "HTTP 502 Bad Gateway: <html>bad gateway</html>");
        assert_eq!(e.response_body, None);

        let e = from_http(503, &[], "");
        assert_eq!(e.message, "HTTP 503 Service Unavailable");

        let e = from_http(400, &[], r#"{"error":"bad things"}"#);
        assert_eq!(e.message, "HTTP 400 Bad Request: bad things");
        let e = from_http(422, &[], r#"{"detail":[{"loc":["body"],"msg":"field required"}]}"#);
        assert!(e.message.contains("field required"), "{}", e.message);
        let e = from_http(418, &[], r#"{"message":"teapot"}"#);
        assert_eq!(e.message, "HTTP 418: teapot");

        let long = "x".repeat(5000);
        let e = from_http(500, &[], &long);
        assert!(e.message.len() < 1100);
    }

    #[test]
    fn refined_classes_settle_the_wait_hint() {
        let retry = h(&[("retry-after", "3")]);
        let body = br#"{"error":{"type":"billing_error","message":"pay up"}}"#;
        // The status's class when `refine` has none: 503 keeps the hint, 400 drops it.
        let e = from_http_refined(503, &retry, body, |_| None);
        assert_eq!((e.class, e.retry_after_ms), (Class::Overloaded, Some(3000)));
        let e = from_http_refined(400, &retry, body, |_| None);
        assert_eq!((e.class, e.retry_after_ms), (Class::ClientError, None));
        // A refined class: retried ones keep the hint, the others drop it.
        let e = from_http_refined(400, &retry, body, |json| {
            assert_eq!(json.and_then(|j| j.pointer("/error/type")), Some(&Value::from("billing_error")));
            Some(Class::Overloaded)
        });
        assert_eq!((e.class, e.retry_after_ms), (Class::Overloaded, Some(3000)));
        let e = from_http_refined(429, &retry, body, |_| Some(Class::QuotaExhausted));
        assert_eq!((e.class, e.retry_after_ms, e.http_status), (Class::QuotaExhausted, None, Some(429)));
        assert_eq!(e.message, "HTTP 429 Too Many Requests: pay up");
        assert_eq!(e.response_body.as_deref(), Some(std::str::from_utf8(body).unwrap()));
        // A body that is not JSON reaches `refine` as `None`.
        let e = from_http_refined(502, &[], b"<html>", |json| {
            assert!(json.is_none());
            None
        });
        assert_eq!((e.class, e.response_body), (Class::Overloaded, None));
    }

    #[test]
    fn from_http_with_hands_over_the_base_error_and_json() {
        let e = from_http_with(418, &[], b"\xff{}", |err, json| {
            assert!(json.is_none());
            assert_eq!(err, from_http(418, &[], "\u{fffd}{}"));
            Failure { class: Class::Auth, ..err }
        });
        assert_eq!((e.class, e.http_status), (Class::Auth, Some(418)));
        assert_eq!(from_http_with(404, &[], b"{}", |err, _| err), from_http(404, &[], "{}"));
    }

    #[test]
    fn embedded_errors_name_the_status_and_the_provider_message() {
        let text = r#"{"error":{"code":502,"message":"Provider returned error"}}"#;
        let json: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            embedded_error_message(200, &json, text),
            "HTTP 200 response carries an error: Provider returned error"
        );
        assert_eq!(embedded_error_message(200, &Value::from(""), ""), "HTTP 200 response carries an error: ");
    }
}
