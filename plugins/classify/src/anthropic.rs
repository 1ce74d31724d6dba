//! Anthropic Messages answers: outputs, usage, rate-limit headers, the
//! answers with no content, and Anthropic's error types.

use crate::answer::quoted;
use crate::http::{self, MAX_MESSAGE_BYTES};
use crate::text::excerpt;
use crate::{Answer, Class, Failure, expect_object, invalid_answer, no_content, parse_json, usage};
use serde_json::{Map, Value};

/// Rate-limit headers are named `anthropic-ratelimit-<budget>-<field>`.
const RATE_LIMIT_PREFIX: &str = "anthropic-ratelimit-";

/// Translates a whole HTTP answer.
pub fn interpret(status: u16, headers: &[(String, String)], body: &[u8]) -> Result<Answer, Failure> {
    if (200..300).contains(&status) {
        parse_success(status, headers, body)
    } else {
        Err(classify_error(status, headers, body))
    }
}

/// A non-2xx answer: [`http::from_http`] refined by Anthropic's
/// `error.type` and message:
/// - `rate_limit_error` → `rate-limited`; `overloaded_error` (529) and
///   `api_error` → `overloaded`;
/// - `authentication_error`, `permission_error` → `auth`;
/// - `request_too_large` (413), or a 400 "prompt is too long" → `too-large`;
/// - `billing_error`, HTTP 402, or a message saying the credit balance is
///   too low → `quota-exhausted`;
/// - `invalid_request_error`, `not_found_error` → `client-error`.
///
/// Classes that are not retried drop any `retry-after` hint.
pub fn classify_error(status: u16, headers: &[(String, String)], body: &[u8]) -> Failure {
    http::from_http_refined(status, headers, body, |json| {
        let field = |name: &str| json.and_then(|j| j.pointer(&format!("/error/{name}"))?.as_str()).unwrap_or("");
        let (kind, message) = (field("type"), field("message").to_ascii_lowercase());
        if kind == "billing_error" || status == 402 || message.contains("credit balance is too low") {
            Some(Class::QuotaExhausted)
        } else if kind == "request_too_large" || (status == 400 && message.contains("prompt is too long")) {
            Some(Class::TooLarge)
        } else {
            match kind {
                "rate_limit_error" => Some(Class::RateLimited),
                "overloaded_error" | "api_error" => Some(Class::Overloaded),
                "authentication_error" | "permission_error" => Some(Class::Auth),
                "invalid_request_error" | "not_found_error" => Some(Class::ClientError),
                _ => None,
            }
        }
    })
}

/// A 2xx answer: the text output, usage, raw body, and metadata `{model, id,
/// stop_reason, rate_limits}` (the `anthropic-ratelimit-*` headers, prefix
/// dropped). An answer of the wrong shape is `invalid-response`; a refusal
/// or an answer without text (`stop_reason: "max_tokens"` after thinking)
/// is `no-content`.
pub fn parse_success(status: u16, headers: &[(String, String)], body: &[u8]) -> Result<Answer, Failure> {
    let (text, json) = parse_json(status, body)?;
    let invalid = |message: String| invalid_answer(status, &text, usage::from_anthropic(&json), message);
    let obj = expect_object(status, &json).map_err(invalid)?;
    if obj.get("type").and_then(Value::as_str) == Some("error") {
        let mut err = classify_error(status, headers, body);
        err.message = http::embedded_error_message(status, &json, &text);
        return Err(err);
    }
    let Some(content) = obj.get("content").and_then(Value::as_array) else {
        return Err(invalid("response has no content array".to_owned()));
    };
    let mut metadata = Map::new();
    for key in ["model", "id", "stop_reason"] {
        if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
            metadata.insert(key.to_owned(), v.clone());
        }
    }
    let limits = rate_limits(headers);
    if !limits.is_empty() {
        metadata.insert("rate_limits".to_owned(), Value::Object(limits));
    }
    let stop_reason = obj.get("stop_reason").and_then(Value::as_str);
    let output = output(content, stop_reason)
        .map_err(|why| no_content(status, &text, usage::from_anthropic(&json), format!("no content: {why}")))?;
    Ok(Answer {
        output,
        usage: usage::from_anthropic(&json),
        response_body: Some(text),
        metadata: Some(Value::Object(metadata).to_string()),
    })
}

