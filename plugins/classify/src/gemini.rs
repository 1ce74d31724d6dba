//! Gemini `generateContent` answers: outputs, usage, the answers with no
//! content, and Google's error statuses and details.

use crate::answer::quoted;
use crate::{Answer, Class, Failure, expect_object, google_rpc, http, invalid_answer, no_content, parse_json, usage};
use serde_json::{Map, Value};

/// Translates a whole HTTP answer.
pub fn interpret(status: u16, headers: &[(String, String)], body: &[u8]) -> Result<Answer, Failure> {
    if (200..300).contains(&status) { parse_success(status, body) } else { Err(classify_error(status, headers, body)) }
}

/// A non-2xx answer: [`http::from_http`] (which reads `RetryInfo`)
/// refined by Gemini's `error.status`, details and message:
/// - `RESOURCE_EXHAUSTED` whose `QuotaFailure` violations are all per-day →
///   `quota-exhausted` (waiting minutes does not help), otherwise
///   `rate-limited` with `RetryInfo.retryDelay` as the wait;
/// - `UNAVAILABLE` (503) and `INTERNAL` → `overloaded`;
/// - an invalid API key (`API_KEY_INVALID`, a 400 in Gemini),
///   `UNAUTHENTICATED`, `PERMISSION_DENIED` → `auth`, except a 403 for a
///   missing cached content, which is `other` (retried: a managed cache
///   that expired is created again);
/// - a 400 over the token or payload limit, or 413 → `too-large`.
///
/// Classes that are not retried drop any wait hint.
pub fn classify_error(status: u16, headers: &[(String, String)], body: &[u8]) -> Failure {
    http::from_http_refined(status, headers, body, |json| {
        let json = json?;
        let message = json.pointer("/error/message").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
        let key_invalid = google_rpc::error_reasons(json).contains(&"API_KEY_INVALID")
            || message.contains("api key not valid")
            || message.contains("api key expired");
        let too_large = message.contains("exceeds the maximum number of tokens")
            || message.contains("input token count")
            || message.contains("payload size exceeds");
        match google_rpc::status(json) {
            Some("RESOURCE_EXHAUSTED") if google_rpc::only_per_day_quotas(json) => Some(Class::QuotaExhausted),
            Some("RESOURCE_EXHAUSTED") => Some(Class::RateLimited),
            Some("UNAVAILABLE" | "INTERNAL") => Some(Class::Overloaded),
            Some("DEADLINE_EXCEEDED") => Some(Class::Timeout),
            _ if key_invalid => Some(Class::Auth),
            // A cache that expired: retried, and the plugin creates a new one.
            Some("PERMISSION_DENIED") if message.contains("cachedcontent") => Some(Class::Other),
            Some("UNAUTHENTICATED" | "PERMISSION_DENIED") => Some(Class::Auth),
            Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION") if too_large => Some(Class::TooLarge),
            _ => None,
        }
    })
}

