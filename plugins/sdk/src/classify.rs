//! Classification of failed calls and provider answers, in the WIT types.
//!
//! The rules live in the [`batchllm_classify`] crate, the one
//! implementation: the host runs the same code for plugins in other
//! languages (the WIT `classify` interface), so a Rust plugin links it and
//! gets exactly what they get, without a host call. This module converts
//! its results to [`StrategyError`] and [`Success`].
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
//!
//! A whole answer of a known API (OpenAI, Anthropic, Gemini) is read by
//! [`answer`]: its output, usage and metadata, or its classified failure,
//! `no-content` included.

use crate::http::HttpError;
use crate::{ErrorClass, StrategyError, Success, Usage};
use batchllm_classify::{Answer, Class, Failure};
use serde_json::Value;

pub use batchllm_classify::Api;
pub use batchllm_classify::http::{
    MAX_MESSAGE_BYTES, parse_duration_ms, parse_retry_after_header, parse_retry_after_ms_header, parse_try_again_in,
    provider_message, reason_phrase,
};

/// The class of a non-2xx HTTP status, per the table in the module docs.
pub fn class_for_status(status: u16) -> ErrorClass {
    batchllm_classify::http::class_for_status(status).into()
}

/// Classifies a provider's non-2xx answer: the class by status, the message
/// `HTTP <status> <reason>: <provider message>`, the status, the wait the
/// provider asked for (`retry-after-ms`, `retry-after` in seconds, Gemini
/// `RetryInfo`, and for a 429 a "try again in 644ms" phrase) and the body
/// when it is JSON. See [`batchllm_classify::http::from_http`].
pub fn from_http(status: u16, headers: &[(String, String)], body: &str) -> StrategyError {
    batchllm_classify::http::from_http(status, headers, body).into()
}

/// [`from_http`] for a body given as bytes (invalid UTF-8 replaced).
pub fn from_http_bytes(status: u16, headers: &[(String, String)], body: &[u8]) -> StrategyError {
    batchllm_classify::http::from_http_bytes(status, headers, body).into()
}

/// Classifies a provider's non-2xx answer by the status ([`from_http`]),
/// then by what only the provider's error body says: `refine` gets the body
/// parsed as JSON (`None` when it is not JSON) and returns the provider's
/// class for it, or `None` to keep the status's. A class the host does not
/// retry drops the wait hint.
///
/// ```
/// use batchllm_plugin_sdk::{ErrorClass, classify};
///
/// let body = br#"{"error": {"type": "overloaded_error", "message": "Overloaded"}}"#;
/// let e = classify::from_http_refined(400, &[], body, |json| {
///     let kind = json?.pointer("/error/type")?.as_str()?;
///     (kind == "overloaded_error").then_some(ErrorClass::Overloaded)
/// });
/// assert_eq!((e.class, e.http_status), (ErrorClass::Overloaded, Some(400)));
/// assert_eq!(e.message, "HTTP 400 Bad Request: Overloaded");
/// ```
pub fn from_http_refined(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    refine: impl FnOnce(Option<&Value>) -> Option<ErrorClass>,
) -> StrategyError {
    batchllm_classify::http::from_http_refined(status, headers, body, |json| refine(json).map(Class::from)).into()
}

/// [`from_http`] on a body given as bytes, then `refine` on the result and
/// the body parsed as JSON (`None` when it is not JSON), for a refinement
/// that is more than a class.
pub fn from_http_with(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    refine: impl FnOnce(StrategyError, Option<&Value>) -> StrategyError,
) -> StrategyError {
    batchllm_classify::http::from_http_with(status, headers, body, |err, json| refine(err.into(), json).into()).into()
}

/// The message of an error a provider sent inside a 2xx answer: `HTTP
/// <status> response carries an error: <provider message>`.
pub fn embedded_error_message(status: u16, json: &Value, text: &str) -> String {
    batchllm_classify::http::embedded_error_message(status, json, text)
}

/// A whole answer of `api`: its output, usage, body and metadata, or its
/// classified failure (an error status, a body that is not JSON or of the
/// wrong shape, an error inside a 2xx body, or `no-content`). What the host
/// answers plugins in other languages through the `classify` interface.
pub fn answer(api: Api, status: u16, headers: &[(String, String)], body: &[u8]) -> Result<Success, StrategyError> {
    convert(batchllm_classify::classify(api, status, headers, body))
}

/// A result of [`batchllm_classify`] in the WIT types.
pub fn convert(result: Result<Answer, Failure>) -> Result<Success, StrategyError> {
    result.map(Success::from).map_err(StrategyError::from)
}

/// Classifies a request that produced no response.
///
/// `denied` → `client-error` (message `egress denied: …`), `timeout` →
/// `timeout`, `network` → `network`, `invalid-request` → `client-error`,
/// `too-large` → `too-large`.
pub fn from_http_error(error: HttpError) -> StrategyError {
    match error {
        HttpError::Denied(m) => StrategyError::new(ErrorClass::ClientError, format!("egress denied: {m}")),
        HttpError::Timeout(m) => StrategyError::new(ErrorClass::Timeout, format!("request timed out: {m}")),
        HttpError::Network(m) => StrategyError::new(ErrorClass::Network, format!("network error: {m}")),
        HttpError::InvalidRequest(m) => StrategyError::new(ErrorClass::ClientError, format!("invalid request: {m}")),
        HttpError::TooLarge(m) => StrategyError::new(ErrorClass::TooLarge, format!("body too large: {m}")),
    }
}

