//! Gemini error responses, `google.rpc.Status` in JSON:
//! `{"error":{"code","message","status","details":[...]}}`.
//!
//! Rate limits and quotas are `429 RESOURCE_EXHAUSTED` with a
//! `QuotaFailure` (which quota: per minute or per day) and a `RetryInfo`
//! (`retryDelay`, how long to wait); Gemini sends no `retry-after` header.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::clock::format_duration;
use crate::exchange::Reply;
use crate::limits::{LimitKind, Rejection, Wait};

const QUOTA_FAILURE: &str = "type.googleapis.com/google.rpc.QuotaFailure";
const RETRY_INFO: &str = "type.googleapis.com/google.rpc.RetryInfo";
const ERROR_INFO: &str = "type.googleapis.com/google.rpc.ErrorInfo";
const QUOTA_METRIC: &str = "generativelanguage.googleapis.com/generate_content_requests";
const QUOTA_MESSAGE: &str = "You exceeded your current quota, please check your plan and billing details. \
    For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.";

/// Per-minute quota ids (what a rate-window rejection or `status=429` names).
pub(crate) const PER_MINUTE_REQUESTS: &str = "GenerateRequestsPerMinutePerProjectPerModel";
const PER_MINUTE_TOKENS: &str = "GenerateContentInputTokensPerModelPerMinute";
/// The per-day quota id (what `quota-per-day` names).
pub(crate) const PER_DAY_REQUESTS: &str = "GenerateRequestsPerDayPerProjectPerModel";

/// A Gemini API error, ready to be turned into a [`Reply`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GoogleError {
    /// HTTP status (also `error.code`).
    pub code: StatusCode,
    /// `error.status`, e.g. `RESOURCE_EXHAUSTED`.
    pub status: &'static str,
    /// `error.message`.
    pub message: String,
    /// `error.details`.
    pub details: Vec<Value>,
}

impl GoogleError {
    fn new(code: StatusCode, status: &'static str, message: impl Into<String>) -> Self {
        Self { code, status, message: message.into(), details: Vec::new() }
    }

    /// 400 `INVALID_ARGUMENT`.
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    /// 400 for a wrong API key, as Gemini answers it (not a 401).
    pub(crate) fn api_key_invalid() -> Self {
        let details = vec![json!({"@type": ERROR_INFO, "reason": "API_KEY_INVALID", "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"}})];
        Self { details, ..Self::invalid_argument("API key not valid. Please pass a valid API key.") }
    }

    /// 403 for a request without any API key.
    pub(crate) fn unregistered_caller() -> Self {
        let message = "Method doesn't allow unregistered callers (callers without established identity). \
            Please use API Key or other form of API consumer identity to call this API.";
        Self::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", message)
    }

    /// 404 `NOT_FOUND`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 403 for a cached content that does not exist (or has expired), as
    /// Gemini answers it.
    pub(crate) fn cache_not_found() -> Self {
        Self::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", "CachedContent not found (or permission denied)")
    }

    /// 413 for a body that could not be read.
    pub(crate) fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "INVALID_ARGUMENT",
            "Request payload size exceeds the limit: 20971520 bytes.",
        )
    }

    /// 429 per-minute `RESOURCE_EXHAUSTED` with a `retryDelay` of `wait`
    /// (no `RetryInfo` without one).
    pub(crate) fn per_minute(quota_id: &str, wait: Option<Duration>) -> Self {
        let mut details =
            vec![json!({"@type": QUOTA_FAILURE, "violations": [{"quotaMetric": QUOTA_METRIC, "quotaId": quota_id}]})];
        if let Some(wait) = wait {
            details.push(json!({"@type": RETRY_INFO, "retryDelay": format_duration(wait)}));
        }
        Self { details, ..Self::new(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE) }
    }

    /// 429 for a request over the configured rate window. Gemini never
    /// states the limit, so only the wait depends on what the provider
    /// tells.
    pub(crate) fn rate_limited(rejection: &Rejection) -> Self {
        let quota_id = match rejection.kind {
            LimitKind::Requests => PER_MINUTE_REQUESTS,
            LimitKind::Tokens => PER_MINUTE_TOKENS,
        };
        let wait = match rejection.retry_after {
            Wait::Exact(wait) => Some(crate::duration::ceil_millis(wait)),
            told => told.duration(),
        };
        Self::per_minute(quota_id, wait)
    }

    /// 429 `RESOURCE_EXHAUSTED` where only the per-day quota is exhausted:
    /// waiting minutes does not help (the `retryDelay` Gemini sends anyway
    /// is included).
    pub(crate) fn per_day() -> Self {
        let details = vec![
            json!({"@type": QUOTA_FAILURE, "violations": [{"quotaMetric": QUOTA_METRIC, "quotaId": PER_DAY_REQUESTS}]}),
            json!({"@type": RETRY_INFO, "retryDelay": "30s"}),
        ];
        Self { details, ..Self::new(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE) }
    }

    /// A realistic error for an injected status code (400..=599).
    pub(crate) fn for_status(code: u16) -> Self {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match code {
            400 => Self::invalid_argument("Request contains an invalid argument."),
            401 => Self::new(status, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
            403 => Self::new(status, "PERMISSION_DENIED", "The caller does not have permission"),
            404 => Self::not_found("Requested entity was not found."),
            413 => Self::too_large(),
            429 => Self::per_minute(PER_MINUTE_REQUESTS, Some(Duration::from_secs(1))),
            500 => Self::new(status, "INTERNAL", "An internal error has occurred. Please retry or report it."),
            503 => Self::new(status, "UNAVAILABLE", "The model is overloaded. Please try again later."),
            504 => Self::new(status, "DEADLINE_EXCEEDED", "The request timed out. Please try again."),
            _ if status.is_client_error() => Self::new(status, "FAILED_PRECONDITION", reason(status)),
            _ => Self::new(status, "UNAVAILABLE", reason(status)),
        }
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> Value {
        let mut error = json!({"code": self.code.as_u16(), "message": self.message, "status": self.status});
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details.clone());
        }
        json!({"error": error})
    }

    /// The reply (Gemini sends no `retry-after`; the wait is in the body).
    pub(crate) fn into_reply(self) -> Reply {
        Reply::json(self.code, self.body())
    }
}

