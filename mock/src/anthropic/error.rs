//! Anthropic error responses: `{"type":"error","error":{"type","message"},
//! "request_id"}` with the status, and for 429s the `retry-after` header.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::exchange::Reply;
use crate::limits::{LimitKind, Rejection, Wait};

/// What the mock says for the low-credit (billing) error, as Anthropic does.
pub(crate) const CREDIT_TOO_LOW: &str = "Your credit balance is too low to access the Anthropic API. \
    Please go to Plans & Billing to upgrade or purchase credits.";

/// An Anthropic API error, ready to be turned into a [`Reply`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `error.type`, e.g. `rate_limit_error`.
    pub kind: &'static str,
    /// `error.message`.
    pub message: String,
    /// When there is a wait, sent as `retry-after` in whole seconds (at
    /// least 1).
    pub retry_after: Wait,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into(), retry_after: Wait::Unknown }
    }

    /// 400 `invalid_request_error`.
    pub(super) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 401 for a missing or wrong `x-api-key`.
    pub(super) fn authentication() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", "invalid x-api-key")
    }

    /// 413 for a body that could not be read.
    pub(super) fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        )
    }

    /// 429 for a request over the configured rate window.
    pub(super) fn rate_limited(rejection: &Rejection) -> Self {
        let what = match rejection.kind {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "input tokens",
        };
        let message = if rejection.detailed {
            format!(
                "This request would exceed the rate limit for your organization of {} {what} per minute. \
                 For details, refer to: https://docs.claude.com/en/api/rate-limits.",
                rejection.limit
            )
        } else {
            format!("This request would exceed your organization's rate limit for {what}.")
        };
        Self {
            retry_after: rejection.retry_after,
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
        }
    }

    /// 400 "credit balance is too low" (billing, not a rate limit).
    pub(super) fn credit_too_low() -> Self {
        Self::invalid_request(CREDIT_TOO_LOW)
    }

    /// A realistic error for an injected status code (400..=599).
    pub(super) fn for_status(code: u16) -> Self {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match code {
            400 => Self::invalid_request("Invalid request (injected by the mock)."),
            401 => Self::authentication(),
            402 => Self::new(status, "billing_error", CREDIT_TOO_LOW),
            403 => Self::new(
                status,
                "permission_error",
                "Your API key does not have permission to use the specified resource.",
            ),
            404 => Self::new(status, "not_found_error", "The requested resource could not be found."),
            413 => Self::too_large(),
            429 => {
                let message = "Number of requests has exceeded your per-minute rate limit (injected by the mock).";
                let error = Self::new(status, "rate_limit_error", message);
                Self { retry_after: Wait::Exact(Duration::from_secs(1)), ..error }
            }
            529 => Self::new(status, "overloaded_error", "Overloaded"),
            504 => Self::new(status, "timeout_error", "Request timed out."),
            _ if status.is_client_error() => Self::invalid_request(reason(status)),
            _ => Self::new(status, "api_error", "Internal server error"),
        }
    }

    /// The JSON body (with the request id, as Anthropic sends it).
    pub(super) fn body(&self, request_id: &str) -> Value {
        json!({"type": "error", "error": {"type": self.kind, "message": self.message}, "request_id": request_id})
    }

    /// The reply: status, body and (for 429s) `retry-after`.
    pub(super) fn into_reply(self, request_id: &str) -> Reply {
        let reply = Reply::json(self.status, self.body(request_id));
        match self.retry_after.duration() {
            Some(wait) => reply.header("retry-after", wait.as_millis().div_ceil(1000).max(1)),
            None => reply,
        }
    }
}

fn reason(status: StatusCode) -> String {
    format!("{}.", status.canonical_reason().unwrap_or("Error"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Snapshot;

    #[test]
    fn injected_statuses_use_anthropic_types() {
        let kind = |code: u16| ApiError::for_status(code).kind;
        assert_eq!(kind(429), "rate_limit_error");
        assert_eq!(kind(529), "overloaded_error");
        assert_eq!(kind(413), "request_too_large");
        assert_eq!(kind(401), "authentication_error");
        assert_eq!(kind(500), "api_error");
        assert_eq!(kind(418), "invalid_request_error");
        let reply = ApiError::for_status(429).into_reply("req_1");
        assert_eq!(reply.headers["retry-after"], "1");
        assert_eq!(ApiError::credit_too_low().body("r")["error"]["message"], CREDIT_TOO_LOW);
    }

    #[test]
    fn rate_window_rejection_rounds_retry_after_up() {
        let rejection = Rejection {
            kind: LimitKind::Requests,
            limit: 5,
            used: 5,
            requested: 1,
            retry_after: Wait::Exact(Duration::from_millis(1200)),
            detailed: true,
            snapshot: Snapshot::default(),
        };
        let error = ApiError::rate_limited(&rejection);
        assert!(error.message.contains("5 requests per minute"), "{}", error.message);
        let reply = error.into_reply("req_9");
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(reply.headers["retry-after"], "2");

        let bare = Rejection { retry_after: Wait::Unknown, detailed: false, ..rejection };
        let error = ApiError::rate_limited(&bare);
        assert!(!error.message.contains('5'), "{}", error.message);
        assert!(error.into_reply("r").headers.get("retry-after").is_none());
        let fixed = Rejection { retry_after: Wait::Seconds(3), detailed: false, ..rejection };
        assert_eq!(ApiError::rate_limited(&fixed).into_reply("r").headers["retry-after"], "3");
    }
}
