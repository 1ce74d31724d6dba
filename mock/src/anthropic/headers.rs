//! Anthropic's `request-id` and `anthropic-ratelimit-*` response headers;
//! resets are absolute RFC 3339 timestamps.

use std::time::SystemTime;

use crate::clock::format_rfc3339;
use crate::exchange::Reply;
use crate::limits::{Quota, Snapshot};

/// Header names for one budget: limit, remaining, reset.
type Names = [&'static str; 3];

const REQUESTS: Names = [
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
];
const TOKENS: Names =
    ["anthropic-ratelimit-tokens-limit", "anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"];

/// Adds `request-id` and the headers of every configured budget.
pub(crate) fn decorate(reply: Reply, snapshot: &Snapshot, request_id: String, now: SystemTime) -> Reply {
    let reply = reply.header("request-id", request_id);
    let reply = with_quota(reply, REQUESTS, snapshot.requests, now);
    with_quota(reply, TOKENS, snapshot.tokens, now)
}

fn with_quota(reply: Reply, [limit, remaining, reset]: Names, quota: Option<Quota>, now: SystemTime) -> Reply {
    let Some(quota) = quota else { return reply };
    reply.header(limit, quota.limit).header(remaining, quota.remaining).header(reset, format_rfc3339(now + quota.reset))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use axum::http::StatusCode;
    use serde_json::Value;

    use super::*;

    #[test]
    fn budgets_and_request_id() {
        let quota = Quota { limit: 1000, remaining: 999, reset: Duration::from_secs(59) };
        let snapshot = Snapshot { requests: Some(quota), tokens: None };
        let now = UNIX_EPOCH + Duration::from_secs(1_755_780_000);
        let reply = decorate(Reply::json(StatusCode::OK, Value::Null), &snapshot, "req_mock_1".into(), now);
        assert_eq!(reply.headers["request-id"], "req_mock_1");
        assert_eq!(reply.headers["anthropic-ratelimit-requests-limit"], "1000");
        assert_eq!(reply.headers["anthropic-ratelimit-requests-remaining"], "999");
        assert_eq!(reply.headers["anthropic-ratelimit-requests-reset"], "2025-08-21T12:40:59.000Z");
        assert!(reply.headers.get("anthropic-ratelimit-tokens-limit").is_none());
    }
}
