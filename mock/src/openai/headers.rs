//! OpenAI's `x-ratelimit-*` response headers.

use crate::duration::{ceil_millis, go_duration};
use crate::exchange::Reply;
use crate::limits::{Quota, Snapshot};

/// Header names for one budget: limit, remaining, reset.
type Names = [&'static str; 3];

const REQUESTS: Names = ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"];
const TOKENS: Names = ["x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"];

/// Adds the headers of every configured budget in `snapshot` to `reply`.
pub(crate) fn with_rate_limits(reply: Reply, snapshot: &Snapshot) -> Reply {
    let reply = with_quota(reply, REQUESTS, snapshot.requests);
    with_quota(reply, TOKENS, snapshot.tokens)
}

fn with_quota(reply: Reply, [limit, remaining, reset]: Names, quota: Option<Quota>) -> Reply {
    let Some(quota) = quota else { return reply };
    reply
        .header(limit, quota.limit)
        .header(remaining, quota.remaining)
        .header(reset, go_duration(ceil_millis(quota.reset)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::StatusCode;
    use serde_json::Value;

    use super::*;

    #[test]
    fn only_configured_budgets_get_headers() {
        let quota = Quota { limit: 60, remaining: 59, reset: Duration::from_millis(360_000) };
        let snapshot = Snapshot { requests: Some(quota), tokens: None };
        let reply = with_rate_limits(Reply::json(StatusCode::OK, Value::Null), &snapshot);
        assert_eq!(reply.headers["x-ratelimit-limit-requests"], "60");
        assert_eq!(reply.headers["x-ratelimit-remaining-requests"], "59");
        assert_eq!(reply.headers["x-ratelimit-reset-requests"], "6m0s");
        assert!(reply.headers.get("x-ratelimit-limit-tokens").is_none());
    }
}
