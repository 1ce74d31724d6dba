//! OpenAI error responses: `{"error":{"message","type","param","code"}}`
//! with the status, and for 429s the `retry-after` headers, that go with it.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::duration::{ceil_millis, go_duration};
use crate::exchange::Reply;
use crate::limits::{LimitKind, Rejection, Wait};

const INVALID_REQUEST: &str = "invalid_request_error";
const SERVER_ERROR: &str = "server_error";

/// An OpenAI API error, ready to be turned into a [`Reply`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `error.message`.
    pub message: String,
    /// `error.type`.
    pub kind: &'static str,
    /// `error.param`.
    pub param: Option<&'static str>,
    /// `error.code`.
    pub code: Option<&'static str>,
    /// What the answer says about when to retry: an exact wait is sent as
    /// `retry-after` (whole seconds) and `retry-after-ms`, a fixed one as
    /// `retry-after` only.
    pub retry_after: Wait,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: Option<&'static str>, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), kind, param: None, code, retry_after: Wait::Unknown }
    }

    /// 400 `invalid_request_error` about `param`.
    pub(crate) fn invalid_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self { param, ..Self::new(StatusCode::BAD_REQUEST, INVALID_REQUEST, None, message) }
    }

    /// 401 for a missing or wrong API key.
    pub(crate) fn invalid_api_key() -> Self {
        let message = "Incorrect API key provided";
        Self::new(StatusCode::UNAUTHORIZED, INVALID_REQUEST, Some("invalid_api_key"), message)
    }

    /// 404 for a path (or method) the mock does not serve.
    pub(crate) fn unknown_url(method: &Method, path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, INVALID_REQUEST, None, format!("Invalid URL ({method} {path})"))
    }

    /// 413 for a body that could not be read.
    pub(crate) fn unreadable_body(reason: &str) -> Self {
        let message = format!("Request body too large or unreadable: {reason}");
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, INVALID_REQUEST, Some("request_too_large"), message)
    }

    /// 429 for a request over the configured rate window. A provider that
    /// announces its budgets states the limit, the usage and the wait in the
    /// message; one that does not says only which budget ran out.
    pub(crate) fn rate_limited(rejection: &Rejection) -> Self {
        let (kind, unit) = match rejection.kind {
            LimitKind::Requests => ("requests", "RPM"),
            LimitKind::Tokens => ("tokens", "TPM"),
        };
        let Rejection { limit, used, requested, retry_after, detailed, .. } = *rejection;
        let mut message = if detailed {
            format!("Rate limit reached for {kind} ({unit}): Limit {limit}, Used {used}, Requested {requested}.")
        } else {
            format!("Rate limit reached for {kind}.")
        };
        match retry_after {
            Wait::Exact(wait) => message.push_str(&format!(" Please try again in {}.", go_duration(ceil_millis(wait)))),
            Wait::Seconds(secs) => message.push_str(&format!(" Please try again in {secs}s.")),
            Wait::Unknown => {}
        }
        let error = Self::new(StatusCode::TOO_MANY_REQUESTS, kind, Some("rate_limit_exceeded"), message);
        Self { retry_after, ..error }
    }

    /// 429 `insufficient_quota` (billing, not rate: retrying does not help).
    pub(crate) fn insufficient_quota() -> Self {
        let message = "You exceeded your current quota, please check your plan and billing details.";
        let code = Some("insufficient_quota");
        Self::new(StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", code, message)
    }

    /// 504 sent once a hung request finally gives up after `after`.
    pub(crate) fn hung(after: Duration) -> Self {
        let message = format!("The mock hung this request for {}.", go_duration(after));
        Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout", None, message)
    }

    /// A realistic error for an injected status code (400..=599).
    pub(crate) fn for_status(code: u16) -> Self {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match code {
            400 => Self::invalid_request("Invalid request (injected by the mock).", None),
            401 => Self::invalid_api_key(),
            404 => Self::new(status, INVALID_REQUEST, Some("model_not_found"), MODEL_NOT_FOUND),
            413 => Self::new(status, INVALID_REQUEST, Some("request_too_large"), "Request too large."),
            429 => Self::injected_rate_limit(),
            500 => Self::new(status, SERVER_ERROR, None, SERVER_HAD_AN_ERROR),
            503 => Self::new(status, SERVER_ERROR, None, "The server is overloaded or not ready yet."),
            529 => Self::new(status, "overloaded_error", None, "Overloaded"),
            _ if status.is_client_error() => Self::new(status, INVALID_REQUEST, None, reason(status)),
            _ => Self::new(status, SERVER_ERROR, None, reason(status)),
        }
    }

    /// 429 `rate_limit_exceeded` asking for a retry after one second.
    fn injected_rate_limit() -> Self {
        let message = "Rate limit reached for requests (RPM): injected by the mock. Please try again in 1s.";
        let error = Self::new(StatusCode::TOO_MANY_REQUESTS, "requests", Some("rate_limit_exceeded"), message);
        Self { retry_after: Wait::Exact(Duration::from_secs(1)), ..error }
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }

    /// The reply: status, body and (for 429s) retry headers.
    pub(crate) fn into_reply(self) -> Reply {
        let reply = Reply::json(self.status, self.body());
        match self.retry_after {
            Wait::Exact(wait) => retry_headers(reply, wait),
            Wait::Seconds(secs) => reply.header("retry-after", secs),
            Wait::Unknown => reply,
        }
    }
}

