//! What the host reads from HTTP itself, whatever the plugin says.
//!
//! The host sees every exchange a plugin makes. A 429 is treated as a rate
//! limit and a server's `retry-after` is honoured even when the plugin
//! misclassifies, so no plugin can make the host hammer a provider; and a
//! request the egress policy refused is reported as such.

use std::time::Duration;

use crate::model::FailureClass;
use crate::model::{Exchange, ExchangeFailure};

/// The classification after taking the host's own observations into account.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconciled {
    pub class: FailureClass,
    pub server_wait: Option<Duration>,
    /// The denial message when the egress policy refused a request.
    pub denied: Option<String>,
}

/// Combines the plugin's verdict with what the host saw on the wire.
pub fn reconcile(class: FailureClass, plugin_wait: Option<Duration>, exchanges: &[Exchange]) -> Reconciled {
    if let Some(denied) = exchanges.iter().find_map(|e| e.denied.clone()) {
        return Reconciled { class: FailureClass::EgressDenied, server_wait: None, denied: Some(denied) };
    }
    let last = exchanges.iter().rev().find(|e| e.status.is_some());
    let header_wait = last.and_then(retry_after);
    let status = last.and_then(|e| e.status);
    let class = match (status, class) {
        (Some(429), FailureClass::QuotaExhausted | FailureClass::TooLarge | FailureClass::RateLimited) => class,
        (Some(429), _) => FailureClass::RateLimited,
        (Some(500..=599), FailureClass::ClientError | FailureClass::Other) => FailureClass::Overloaded,
        _ => class,
    };
    // A plugin that could only see "the request failed" (JS `fetch`) gets
    // the cause the host saw.
    let class = match (class, exchanges.last().and_then(|e| e.failure)) {
        (FailureClass::Network | FailureClass::Other, Some(ExchangeFailure::Timeout)) => FailureClass::Timeout,
        (FailureClass::Network | FailureClass::Other, Some(ExchangeFailure::TooLarge)) => FailureClass::TooLarge,
        _ => class,
    };
    Reconciled { class, server_wait: plugin_wait.or(header_wait), denied: None }
}

/// The wait a response asks for: `retry-after-ms`, else `retry-after` in
/// seconds (HTTP-date values are ignored: they need a trusted clock), read
/// as the plugins' classifier reads them (`batchllm_classify`), capped at a
/// day; a zero wait is none.
pub fn retry_after(exchange: &Exchange) -> Option<Duration> {
    use batchllm_classify::http::{parse_retry_after_header, parse_retry_after_ms_header};
    let ms = match exchange.header("retry-after-ms").and_then(parse_retry_after_ms_header) {
        Some(ms) => ms,
        None => exchange.header("retry-after").and_then(parse_retry_after_header)?,
    };
    (ms > 0).then(|| Duration::from_millis(ms.min(86_400_000)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(status: u16, headers: &[(&str, &str)]) -> Exchange {
        Exchange {
            status: Some(status),
            signal_headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Exchange::default()
        }
    }

    #[test]
    fn a_429_is_a_rate_limit_whatever_the_plugin_says() {
        let r = reconcile(FailureClass::Other, None, &[exchange(429, &[("retry-after", "2")])]);
        assert_eq!(r.class, FailureClass::RateLimited);
        assert_eq!(r.server_wait, Some(Duration::from_secs(2)));
        let r = reconcile(FailureClass::QuotaExhausted, None, &[exchange(429, &[])]);
        assert_eq!(r.class, FailureClass::QuotaExhausted);
    }

    #[test]
    fn retry_after_ms_wins_and_plugin_hint_wins_over_headers() {
        let e = exchange(429, &[("retry-after", "2"), ("retry-after-ms", "250")]);
        assert_eq!(retry_after(&e), Some(Duration::from_millis(250)));
        let r = reconcile(FailureClass::RateLimited, Some(Duration::from_secs(5)), &[e]);
        assert_eq!(r.server_wait, Some(Duration::from_secs(5)));
        assert_eq!(retry_after(&exchange(429, &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")])), None);
        assert_eq!(retry_after(&exchange(429, &[("retry-after", "1.5")])), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after(&exchange(429, &[("retry-after", "0")])), None);
        assert_eq!(retry_after(&exchange(429, &[("retry-after", "99999999")])), Some(Duration::from_secs(86_400)));
        assert_eq!(retry_after(&exchange(429, &[("retry-after", "-3")])), None);
    }

    #[test]
    fn a_generic_network_error_gets_the_cause_the_host_saw() {
        let timed_out = Exchange { failure: Some(ExchangeFailure::Timeout), ..Exchange::default() };
        assert_eq!(reconcile(FailureClass::Network, None, &[timed_out]).class, FailureClass::Timeout);
        let too_big = Exchange { failure: Some(ExchangeFailure::TooLarge), ..Exchange::default() };
        assert_eq!(reconcile(FailureClass::Other, None, std::slice::from_ref(&too_big)).class, FailureClass::TooLarge);
        assert_eq!(reconcile(FailureClass::Auth, None, &[too_big]).class, FailureClass::Auth, "a specific class stays");
    }

    #[test]
    fn denials_and_server_errors() {
        let denied = Exchange { denied: Some("no".into()), ..Exchange::default() };
        assert_eq!(reconcile(FailureClass::ClientError, None, &[denied]).class, FailureClass::EgressDenied);
        assert_eq!(reconcile(FailureClass::ClientError, None, &[exchange(503, &[])]).class, FailureClass::Overloaded);
        assert_eq!(reconcile(FailureClass::Auth, None, &[exchange(401, &[])]).class, FailureClass::Auth);
    }
}
