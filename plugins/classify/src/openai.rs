//! OpenAI-compatible answers (chat completions, completions, Responses,
//! embeddings): outputs, usage, the answers with no content, and the error
//! codes only OpenAI's bodies carry.

use crate::answer::{parse_json_text, quoted};
use crate::http::{self, MAX_MESSAGE_BYTES};
use crate::text::{body_text, excerpt};
use crate::{Answer, Class, Failure, expect_object, invalid_answer, no_content, openai_typed, usage};
use serde_json::{Map, Value};

/// The OpenAI endpoint an answer comes from, which decides its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Responses,
    Completions,
    Embeddings,
}

/// Translates a whole HTTP answer.
pub fn interpret(
    endpoint: Endpoint,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Answer, Failure> {
    if (200..300).contains(&status) {
        parse_success(endpoint, status, headers, body)
    } else {
        Err(classify_error(status, headers, body))
    }
}

/// A non-2xx answer: [`http::from_http`] plus OpenAI refinements.
pub fn classify_error(status: u16, headers: &[(String, String)], body: &[u8]) -> Failure {
    http::from_http_with(status, headers, body, |err, json| refine(err, status, json))
}

/// OpenAI-specific classes, from the body's `error.code` / `error.type` /
/// `error.message` (or the same fields at the top level, as vLLM sends them):
/// - `insufficient_quota` or `billing_hard_limit_reached`, or HTTP 402
///   (OpenRouter's "insufficient credits") → `quota-exhausted`;
/// - `invalid_api_key` → `auth`;
/// - 429 whose message starts with "Request too large" (a request over the
///   tokens-per-minute limit) → `too-large`;
/// - 400 with code `context_length_exceeded`, llama.cpp's
///   `exceed_context_size_error`, or a "maximum context length" message
///   (vLLM) → `too-large`.
///
/// Without one of these the error is left as it is, wait hint included.
pub fn refine(err: Failure, status: u16, json: Option<&Value>) -> Failure {
    // OpenAI nests the details under `error`; vLLM puts them at the top.
    let error = json.and_then(|j| j.get("error")).filter(|e| e.is_object());
    let field = |name: &str| error.or(json).and_then(|e| e.get(name)).and_then(Value::as_str).unwrap_or("");
    let (code, kind, message) = (field("code"), field("type"), field("message"));
    let is = |s: &str| code == s || kind == s;
    let over_tpm = status == 429 && message.trim_start().starts_with("Request too large");
    let over_context = status == 400
        && (is("context_length_exceeded")
            || is("exceed_context_size_error")
            || message.to_ascii_lowercase().contains("maximum context length"));
    let class = if is("insufficient_quota") || is("billing_hard_limit_reached") || status == 402 {
        Class::QuotaExhausted
    } else if is("invalid_api_key") {
        Class::Auth
    } else if over_tpm || over_context {
        Class::TooLarge
    } else {
        return err;
    };
    err.reclassified(class)
}

/// Why a 2xx answer has no output: the wrong shape (`invalid-response`,
/// retried) or no content (`no-content`, not retried).
enum Unusable {
    Invalid(String),
    NoContent(String),
}

/// A 2xx answer: the output, usage, raw body and metadata. An answer of
/// the wrong shape is `invalid-response`; one with nothing to return (no
/// choices, empty or null content, a refusal, a content filter, the budget
/// spent on reasoning) is `no-content`, its message naming the finish
/// reason.
///
/// The usual chat, completion or Responses API success (output text and a
/// `usage` object) is read without building a `Value` tree, with the same
/// result; every other body is read as a tree.
pub fn parse_success(
    endpoint: Endpoint,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Answer, Failure> {
    match openai_typed::success(endpoint, body_text(body)) {
        Ok(answer) => Ok(answer),
        Err(text) => parse_tree(endpoint, status, headers, text),
    }
}

/// [`parse_success`] of a body that is not the usual success: read as a
/// `Value` tree, the one implementation of every rule.
pub(crate) fn parse_tree(
    endpoint: Endpoint,
    status: u16,
    headers: &[(String, String)],
    text: String,
) -> Result<Answer, Failure> {
    let (text, json) = parse_json_text(status, text)?;
    let unusable = |why: Unusable| {
        let usage = usage::from_openai(&json);
        match why {
            Unusable::Invalid(message) => invalid_answer(status, &text, usage, message),
            Unusable::NoContent(message) => no_content(status, &text, usage, format!("no content: {message}")),
        }
    };
    let obj = expect_object(status, &json).map_err(|m| unusable(Unusable::Invalid(m)))?;
    let payload_key = match endpoint {
        Endpoint::ChatCompletions | Endpoint::Completions => "choices",
        Endpoint::Responses => "output",
        Endpoint::Embeddings => "data",
    };
    let error = obj.get("error").filter(|e| !e.is_null());
    // A Responses body always has `error` (null on success) and may carry
    // one with an `output` (status "failed"); the others carry it instead.
    let failed = match endpoint {
        Endpoint::Responses => obj.get("status").and_then(Value::as_str) == Some("failed"),
        _ => !obj.contains_key(payload_key),
    };
    if failed && let Some(error) = error {
        return Err(embedded_error(status, headers, &text, &json, error));
    }
    let mut metadata = Map::new();
    for key in ["model", "id"] {
        if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
            metadata.insert(key.to_owned(), v.clone());
        }
    }
    let output = match endpoint {
        Endpoint::ChatCompletions | Endpoint::Completions => {
            let Some(choices) = obj.get("choices").and_then(Value::as_array) else {
                return Err(unusable(Unusable::Invalid("response has no choices".to_owned())));
            };
            let Some(first) = choices.first() else {
                return Err(unusable(Unusable::NoContent("the response has no choices".to_owned())));
            };
            let reason = first.get("finish_reason").filter(|v| !v.is_null());
            if let Some(reason) = reason {
                metadata.insert("finish_reason".to_owned(), reason.clone());
            }
            let reason = reason.and_then(Value::as_str);
            let output = if endpoint == Endpoint::Completions {
                match first.get("text") {
                    Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
                    Some(Value::String(_)) => Err(Unusable::NoContent(empty_because(reason))),
                    _ => Err(Unusable::Invalid("choices[0] has no text".to_owned())),
                }
            } else {
                match first.get("message").filter(|m| m.is_object()) {
                    Some(message) => chat_output(message, reason),
                    None => Err(Unusable::Invalid("choices[0] has no message".to_owned())),
                }
            };
            output.map_err(unusable)?
        }
        Endpoint::Responses => {
            for key in ["status", "incomplete_details"] {
                if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
                    metadata.insert(key.to_owned(), v.clone());
                }
            }
            responses_output(obj).map_err(unusable)?
        }
        Endpoint::Embeddings => match obj.get("data") {
            Some(data @ Value::Array(_)) => data.to_string(),
            _ => return Err(unusable(Unusable::Invalid("response has no data array".to_owned()))),
        },
    };
    // Sorted however the map is built, as the typed reading writes them.
    metadata.sort_keys();
    Ok(Answer {
        output,
        usage: usage::from_openai(&json),
        response_body: Some(text),
        metadata: Some(Value::Object(metadata).to_string()),
    })
}

