//! The mock strategy's pure logic: answers, token counts and test hooks.

use batchllm_plugin_sdk::{
    ErrorClass, Item, StateChange, StateEntry, StrategyError, Success, Usage, serde_json, state,
};
use serde_json::{Value, json};

/// The retry-state key counting the failures `[[fail-first:N:CLASS]]` caused.
pub const FAILURES_KEY: &str = "mock.failures";

/// The delay a mock `rate-limited` failure asks for.
pub const RATE_LIMIT_RETRY_AFTER_MS: u64 = 10;

/// A test hook found in the prompt text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// `[[fail:CLASS]]`: every attempt fails with CLASS.
    Fail(ErrorClass),
    /// `[[fail-first:N:CLASS]]`: attempts fail with CLASS while the retry
    /// state's `mock.failures` is below N.
    FailFirst(u64, ErrorClass),
    /// `[[panic]]`: the guest panics (a trap for the host).
    Panic,
}

/// The prompt text of an item: its `prompt`, then the text of every message
/// in `params.messages`; and the text the mock answers to: the prompt, or
/// else the last user message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Texts {
    pub all: String,
    pub answer_to: String,
}

pub fn texts(item: &Item, params: &serde_json::Map<String, Value>) -> Texts {
    let mut all = item.prompt.clone();
    let mut last_user = None;
    if let Some(messages) = params.get("messages").and_then(Value::as_array) {
        for message in messages {
            let text = message.get("content").map(content_text).unwrap_or_default();
            if message.get("role").and_then(Value::as_str) == Some("user") {
                last_user = Some(text.clone());
            }
            if !all.is_empty() && !text.is_empty() {
                all.push('\n');
            }
            all.push_str(&text);
        }
    }
    let answer_to = if item.prompt.is_empty() { last_user.unwrap_or_default() } else { item.prompt.clone() };
    Texts { all, answer_to }
}

/// The text of a message's `content`: a string, or the `text` of its parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

/// Every `[[...]]` marker in `text`, in order. A malformed marker (an unknown
/// class, a bad count) is a `client-error`, so typos in test inputs show.
pub fn markers(text: &str) -> Result<Vec<Marker>, StrategyError> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("[[") {
        let inner_start = &rest[start + 2..];
        let Some(end) = inner_start.find("]]") else {
            break;
        };
        let inner = &inner_start[..end];
        rest = &inner_start[end + 2..];
        let bad = |why: String| StrategyError::client_error(format!("mock: marker [[{inner}]]: {why}"));
        let class = |name: &str| {
            ErrorClass::from_name(name)
                .ok_or_else(|| bad(format!("unknown error class {name:?} (use kebab-case, e.g. rate-limited)")))
        };
        if inner == "panic" {
            found.push(Marker::Panic);
        } else if let Some(name) = inner.strip_prefix("fail:") {
            found.push(Marker::Fail(class(name)?));
        } else if let Some(spec) = inner.strip_prefix("fail-first:") {
            let (n, name) = spec.split_once(':').ok_or_else(|| bad("expected [[fail-first:N:CLASS]]".to_owned()))?;
            let n = n.parse::<u64>().map_err(|_| bad(format!("{n:?} is not a count")))?;
            found.push(Marker::FailFirst(n, class(name)?));
        }
        // Any other [[...]] is ordinary text.
    }
    Ok(found)
}

/// The injected failure for `class`, shaped like a provider's answer.
pub fn injected_error(class: ErrorClass, detail: &str) -> StrategyError {
    let message = format!("mock: injected {} failure{detail}", class.as_str());
    let status = match class {
        ErrorClass::RateLimited | ErrorClass::QuotaExhausted => Some(429),
        ErrorClass::Overloaded => Some(503),
        ErrorClass::InvalidResponse | ErrorClass::NoContent => Some(200),
        ErrorClass::ClientError => Some(400),
        ErrorClass::Auth => Some(401),
        ErrorClass::TooLarge => Some(413),
        ErrorClass::Other => Some(500),
        ErrorClass::Timeout | ErrorClass::Network => None,
    };
    let mut err = StrategyError::new(class, message.clone());
    if let Some(status) = status {
        err = err.with_http_status(status).with_response_body(
            json!({"error": {"message": message, "type": "mock_error", "code": class.as_str()}}).to_string(),
        );
    }
    if class == ErrorClass::RateLimited {
        err = err.with_retry_after_ms(RATE_LIMIT_RETRY_AFTER_MS);
    }
    err
}

fn ceil_div4(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX)
}

/// One attempt: the answer, or the failure a marker asks for. Panics on
/// `[[panic]]`.
pub fn execute(item: &Item, state: &[StateEntry]) -> Result<Success, StrategyError> {
    let params = item.params_object()?;
    let texts = texts(item, &params);
    let markers = markers(&texts.all)?;
    if markers.contains(&Marker::Panic) {
        panic!("mock: [[panic]] marker in item {:?}", item.id);
    }
    let failures = state::get_u64(state, FAILURES_KEY).unwrap_or(0);
    for marker in &markers {
        match *marker {
            Marker::Fail(class) => return Err(injected_error(class, "")),
            Marker::FailFirst(n, class) if failures < n => {
                return Err(injected_error(class, &format!(" ({} of {n})", failures + 1)));
            }
            _ => {}
        }
    }

    let output = format!("mock: {}", texts.answer_to);
    let usage = Usage::new(ceil_div4(texts.all.chars().count()) + 4, ceil_div4(output.chars().count()));
    let body = json!({
        "id": format!("mock-{}", item.id),
        "object": "chat.completion",
        "created": 0,
        "model": "mock",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": output},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens
        }
    });
    Ok(Success::new(output)
        .with_usage(Some(usage))
        .with_response_body(body.to_string())
        .with_metadata(&json!({"model": "mock"})))
}