impl From<Class> for ErrorClass {
    fn from(class: Class) -> Self {
        match class {
            Class::RateLimited => ErrorClass::RateLimited,
            Class::Overloaded => ErrorClass::Overloaded,
            Class::Timeout => ErrorClass::Timeout,
            Class::Network => ErrorClass::Network,
            Class::InvalidResponse => ErrorClass::InvalidResponse,
            Class::ClientError => ErrorClass::ClientError,
            Class::Auth => ErrorClass::Auth,
            Class::QuotaExhausted => ErrorClass::QuotaExhausted,
            Class::TooLarge => ErrorClass::TooLarge,
            Class::Other => ErrorClass::Other,
            Class::NoContent => ErrorClass::NoContent,
        }
    }
}

impl From<ErrorClass> for Class {
    fn from(class: ErrorClass) -> Self {
        match class {
            ErrorClass::RateLimited => Class::RateLimited,
            ErrorClass::Overloaded => Class::Overloaded,
            ErrorClass::Timeout => Class::Timeout,
            ErrorClass::Network => Class::Network,
            ErrorClass::InvalidResponse => Class::InvalidResponse,
            ErrorClass::ClientError => Class::ClientError,
            ErrorClass::Auth => Class::Auth,
            ErrorClass::QuotaExhausted => Class::QuotaExhausted,
            ErrorClass::TooLarge => Class::TooLarge,
            ErrorClass::Other => Class::Other,
            ErrorClass::NoContent => Class::NoContent,
        }
    }
}

impl From<batchllm_classify::Usage> for Usage {
    fn from(u: batchllm_classify::Usage) -> Self {
        Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_input_tokens: u.cached_input_tokens,
            cache_write_tokens: u.cache_write_tokens,
            reasoning_tokens: u.reasoning_tokens,
        }
    }
}

impl From<Usage> for batchllm_classify::Usage {
    fn from(u: Usage) -> Self {
        batchllm_classify::Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_input_tokens: u.cached_input_tokens,
            cache_write_tokens: u.cache_write_tokens,
            reasoning_tokens: u.reasoning_tokens,
        }
    }
}

impl From<Failure> for StrategyError {
    fn from(f: Failure) -> Self {
        StrategyError {
            class: f.class.into(),
            message: f.message,
            http_status: f.http_status,
            retry_after_ms: f.retry_after_ms,
            usage: f.usage.map(Usage::from),
            response_body: f.response_body,
        }
    }
}

impl From<StrategyError> for Failure {
    fn from(e: StrategyError) -> Self {
        Failure {
            class: e.class.into(),
            message: e.message,
            http_status: e.http_status,
            retry_after_ms: e.retry_after_ms,
            usage: e.usage.map(batchllm_classify::Usage::from),
            response_body: e.response_body,
        }
    }
}

impl From<Answer> for Success {
    fn from(a: Answer) -> Self {
        Success {
            output: a.output,
            usage: a.usage.map(Usage::from),
            response_body: a.response_body,
            metadata: a.metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors() {
        let e = from_http_error(HttpError::Denied("host evil.example not granted".into()));
        assert_eq!(e.class, ErrorClass::ClientError);
        assert!(e.message.starts_with("egress denied: "));
        assert_eq!(e.http_status, None);
        assert_eq!(from_http_error(HttpError::Timeout("t".into())).class, ErrorClass::Timeout);
        assert_eq!(from_http_error(HttpError::Network("n".into())).class, ErrorClass::Network);
        assert_eq!(from_http_error(HttpError::InvalidRequest("i".into())).class, ErrorClass::ClientError);
        assert_eq!(from_http_error(HttpError::TooLarge("l".into())).class, ErrorClass::TooLarge);
    }

    #[test]
    fn classes_convert_both_ways() {
        for class in Class::ALL {
            let wit = ErrorClass::from(class);
            assert_eq!(Class::from(wit), class);
            assert_eq!(wit.as_str(), class.as_str());
            assert_eq!(wit.is_retryable(), class.is_retryable());
        }
    }

    #[test]
    fn refinements_see_the_wit_types() {
        let retry = [("retry-after".to_owned(), "3".to_owned())];
        let e = from_http_refined(429, &retry, b"{}", |_| Some(ErrorClass::QuotaExhausted));
        assert_eq!((e.class, e.retry_after_ms, e.http_status), (ErrorClass::QuotaExhausted, None, Some(429)));
        let e = from_http_with(418, &[], b"x", |err, json| {
            assert!(json.is_none());
            err.with_class(ErrorClass::Auth)
        });
        assert_eq!((e.class, e.message.as_str()), (ErrorClass::Auth, "HTTP 418: x"));
        let e = answer(Api::OpenAiChat, 200, &[], br#"{"choices":[]}"#).unwrap_err();
        assert_eq!(e.class, ErrorClass::NoContent);
    }
}