/// Why a choice has no text, from its `finish_reason`.
fn empty_because(reason: Option<&str>) -> String {
    let why = match reason {
        Some("length") => " (the output budget was spent before any text; raise max_tokens)",
        Some("content_filter") => " (the provider's content filter withheld the answer)",
        _ => "",
    };
    format!("finish_reason {}{why}", quoted(reason))
}

/// The output of a Responses API answer: the text of every `output_text`
/// part of its `message` items, joined; the function calls as a JSON array
/// when there is no message text. A refusal, or nothing usable (the budget
/// spent on reasoning: `status: "incomplete"`), has no content.
fn responses_output(obj: &Map<String, Value>) -> Result<String, Unusable> {
    let Some(items) = obj.get("output").and_then(Value::as_array) else {
        return Err(Unusable::Invalid("response has no output array".to_owned()));
    };
    let of_type = |item: &&Value, kind: &str| item.get("type").and_then(Value::as_str) == Some(kind);
    let messages: Vec<&Value> = items.iter().filter(|i| of_type(i, "message")).collect();
    let parts: Vec<&Value> =
        messages.iter().filter_map(|m| m.get("content").and_then(Value::as_array)).flatten().collect();
    let texts: Vec<&str> =
        parts.iter().filter(|p| of_type(p, "output_text")).filter_map(|p| p.get("text")?.as_str()).collect();
    let text = texts.concat();
    if !text.is_empty() {
        return Ok(text);
    }
    let calls: Vec<&Value> = items.iter().filter(|i| of_type(i, "function_call")).collect();
    if !calls.is_empty() {
        return Ok(Value::Array(calls.into_iter().cloned().collect()).to_string());
    }
    if let Some(refusal) = parts.iter().filter(|p| of_type(p, "refusal")).find_map(|p| p.get("refusal")?.as_str()) {
        return Err(Unusable::NoContent(format!("the model refused: {}", excerpt(refusal, MAX_MESSAGE_BYTES))));
    }
    let status = obj.get("status").and_then(Value::as_str);
    let reason = obj.get("incomplete_details").and_then(|d| d.get("reason")).and_then(Value::as_str);
    let why = match reason {
        Some("max_output_tokens") => {
            "; the output budget was spent before any text (raise max_output_tokens)".to_owned()
        }
        Some(other) => format!(" ({other})"),
        None => String::new(),
    };
    Err(Unusable::NoContent(format!("the output has no text and no function calls, status {}{why}", quoted(status))))
}