/// After a failure: count it in `mock.failures` when the item carries a
/// `[[fail-first:N:CLASS]]` marker; no changes otherwise.
pub fn on_error(item: &Item, state: &[StateEntry]) -> Vec<StateChange> {
    let params = item.params_object().unwrap_or_default();
    let has_fail_first = markers(&texts(item, &params).all)
        .map(|m| m.iter().any(|m| matches!(m, Marker::FailFirst(..))))
        .unwrap_or(false);
    if !has_fail_first {
        return Vec::new();
    }
    let failures = state::get_u64(state, FAILURES_KEY).unwrap_or(0);
    vec![state::set(FAILURES_KEY, (failures + 1).to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(prompt: &str, params: &str) -> Item {
        Item {
            id: "i1".to_owned(),
            prompt: prompt.to_owned(),
            params: params.to_owned(),
            context: None,
            endpoint: None,
        }
    }

    /// Applies state changes the way the host does.
    fn apply(state: &mut Vec<StateEntry>, changes: Vec<StateChange>) {
        for (k, v) in changes {
            state.retain(|(key, _)| *key != k);
            if let Some(v) = v {
                state.push((k, v));
            }
        }
    }

    #[test]
    fn answers_the_prompt() {
        let s = execute(&item("Hello world!", "{}"), &[]).unwrap();
        assert_eq!(s.output, "mock: Hello world!");
        // 12 chars -> 3 + 4; 18 chars -> 5.
        assert_eq!(s.usage, Some(Usage::new(7, 5)));
        let body: Value = serde_json::from_str(s.response_body.as_deref().unwrap()).unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["choices"][0]["message"]["content"], "mock: Hello world!");
        assert_eq!(body["usage"]["total_tokens"], 12);
        assert_eq!(s.metadata.as_deref(), Some(r#"{"model":"mock"}"#));
    }

    #[test]
    fn answers_the_last_user_message() {
        let params = r#"{"model":"x","messages":[
            {"role":"system","content":"sys"},
            {"role":"user","content":"first"},
            {"role":"assistant","content":"reply"},
            {"role":"user","content":[{"type":"text","text":"second"}]}]}"#;
        let s = execute(&item("", params), &[]).unwrap();
        assert_eq!(s.output, "mock: second");
        // "sys\nfirst\nreply\nsecond" = 22 chars -> 6 + 4.
        assert_eq!(s.usage.unwrap().input_tokens, 10);
        let s = execute(&item("", "{}"), &[]).unwrap();
        assert_eq!(s.output, "mock: ");
        assert_eq!(s.usage, Some(Usage::new(4, 2)));
    }

    #[test]
    fn fail_marker() {
        let e = execute(&item("x [[fail:rate-limited]]", "{}"), &[]).unwrap_err();
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert_eq!(e.retry_after_ms, Some(10));
        assert_eq!(e.http_status, Some(429));
        let e = execute(&item("[[fail:client-error]]", "{}"), &[]).unwrap_err();
        assert_eq!(e.class, ErrorClass::ClientError);
        assert_eq!(e.retry_after_ms, None);
        let e = execute(&item("[[fail:network]]", "{}"), &[]).unwrap_err();
        assert_eq!((e.class, e.http_status), (ErrorClass::Network, None));
        let params = r#"{"messages":[{"role":"user","content":"[[fail:auth]]"}]}"#;
        assert_eq!(execute(&item("", params), &[]).unwrap_err().class, ErrorClass::Auth);
    }

    #[test]
    fn bad_markers_are_client_errors() {
        for prompt in ["[[fail:RateLimited]]", "[[fail-first:x:other]]", "[[fail-first:2]]"] {
            let e = execute(&item(prompt, "{}"), &[]).unwrap_err();
            assert_eq!(e.class, ErrorClass::ClientError, "{prompt}");
            assert!(e.message.starts_with("mock: marker"), "{}", e.message);
        }
        // Other brackets are plain text.
        assert!(execute(&item("[[note]] and [[unclosed", "{}"), &[]).is_ok());
    }

    #[test]
    fn fail_first_uses_the_retry_state() {
        let it = item("[[fail-first:2:overloaded]] hi", "{}");
        let mut st: Vec<StateEntry> = Vec::new();
        for expected in 1..=2 {
            let e = execute(&it, &st).unwrap_err();
            assert_eq!(e.class, ErrorClass::Overloaded);
            assert!(e.message.contains(&format!("({expected} of 2)")), "{}", e.message);
            let changes = on_error(&it, &st);
            apply(&mut st, changes);
            assert_eq!(state::get(&st, FAILURES_KEY), Some(expected.to_string().as_str()));
        }
        let s = execute(&it, &st).unwrap();
        assert_eq!(s.output, "mock: [[fail-first:2:overloaded]] hi");
        assert!(execute(&item("[[fail-first:0:other]]", "{}"), &[]).is_ok());
    }

    #[test]
    fn on_error_without_marker_changes_nothing() {
        assert!(on_error(&item("plain", "{}"), &[]).is_empty());
        assert!(on_error(&item("[[fail:other]]", "not json"), &[]).is_empty());
    }

    #[test]
    #[should_panic(expected = "[[panic]]")]
    fn panic_marker() {
        let _ = execute(&item("boom [[panic]]", "{}"), &[]);
    }

    #[test]
    fn invalid_params() {
        let e = execute(&item("x", "[]"), &[]).unwrap_err();
        assert_eq!(e.class, ErrorClass::ClientError);
    }
}