/// A 2xx answer: the text of the first candidate (thought parts left out),
/// or its function calls as a JSON array, with usage, raw body and metadata
/// `{model, id, finish_reason}`. A blocked prompt, no candidate, or a
/// candidate without text (`finishReason` `MAX_TOKENS` after thinking,
/// `SAFETY`, `RECITATION`, ...) is `no-content`, with the billed usage.
pub fn parse_success(status: u16, body: &[u8]) -> Result<Answer, Failure> {
    let (text, json) = parse_json(status, body)?;
    let usage = usage::from_gemini(&json);
    let empty = |why: String| no_content(status, &text, usage, format!("no content: {why}"));
    let obj = expect_object(status, &json).map_err(|m| invalid_answer(status, &text, usage, m))?;
    let mut metadata = Map::new();
    for (from, to) in [("modelVersion", "model"), ("responseId", "id")] {
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            metadata.insert(to.to_owned(), v.clone());
        }
    }
    let Some(candidate) = obj.get("candidates").and_then(Value::as_array).and_then(|c| c.first()) else {
        let reason = json.pointer("/promptFeedback/blockReason").and_then(Value::as_str);
        return Err(empty(match reason {
            Some(reason) => format!("the prompt was blocked (blockReason {reason:?})"),
            None => "the response has no candidates".to_owned(),
        }));
    };
    let finish_reason = candidate.get("finishReason").and_then(Value::as_str);
    if let Some(reason) = finish_reason {
        metadata.insert("finish_reason".to_owned(), reason.into());
    }
    let parts = candidate.pointer("/content/parts").and_then(Value::as_array);
    let texts: String = parts
        .into_iter()
        .flatten()
        .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
        .filter_map(|p| p.get("text")?.as_str())
        .collect();
    let calls: Vec<&Value> = parts.into_iter().flatten().filter(|p| p.get("functionCall").is_some()).collect();
    let output = if !calls.is_empty() {
        Value::Array(calls.into_iter().cloned().collect()).to_string()
    } else if texts.is_empty() {
        let why = match finish_reason {
            Some("MAX_TOKENS") => " (the output budget was spent before any text; raise maxOutputTokens)",
            Some("SAFETY" | "PROHIBITED_CONTENT" | "BLOCKLIST" | "SPII") => " (withheld by the safety filters)",
            _ => "",
        };
        return Err(empty(format!("finishReason {}{why}", quoted(finish_reason))));
    } else {
        texts
    };
    Ok(Answer { output, usage, response_body: Some(text), metadata: Some(Value::Object(metadata).to_string()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OK: &str = r#"{"candidates":[{"content":{"parts":[{"text":"thinking","thought":true},{"text":"Hello"},
        {"text":" there"}],"role":"model"},"finishReason":"STOP","index":0}],
        "usageMetadata":{"promptTokenCount":1200,"candidatesTokenCount":3,"totalTokenCount":1210,
        "cachedContentTokenCount":1100,"thoughtsTokenCount":7},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#;

    fn google_error(code: u16, status: &str, message: &str, details: Value) -> Failure {
        let body = json!({"error": {"code": code, "message": message, "status": status, "details": details}});
        interpret(code, &[], body.to_string().as_bytes()).unwrap_err()
    }

    fn exhausted(quota_ids: &[&str]) -> Value {
        let violations: Vec<Value> = quota_ids.iter().map(|id| json!({"quotaId": id})).collect();
        json!([{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations},
               {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "27.5s"}])
    }

    #[test]
    fn success_with_cached_usage() {
        let s = interpret(200, &[], OK.as_bytes()).unwrap();
        assert_eq!(s.output, "Hello there");
        let u = s.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (1200, 10));
        assert_eq!((u.cached_input_tokens, u.reasoning_tokens), (Some(1100), Some(7)));
        let meta: Value = serde_json::from_str(s.metadata.as_deref().unwrap()).unwrap();
        assert_eq!(meta, json!({"model": "gemini-2.5-flash", "id": "r1", "finish_reason": "STOP"}));
    }

    #[test]
    fn unusable_answers() {
        for bad in ["", "nope", "[]"] {
            let e = interpret(200, &[], bad.as_bytes()).unwrap_err();
            assert_eq!(e.class, Class::InvalidResponse, "{bad}");
        }
        let none = |body: &str| interpret(200, &[], body.as_bytes()).unwrap_err();
        for (body, message) in [
            (r#"{"candidates":[]}"#, "no content: the response has no candidates"),
            (r#"{"candidates":[{"finishReason":"STOP"}]}"#, "no content: finishReason \"STOP\""),
            (
                r#"{"candidates":[{"content":{"parts":[]},"finishReason":"SAFETY"}]}"#,
                "no content: finishReason \"SAFETY\" (withheld by the safety filters)",
            ),
            (
                r#"{"candidates":[{"content":{"parts":[{"text":"hm","thought":true}]},"finishReason":"MAX_TOKENS"}]}"#,
                "no content: finishReason \"MAX_TOKENS\" (the output budget was spent before any text; raise maxOutputTokens)",
            ),
        ] {
            let e = none(body);
            assert_eq!((e.class, e.message.as_str()), (Class::NoContent, message), "{body}");
        }
        let blocked = r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":5}}"#;
        let e = none(blocked);
        assert_eq!(
            (e.class, e.message.as_str()),
            (Class::NoContent, "no content: the prompt was blocked (blockReason \"SAFETY\")")
        );
        assert_eq!(e.usage.map(|u| u.input_tokens), Some(5));
        let call = r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}}}]}}]}"#;
        assert!(interpret(200, &[], call.as_bytes()).unwrap().output.contains("functionCall"));
    }

    #[test]
    fn resource_exhausted_per_minute_vs_per_day() {
        let e = google_error(429, "RESOURCE_EXHAUSTED", "quota", exhausted(&["GenerateRequestsPerMinutePerProject"]));
        assert_eq!((e.class, e.retry_after_ms), (Class::RateLimited, Some(27_500)));
        let ids = ["GenerateRequestsPerMinutePerProject", "GenerateRequestsPerDayPerProject"];
        assert_eq!(google_error(429, "RESOURCE_EXHAUSTED", "q", exhausted(&ids)).class, Class::RateLimited);
        let e = google_error(429, "RESOURCE_EXHAUSTED", "q", exhausted(&["GenerateRequestsPerDayPerProject-FreeTier"]));
        assert_eq!((e.class, e.retry_after_ms), (Class::QuotaExhausted, None));
        assert_eq!(e.http_status, Some(429));
        assert!(e.response_body.is_some());
    }

    #[test]
    fn other_error_classes() {
        let e = google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", json!([]));
        assert_eq!(e.class, Class::Overloaded);
        let invalid_key = json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]);
        let e = google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", invalid_key);
        assert_eq!(e.class, Class::Auth);
        let e = google_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers", json!([]));
        assert_eq!(e.class, Class::Auth);
        let e = google_error(403, "PERMISSION_DENIED", "CachedContent not found (or permission denied)", json!([]));
        assert_eq!(e.class, Class::Other);
        let msg = "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).";
        assert_eq!(google_error(400, "INVALID_ARGUMENT", msg, json!([])).class, Class::TooLarge);
        assert_eq!(google_error(413, "INVALID_ARGUMENT", "Request too big", json!([])).class, Class::TooLarge);
        assert_eq!(google_error(400, "INVALID_ARGUMENT", "bad field", json!([])).class, Class::ClientError);
        assert_eq!(google_error(500, "INTERNAL", "oops", json!([])).class, Class::Overloaded);
        assert_eq!(google_error(504, "DEADLINE_EXCEEDED", "slow", json!([])).class, Class::Timeout);
        let e = interpret(503, &[("retry-after".to_owned(), "2".to_owned())], b"busy").unwrap_err();
        assert_eq!((e.class, e.retry_after_ms), (Class::Overloaded, Some(2000)));
    }
}