/// The text blocks joined; the content as JSON when it has `tool_use`
/// blocks; why there is no content for a refusal or an answer without text.
fn output(content: &[Value], stop_reason: Option<&str>) -> Result<String, String> {
    let texts: Vec<&str> = content
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text")?.as_str())
        .collect();
    let has_tool_use = content.iter().any(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"));
    if has_tool_use {
        return Ok(Value::Array(content.to_vec()).to_string());
    }
    let text = texts.concat();
    if stop_reason == Some("refusal") {
        let said =
            if text.trim().is_empty() { String::new() } else { format!(": {}", excerpt(&text, MAX_MESSAGE_BYTES)) };
        return Err(format!("the model refused (stop_reason \"refusal\"){said}"));
    }
    if text.is_empty() {
        let why = match stop_reason {
            Some("max_tokens") => " (the output budget was spent before any text; raise max_tokens)",
            _ => "",
        };
        return Err(format!("stop_reason {}{why}", quoted(stop_reason)));
    }
    Ok(text)
}

/// The `anthropic-ratelimit-*` headers, by name without the prefix (e.g.
/// `requests-remaining`); numbers as numbers, resets as given (RFC 3339).
pub fn rate_limits(headers: &[(String, String)]) -> Map<String, Value> {
    let mut limits = Map::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        let Some(key) = lower.strip_prefix(RATE_LIMIT_PREFIX) else { continue };
        let value = value.trim();
        let parsed = value.parse::<u64>().map_or_else(|_| Value::String(value.to_owned()), Value::from);
        limits.insert(key.to_owned(), parsed);
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OK: &str = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
        "content":[{"type":"text","text":"Hello"},{"type":"text","text":" there"}],"stop_reason":"end_turn",
        "stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":5,
        "cache_read_input_tokens":100,"output_tokens":4}}"#;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn error(status: u16, kind: &str, message: &str, headers: &[(&str, &str)]) -> Failure {
        let body = json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"});
        interpret(status, &h(headers), body.to_string().as_bytes()).unwrap_err()
    }

    #[test]
    fn success_with_usage_and_rate_limits() {
        let headers = h(&[
            ("anthropic-ratelimit-requests-limit", "1000"),
            ("Anthropic-RateLimit-Requests-Remaining", "999"),
            ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"),
            ("request-id", "req_1"),
        ]);
        let s = interpret(200, &headers, OK.as_bytes()).unwrap();
        assert_eq!(s.output, "Hello there");
        let u = s.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (117, 4));
        assert_eq!((u.cached_input_tokens, u.cache_write_tokens), (Some(100), Some(5)));
        let meta: Value = serde_json::from_str(s.metadata.as_deref().unwrap()).unwrap();
        assert_eq!(meta["stop_reason"], "end_turn");
        assert_eq!(meta["id"], "msg_01");
        assert_eq!(
            meta["rate_limits"],
            json!({"requests-limit": 1000, "requests-remaining": 999, "requests-reset": "2025-08-21T12:40:59Z"})
        );
        assert_eq!(s.response_body.as_deref(), Some(OK));
    }

    #[test]
    fn tool_use_and_unusable_answers() {
        let tool = r#"{"content":[{"type":"tool_use","id":"t","name":"f","input":{}}],"stop_reason":"tool_use"}"#;
        let s = interpret(200, &[], tool.as_bytes()).unwrap();
        assert!(s.output.contains("\"tool_use\""));
        for bad in ["", "<html>", "[1]", r#"{"content":"x"}"#] {
            let e = interpret(200, &[], bad.as_bytes()).unwrap_err();
            assert_eq!(e.class, Class::InvalidResponse, "{bad}");
        }
        let refusal = r#"{"content":[],"stop_reason":"refusal","usage":{"input_tokens":3,"output_tokens":0}}"#;
        let e = interpret(200, &[], refusal.as_bytes()).unwrap_err();
        assert_eq!(
            (e.class, e.message.as_str()),
            (Class::NoContent, "no content: the model refused (stop_reason \"refusal\")")
        );
        assert_eq!(e.usage.map(|u| u.input_tokens), Some(3));
        let refusal = r#"{"content":[{"type":"text","text":"I can't."}],"stop_reason":"refusal"}"#;
        let e = interpret(200, &[], refusal.as_bytes()).unwrap_err();
        assert_eq!(e.message, "no content: the model refused (stop_reason \"refusal\"): I can't.");
        let empty = r#"{"content":[],"stop_reason":"end_turn"}"#;
        let e = interpret(200, &[], empty.as_bytes()).unwrap_err();
        assert_eq!((e.class, e.message.as_str()), (Class::NoContent, "no content: stop_reason \"end_turn\""));
        // Thinking that used the whole budget: billed, no text.
        let spent = r#"{"content":[{"type":"thinking","thinking":"..."}],"stop_reason":"max_tokens",
            "usage":{"input_tokens":9,"output_tokens":1024}}"#;
        let e = interpret(200, &[], spent.as_bytes()).unwrap_err();
        assert_eq!(e.class, Class::NoContent);
        assert!(e.message.contains("stop_reason \"max_tokens\" (the output budget was spent"), "{}", e.message);
        assert_eq!(e.usage.map(|u| u.output_tokens), Some(1024));
    }

    #[test]
    fn error_classes() {
        let e =
            error(429, "rate_limit_error", "Number of requests has exceeded your rate limit", &[("retry-after", "3")]);
        assert_eq!((e.class, e.retry_after_ms), (Class::RateLimited, Some(3000)));
        let e = error(529, "overloaded_error", "Overloaded", &[]);
        assert_eq!((e.class, e.http_status), (Class::Overloaded, Some(529)));
        assert_eq!(error(500, "api_error", "Internal server error", &[]).class, Class::Overloaded);
        let e = error(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", &[]);
        assert_eq!(e.class, Class::TooLarge);
        let e = error(400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum", &[]);
        assert_eq!(e.class, Class::TooLarge);
        assert_eq!(error(401, "authentication_error", "invalid x-api-key", &[]).class, Class::Auth);
        assert_eq!(error(403, "permission_error", "no", &[]).class, Class::Auth);
        let billing = "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing.";
        let e = error(400, "invalid_request_error", billing, &[("retry-after", "5")]);
        assert_eq!((e.class, e.retry_after_ms), (Class::QuotaExhausted, None));
        assert_eq!(error(402, "billing_error", "pay up", &[]).class, Class::QuotaExhausted);
        assert_eq!(error(400, "invalid_request_error", "max_tokens: field required", &[]).class, Class::ClientError);
        assert_eq!(error(404, "not_found_error", "model: x", &[]).class, Class::ClientError);
        let e = interpret(502, &[], b"<html>bad gateway</html>").unwrap_err();
        assert_eq!((e.class, e.response_body), (Class::Overloaded, None));
        let e = interpret(200, &[], br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
            .unwrap_err();
        assert_eq!((e.class, e.http_status), (Class::Overloaded, Some(200)));
    }
}
