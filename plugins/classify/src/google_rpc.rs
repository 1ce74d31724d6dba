//! Google API error details (`google.rpc.Status`), as Gemini sends them:
//!
//! ```json
//! {"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED",
//!   "details": [
//!     {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
//!      "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", ...}]},
//!     {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "27s"}]}}
//! ```

use crate::http::parse_duration_ms;
use serde_json::Value;

/// `error.status`, e.g. `RESOURCE_EXHAUSTED`, `UNAVAILABLE`, `INVALID_ARGUMENT`.
pub fn status(json: &Value) -> Option<&str> {
    json.pointer("/error/status")?.as_str()
}

/// The `error.details` entries whose `@type` ends with `type_suffix`
/// (e.g. `"RetryInfo"`, `"QuotaFailure"`, `"ErrorInfo"`).
pub fn details<'a>(json: &'a Value, type_suffix: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    json.pointer("/error/details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |d| d.get("@type").and_then(Value::as_str).is_some_and(|t| t.ends_with(type_suffix)))
}

/// The wait a `RetryInfo.retryDelay` asks for (a protobuf Duration such as
/// `"27s"` or `"27.428353394s"`), in milliseconds rounded up. Entries
/// without an `@type` are accepted too, as some proxies drop it.
pub fn retry_delay_ms(json: &Value) -> Option<u64> {
    json.pointer("/error/details")?
        .as_array()?
        .iter()
        .filter_map(|d| d.get("retryDelay")?.as_str())
        .find_map(parse_duration_ms)
}

/// The `quotaId` of every `QuotaFailure` violation (falling back to the
/// `quotaMetric` when a violation has no id).
pub fn quota_ids(json: &Value) -> Vec<&str> {
    details(json, "QuotaFailure")
        .filter_map(|d| d.get("violations")?.as_array())
        .flatten()
        .filter_map(|v| v.get("quotaId").or_else(|| v.get("quotaMetric"))?.as_str())
        .collect()
}

/// Whether the quota that ran out is only a per-day one: there is at least
/// one `QuotaFailure` violation and every violation's id names `PerDay`.
/// Waiting minutes does not help then (the quota resets at midnight), so a
/// strategy classifies it as `quota-exhausted`, not `rate-limited`.
pub fn only_per_day_quotas(json: &Value) -> bool {
    let ids = quota_ids(json);
    !ids.is_empty() && ids.iter().all(|id| id.contains("PerDay"))
}

/// The `reason` of every `ErrorInfo` detail, e.g. `API_KEY_INVALID`.
pub fn error_reasons(json: &Value) -> Vec<&str> {
    details(json, "ErrorInfo").filter_map(|d| d.get("reason")?.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exhausted(quota_ids: &[&str], delay: &str) -> Value {
        let violations: Vec<Value> = quota_ids.iter().map(|id| json!({"quotaId": id, "quotaMetric": "m"})).collect();
        json!({"error": {"code": 429, "message": "You exceeded your current quota", "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations},
                {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}})
    }

    #[test]
    fn retry_info_and_status() {
        let body = exhausted(&["GenerateRequestsPerMinutePerProjectPerModel-FreeTier"], "27.428353394s");
        assert_eq!(status(&body), Some("RESOURCE_EXHAUSTED"));
        assert_eq!(retry_delay_ms(&body), Some(27_429));
        assert_eq!(retry_delay_ms(&json!({"error": {"details": []}})), None);
        assert_eq!(retry_delay_ms(&json!({"error": {"details": [{"retryDelay": "1s"}]}})), Some(1000));
        assert_eq!(status(&json!({"error": "x"})), None);
    }

    #[test]
    fn per_day_only_when_every_violation_is_per_day() {
        let minute_and_day = exhausted(
            &[
                "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            ],
            "47s",
        );
        assert!(!only_per_day_quotas(&minute_and_day));
        assert_eq!(quota_ids(&minute_and_day).len(), 2);
        let day = exhausted(&["GenerateRequestsPerDayPerProjectPerModel-FreeTier"], "47s");
        assert!(only_per_day_quotas(&day));
        assert!(!only_per_day_quotas(&exhausted(&[], "1s")));
        assert!(!only_per_day_quotas(&json!({"error": {"status": "RESOURCE_EXHAUSTED"}})));
    }

    #[test]
    fn error_info_reasons() {
        let body = json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}});
        assert_eq!(error_reasons(&body), ["API_KEY_INVALID"]);
        assert!(error_reasons(&json!({})).is_empty());
    }
}