const MODEL_NOT_FOUND: &str = "The model does not exist or you do not have access to it.";
const SERVER_HAD_AN_ERROR: &str = "The server had an error while processing your request. Sorry about that!";

fn reason(status: StatusCode) -> String {
    format!("{}.", status.canonical_reason().unwrap_or("Error"))
}

/// `retry-after` (whole seconds, rounded up, at least 1) and `retry-after-ms`.
fn retry_headers(reply: Reply, wait: Duration) -> Reply {
    let millis = ceil_millis(wait).as_millis();
    let secs = millis.div_ceil(1000).max(1);
    reply.header("retry-after", secs).header("retry-after-ms", millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Snapshot;

    #[test]
    fn rate_limit_message_and_headers() {
        let rejection = Rejection {
            kind: LimitKind::Requests,
            limit: 3,
            used: 3,
            requested: 1,
            retry_after: Wait::Exact(Duration::from_micros(1_233_500)),
            detailed: true,
            snapshot: Snapshot::default(),
        };
        let error = ApiError::rate_limited(&rejection);
        assert_eq!(
            error.body(),
            json!({"error": {
                "message": "Rate limit reached for requests (RPM): Limit 3, Used 3, Requested 1. Please try again in 1.234s.",
                "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
        );
        let reply = error.into_reply();
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(reply.headers["retry-after"], "2");
        assert_eq!(reply.headers["retry-after-ms"], "1234");

        // A provider that announces nothing and always says one second.
        let bare = Rejection { retry_after: Wait::Seconds(1), detailed: false, ..rejection };
        let error = ApiError::rate_limited(&bare);
        assert_eq!(error.message, "Rate limit reached for requests. Please try again in 1s.");
        let reply = error.into_reply();
        assert_eq!(reply.headers["retry-after"], "1");
        assert!(reply.headers.get("retry-after-ms").is_none());
        // Tokens, and no hint at all.
        let silent = Rejection { kind: LimitKind::Tokens, retry_after: Wait::Unknown, detailed: false, ..rejection };
        let error = ApiError::rate_limited(&silent);
        assert_eq!((error.kind, error.message.as_str()), ("tokens", "Rate limit reached for tokens."));
        assert!(error.into_reply().headers.get("retry-after").is_none());
    }

    #[test]
    fn short_waits_still_say_retry_after_one_second() {
        let reply = retry_headers(Reply::json(StatusCode::TOO_MANY_REQUESTS, Value::Null), Duration::from_millis(20));
        assert_eq!(reply.headers["retry-after"], "1");
        assert_eq!(reply.headers["retry-after-ms"], "20");
    }

    #[test]
    fn injected_statuses() {
        let code = |status: u16| ApiError::for_status(status).body()["error"]["code"].clone();
        assert_eq!(code(401), json!("invalid_api_key"));
        assert_eq!(code(429), json!("rate_limit_exceeded"));
        assert_eq!(ApiError::for_status(429).retry_after, Wait::Exact(Duration::from_secs(1)));
        assert_eq!(ApiError::for_status(500).kind, SERVER_ERROR);
        assert_eq!(ApiError::for_status(529).status.as_u16(), 529);
        assert_eq!(ApiError::for_status(418).kind, INVALID_REQUEST);
        assert_eq!(ApiError::for_status(502).message, "Bad Gateway.");
    }
}