fn reason(status: StatusCode) -> String {
    format!("{}.", status.canonical_reason().unwrap_or("Error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_minute_and_per_day_bodies() {
        let body = GoogleError::for_status(429).body();
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(body["error"]["details"][0]["violations"][0]["quotaId"], PER_MINUTE_REQUESTS);
        assert_eq!(body["error"]["details"][1]["retryDelay"], "1s");
        let body = GoogleError::per_day().body();
        assert_eq!(body["error"]["code"], 429);
        assert_eq!(body["error"]["details"][0]["violations"][0]["quotaId"], PER_DAY_REQUESTS);
        let reply = GoogleError::per_day().into_reply();
        assert!(reply.headers.get("retry-after").is_none());
    }

    #[test]
    fn statuses() {
        assert_eq!(GoogleError::for_status(503).status, "UNAVAILABLE");
        assert_eq!(GoogleError::for_status(500).status, "INTERNAL");
        assert_eq!(GoogleError::for_status(413).code, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(GoogleError::api_key_invalid().body()["error"]["details"][0]["reason"], "API_KEY_INVALID");
        assert!(GoogleError::invalid_argument("x").body()["error"].get("details").is_none());
        let rejection = Rejection {
            kind: LimitKind::Tokens,
            limit: 10,
            used: 10,
            requested: 5,
            retry_after: Wait::Exact(Duration::from_micros(233_500)),
            detailed: true,
            snapshot: crate::limits::Snapshot::default(),
        };
        let body = GoogleError::rate_limited(&rejection).body();
        assert_eq!(body["error"]["details"][1]["retryDelay"], "0.234s");
        assert_eq!(body["error"]["details"][0]["violations"][0]["quotaId"], PER_MINUTE_TOKENS);
        let fixed = Rejection { retry_after: Wait::Seconds(1), detailed: false, ..rejection };
        assert_eq!(GoogleError::rate_limited(&fixed).body()["error"]["details"][1]["retryDelay"], "1s");
        let silent = Rejection { retry_after: Wait::Unknown, ..rejection };
        let details = GoogleError::rate_limited(&silent).body()["error"]["details"].clone();
        assert_eq!(details.as_array().map(Vec::len), Some(1), "no RetryInfo: {details}");
    }
}