/// The output of a chat message: its text content (parts joined); the
/// message as JSON when it has no text and carries tool calls. A refusal,
/// or empty or null content, has no content.
fn chat_output(message: &Value, reason: Option<&str>) -> Result<String, Unusable> {
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        // Some servers send content parts: [{"type":"text","text":"..."}].
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str).or_else(|| p.as_str())).collect()
        }
        _ => String::new(),
    };
    if !text.is_empty() {
        return Ok(text);
    }
    let has_calls = |key: &str| match message.get(key) {
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(_)) => true,
        _ => false,
    };
    if has_calls("tool_calls") || has_calls("function_call") {
        return Ok(message.to_string());
    }
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str).filter(|r| !r.is_empty()) {
        return Err(Unusable::NoContent(format!("the model refused: {}", excerpt(refusal, MAX_MESSAGE_BYTES))));
    }
    Err(Unusable::NoContent(empty_because(reason)))
}

/// A 2xx body that carries `{"error": ...}` instead of a result, as some
/// proxies (OpenRouter) send: classified by `error.code` when it is an HTTP
/// status, `other` otherwise.
fn embedded_error(status: u16, headers: &[(String, String)], text: &str, json: &Value, error: &Value) -> Failure {
    let code = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c));
    let base = match code {
        Some(code) => refine(http::from_http(code, headers, text), code, Some(json)),
        None => refine(Failure::new(Class::Other, String::new()), status, Some(json)),
    };
    Failure {
        message: http::embedded_error_message(status, json, text),
        http_status: Some(status),
        response_body: Some(text.to_owned()),
        ..base
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CHAT_OK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18",
        "choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":0}}}"#;

    fn chat(status: u16, body: &str) -> Result<Answer, Failure> {
        interpret(Endpoint::ChatCompletions, status, &[], body.as_bytes())
    }

    fn meta(s: &Answer) -> Value {
        serde_json::from_str(s.metadata.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn chat_success() {
        let s = chat(200, CHAT_OK).unwrap();
        assert_eq!(s.output, "Hello!");
        let u = s.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens, u.cached_input_tokens), (9, 3, Some(0)));
        assert_eq!(s.response_body.as_deref(), Some(CHAT_OK));
        assert_eq!(meta(&s), json!({"model":"gpt-4o-mini-2024-07-18","id":"chatcmpl-1","finish_reason":"stop"}));
    }

    #[test]
    fn tool_calls_output_the_message() {
        let body = json!({"choices":[{"message":{"role":"assistant","content":null,
            "tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            "finish_reason":"tool_calls"}]})
        .to_string();
        let s = chat(200, &body).unwrap();
        let out: Value = serde_json::from_str(&s.output).unwrap();
        assert_eq!(out["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(s.usage, None);
        assert_eq!(meta(&s), json!({"finish_reason":"tool_calls"}));
    }

    #[test]
    fn content_parts_and_empty_content() {
        let body = r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]}"#;
        assert_eq!(chat(200, body).unwrap().output, "ab");
        // Content and tool calls: the tool calls are the output.
        let body = r#"{"choices":[{"message":{"content":"","tool_calls":[{"id":"c"}]},"finish_reason":"tool_calls"}]}"#;
        assert!(chat(200, body).unwrap().output.contains("tool_calls"));
    }

    /// A reasoning model that spent its budget, a content filter, a refusal,
    /// no choices: billed, not retried, and the message says why.
    #[test]
    fn answers_without_content() {
        let body = r#"{"choices":[{"message":{"role":"assistant","content":""},"finish_reason":"length"}],
            "usage":{"prompt_tokens":7,"completion_tokens":64,"completion_tokens_details":{"reasoning_tokens":64}}}"#;
        let e = chat(200, body).unwrap_err();
        assert_eq!((e.class, e.http_status), (Class::NoContent, Some(200)));
        assert_eq!(
            e.message,
            "no content: finish_reason \"length\" (the output budget was spent before any text; raise max_tokens)"
        );
        assert_eq!(e.usage.map(|u| (u.input_tokens, u.output_tokens, u.reasoning_tokens)), Some((7, 64, Some(64))));
        assert_eq!(e.response_body.as_deref(), Some(body));

        let body = r#"{"choices":[{"message":{"content":null},"finish_reason":"content_filter"}]}"#;
        let e = chat(200, body).unwrap_err();
        assert_eq!(e.class, Class::NoContent);
        assert!(e.message.contains("finish_reason \"content_filter\""), "{}", e.message);
        let e = chat(200, r#"{"choices":[{"message":{"content":null},"finish_reason":"stop"}]}"#).unwrap_err();
        assert_eq!((e.class, e.message.as_str()), (Class::NoContent, "no content: finish_reason \"stop\""));
        let e = chat(200, r#"{"choices":[{"message":{"content":[]}}]}"#).unwrap_err();
        assert_eq!((e.class, e.message.as_str()), (Class::NoContent, "no content: finish_reason none"));
        let e = chat(200, r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":0}}"#).unwrap_err();
        assert_eq!((e.class, e.message.as_str()), (Class::NoContent, "no content: the response has no choices"));
        assert_eq!(e.usage.map(|u| u.input_tokens), Some(5));

        let e = interpret(Endpoint::Completions, 200, &[], br#"{"choices":[{"text":"","finish_reason":"length"}]}"#)
            .unwrap_err();
        assert_eq!(e.class, Class::NoContent);
        assert!(e.message.contains("raise max_tokens"), "{}", e.message);
    }

    #[test]
    fn invalid_responses() {
        let e = chat(200, "<html>oops</html>").unwrap_err();
        assert_eq!(e.class, Class::InvalidResponse);
        assert_eq!(e.http_status, Some(200));
        assert_eq!(e.response_body, None);
        assert!(e.message.contains("not valid JSON") && e.message.contains("<html>oops</html>"), "{}", e.message);

        let long = format!("x{}", "y".repeat(10_000));
        let e = chat(200, &long).unwrap_err();
        assert!(e.message.len() < 2300, "{}", e.message.len());

        let e = chat(200, "").unwrap_err();
        assert!(e.message.contains("empty"));

        let body = r#"{"id":"x","choices":{},"usage":{"prompt_tokens":5,"completion_tokens":0}}"#;
        let e = chat(200, body).unwrap_err();
        assert_eq!(e.class, Class::InvalidResponse);
        assert!(e.message.contains("no choices"));
        assert_eq!(e.response_body.as_deref(), Some(body));
        assert_eq!(e.usage.map(|u| u.input_tokens), Some(5));

        let e = chat(200, r#"{"object":"chat.completion"}"#).unwrap_err();
        assert_eq!(e.class, Class::InvalidResponse);
        assert!(e.message.contains("no choices"));
        let e = chat(200, "[1,2]").unwrap_err();
        assert!(e.message.contains("an array"));

        let e = chat(200, r#"{"choices":[{"message":{"content":null,"refusal":"I can't"}}]}"#).unwrap_err();
        assert_eq!((e.class, e.message.as_str()), (Class::NoContent, "no content: the model refused: I can't"));
        let e = chat(200, r#"{"choices":[{"message":{"content":null}}]}"#).unwrap_err();
        assert_eq!(e.class, Class::NoContent);
        let e = chat(200, r#"{"choices":[{"finish_reason":"stop"}]}"#).unwrap_err();
        assert!(e.message.contains("no message"));
    }

    #[test]
    fn embeddings_success() {
        let body = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],
            "model":"text-embedding-3-small","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
        let s = interpret(Endpoint::Embeddings, 200, &[], body.as_bytes()).unwrap();
        let data: Value = serde_json::from_str(&s.output).unwrap();
        assert_eq!(data[0]["embedding"], json!([0.1, 0.2]));
        assert_eq!(s.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((2, 0)));
        assert_eq!(meta(&s), json!({"model":"text-embedding-3-small"}));
        let e = interpret(Endpoint::Embeddings, 200, &[], CHAT_OK.as_bytes()).unwrap_err();
        assert_eq!(e.class, Class::InvalidResponse);
    }

    /// A Responses API answer as OpenAI documents it, reasoning item included.
    const RESPONSES_OK: &str = r#"{"id":"resp_1","object":"response","created_at":1,"status":"completed",
        "error":null,"incomplete_details":null,"model":"o4-mini-2025-04-16",
        "output":[{"type":"reasoning","id":"rs_1","summary":[]},
                  {"type":"message","id":"msg_1","status":"completed","role":"assistant",
                   "content":[{"type":"output_text","text":"Hello","annotations":[]},
                              {"type":"output_text","text":" world","annotations":[]}]}],
        "usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":8},
                 "output_tokens":87,"output_tokens_details":{"reasoning_tokens":64},"total_tokens":123}}"#;

    fn responses(status: u16, body: &str) -> Result<Answer, Failure> {
        interpret(Endpoint::Responses, status, &[], body.as_bytes())
    }

    #[test]
    fn responses_success() {
        let s = responses(200, RESPONSES_OK).unwrap();
        assert_eq!(s.output, "Hello world");
        let u = s.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (36, 87));
        assert_eq!((u.cached_input_tokens, u.reasoning_tokens), (Some(8), Some(64)));
        assert_eq!(meta(&s), json!({"model":"o4-mini-2025-04-16","id":"resp_1","status":"completed"}));
        assert_eq!(s.response_body.as_deref(), Some(RESPONSES_OK));
    }

    #[test]
    fn responses_function_calls_refusals_and_failures() {
        let calls =
            r#"{"status":"completed","output":[{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"}]}"#;
        let out: Value = serde_json::from_str(&responses(200, calls).unwrap().output).unwrap();
        assert_eq!(out[0]["name"], "f");

        let refused =
            r#"{"status":"completed","output":[{"type":"message","content":[{"type":"refusal","refusal":"No."}]}]}"#;
        let e = responses(200, refused).unwrap_err();
        assert_eq!(e.class, Class::NoContent);
        assert!(e.message.contains("refused: No."), "{}", e.message);

        // Out of tokens while reasoning: billed, but nothing to show.
        let incomplete = r#"{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},
            "output":[{"type":"reasoning","summary":[]}],"usage":{"input_tokens":5,"output_tokens":16}}"#;
        let e = responses(200, incomplete).unwrap_err();
        assert_eq!(e.class, Class::NoContent);
        assert_eq!(
            e.message,
            "no content: the output has no text and no function calls, status \"incomplete\"; \
             the output budget was spent before any text (raise max_output_tokens)"
        );
        assert_eq!(e.usage.map(|u| u.output_tokens), Some(16));

        let e = responses(200, CHAT_OK).unwrap_err();
        assert!(e.message.contains("no output array"), "{}", e.message);

        let failed = r#"{"status":"failed","output":[],"error":{"code":"server_error","message":"boom"}}"#;
        let e = responses(200, failed).unwrap_err();
        assert_eq!(e.class, Class::Other);
        assert!(e.message.contains("boom"), "{}", e.message);

        let e = responses(429, r#"{"error":{"message":"Rate limit reached. Please try again in 1.5s.","type":"requests","code":"rate_limit_exceeded"}}"#).unwrap_err();
        assert_eq!((e.class, e.retry_after_ms), (Class::RateLimited, Some(1500)));
    }

    #[test]
    fn completions_success_and_failures() {
        let body = r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct",
            "choices":[{"text":" there was a fox.","index":0,"logprobs":null,"finish_reason":"length"}],
            "usage":{"prompt_tokens":4,"completion_tokens":5,"total_tokens":9}}"#;
        let s = interpret(Endpoint::Completions, 200, &[], body.as_bytes()).unwrap();
        assert_eq!(s.output, " there was a fox.");
        assert_eq!(s.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((4, 5)));
        assert_eq!(meta(&s), json!({"model":"gpt-3.5-turbo-instruct","id":"cmpl-1","finish_reason":"length"}));
        // A chat answer on the completions endpoint has no text.
        let e = interpret(Endpoint::Completions, 200, &[], CHAT_OK.as_bytes()).unwrap_err();
        assert_eq!(e.class, Class::InvalidResponse);
        assert!(e.message.contains("choices[0] has no text"), "{}", e.message);
        let e = interpret(Endpoint::Completions, 200, &[], br#"{"choices":[]}"#).unwrap_err();
        assert_eq!(e.class, Class::NoContent);
        assert!(e.message.contains("no choices"), "{}", e.message);
    }

    fn openai_error(status: u16, code: &str, kind: &str, message: &str) -> Failure {
        let body = json!({"error":{"message":message,"type":kind,"param":null,"code":code}}).to_string();
        chat(status, &body).unwrap_err()
    }

    #[test]
    fn error_refinements() {
        let e = openai_error(
            429,
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        );
        assert_eq!(e.class, Class::QuotaExhausted);
        assert_eq!(e.http_status, Some(429));
        assert!(e.response_body.is_some());

        let e = openai_error(
            429,
            "rate_limit_exceeded",
            "tokens",
            "Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Requested 45000.",
        );
        assert_eq!(e.class, Class::TooLarge);

        let e = openai_error(
            429,
            "rate_limit_exceeded",
            "tokens",
            "Rate limit reached for gpt-4o-mini on tokens per min (TPM): Limit 200000. Please try again in 644ms.",
        );
        assert_eq!(e.class, Class::RateLimited);
        assert_eq!(e.retry_after_ms, Some(644));

        let e = openai_error(
            400,
            "context_length_exceeded",
            "invalid_request_error",
            "This model's maximum context length is 128000 tokens.",
        );
        assert_eq!(e.class, Class::TooLarge);
        let e = chat(400, r#"{"object":"error","message":"This model's maximum context length is 2048 tokens. However, you requested 4000 tokens","type":"BadRequestError","code":400}"#).unwrap_err();
        assert_eq!(e.class, Class::TooLarge);
        let e = chat(400, r#"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#).unwrap_err();
        assert_eq!(e.class, Class::TooLarge);
        let e = openai_error(400, "invalid_value", "invalid_request_error", "bad temperature");
        assert_eq!(e.class, Class::ClientError);

        let e = openai_error(401, "invalid_api_key", "invalid_request_error", "Incorrect API key provided");
        assert_eq!(e.class, Class::Auth);
        let e = chat(402, r#"{"error":{"code":402,"message":"Insufficient credits"}}"#).unwrap_err();
        assert_eq!(e.class, Class::QuotaExhausted);
        let e = chat(503, "upstream connect error").unwrap_err();
        assert_eq!(e.class, Class::Overloaded);
        assert_eq!(e.response_body, None);
    }

    #[test]
    fn error_inside_a_2xx_body() {
        let body = r#"{"error":{"code":502,"message":"Provider returned error"},"user_id":"u"}"#;
        let e = chat(200, body).unwrap_err();
        assert_eq!(e.class, Class::Overloaded);
        assert_eq!(e.http_status, Some(200));
        assert_eq!(e.message, "HTTP 200 response carries an error: Provider returned error");
        let e = chat(200, r#"{"error":{"message":"weird"}}"#).unwrap_err();
        assert_eq!(e.class, Class::Other);
        let e = chat(200, r#"{"error":{"code":"insufficient_quota","message":"no money"}}"#).unwrap_err();
        assert_eq!(e.class, Class::QuotaExhausted);
    }
}
