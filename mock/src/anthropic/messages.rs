//! `POST /v1/messages`: a deterministic echo model in Anthropic's shapes.
//!
//! The answer is `"echo: "` plus the text of the last user message, cut to
//! `4 * max_tokens` characters with `stop_reason: "max_tokens"` when it would
//! exceed `max_tokens`. Tokens follow [`crate::tokens`]: the prompt is
//! `Σ T(text)` over the system blocks and message contents, plus
//! [`tokens::PER_MESSAGE_TOKENS`] per message (and for a system prompt).
//!
//! **Prompt caching.** When a block carries `cache_control`, the prompt up
//! to and including the last such block is the cached prefix; its tokens
//! (`Σ T(text)`) are reported as `cache_creation_input_tokens` the first
//! time the server sees that prefix (for that model) and as
//! `cache_read_input_tokens` afterwards. `input_tokens` is the rest of the
//! prompt, as Anthropic reports it.

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::faults::{self, Shape};
use crate::state::lock;
use crate::tokens;

/// One piece of prompt text, in order.
#[derive(Debug, Clone, PartialEq)]
struct Segment {
    text: String,
    /// Whether the block carries `cache_control` (a cache breakpoint).
    breakpoint: bool,
}

/// A validated Messages request, reduced to what the mock needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MessagesRequest {
    model: String,
    max_tokens: u64,
    segments: Vec<Segment>,
    /// Messages plus the system prompt, each framed with per-message tokens.
    framed: u64,
    last_user: Option<String>,
}

/// The prefixes seen with `cache_control`, per model.
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    seen: Mutex<HashSet<String>>,
}

impl PromptCache {
    /// Records `key`; whether it had been seen before (a cache hit).
    fn hit(&self, key: String) -> bool {
        !lock(&self.seen).insert(key)
    }

    /// Forgets every prefix.
    pub(crate) fn clear(&self) {
        lock(&self.seen).clear();
    }
}

impl MessagesRequest {
    /// Validates a Messages body; errors are 400s naming the field.
    pub(super) fn parse(body: &Value) -> Result<Self, ApiError> {
        let body =
            body.as_object().ok_or_else(|| ApiError::invalid_request("The request body must be a JSON object."))?;
        if body.get("stream").and_then(Value::as_bool) == Some(true) {
            return Err(ApiError::invalid_request("stream: streaming is not supported by the mock."));
        }
        let model = match body.get("model") {
            Some(Value::String(model)) if !model.is_empty() => model.clone(),
            _ => return Err(ApiError::invalid_request("model: Field required")),
        };
        let max_tokens = match body.get("max_tokens") {
            Some(value) => value
                .as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::invalid_request("max_tokens: Input should be greater than or equal to 1"))?,
            None => return Err(ApiError::invalid_request("max_tokens: Field required")),
        };
        let mut segments = Vec::new();
        let mut framed = 0;
        match body.get("system") {
            None | Some(Value::Null) => {}
            Some(system) => {
                segments.extend(content_segments(system, "system")?);
                framed += 1;
            }
        }
        let messages = match body.get("messages") {
            Some(Value::Array(list)) if !list.is_empty() => list,
            Some(Value::Array(_)) => {
                return Err(ApiError::invalid_request("messages: at least one message is required"));
            }
            _ => return Err(ApiError::invalid_request("messages: Field required")),
        };
        let mut last_user = None;
        for message in messages {
            let role = message.get("role").and_then(Value::as_str);
            if !matches!(role, Some("user" | "assistant")) {
                return Err(ApiError::invalid_request("messages: each message needs role \"user\" or \"assistant\""));
            }
            let content = message.get("content").unwrap_or(&Value::Null);
            let parts = content_segments(content, "messages.content")?;
            if role == Some("user") {
                last_user = Some(parts.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("\n"));
            }
            segments.extend(parts);
            framed += 1;
        }
        Ok(Self { model, max_tokens, segments, framed, last_user })
    }

    /// The text of the last user message.
    pub(super) fn prompt(&self) -> Option<String> {
        self.last_user.clone()
    }

    /// The whole prompt's tokens, cached prefix included.
    pub(super) fn prompt_tokens(&self) -> u64 {
        let text: u64 = self.segments.iter().map(|s| tokens::text_tokens(&s.text)).sum();
        text + self.framed * tokens::PER_MESSAGE_TOKENS
    }

    /// Tokens charged against the rate window: prompt plus `max_tokens`.
    pub(super) fn charge(&self) -> u64 {
        self.prompt_tokens().saturating_add(self.max_tokens)
    }

    /// The cached prefix: its key and token count, when there is a breakpoint.
    fn cached_prefix(&self) -> Option<(String, u64)> {
        let end = self.segments.iter().rposition(|s| s.breakpoint)?;
        let prefix = &self.segments[..=end];
        let tokens = prefix.iter().map(|s| tokens::text_tokens(&s.text)).sum();
        let texts: Vec<&str> = prefix.iter().map(|s| s.text.as_str()).collect();
        Some((format!("{}\u{0}{}", self.model, texts.join("\u{0}")), tokens))
    }

    /// The success body and its `usage` object; `cache` decides hits.
    pub(super) fn render(&self, seq: u64, cache: &PromptCache) -> (Value, Value) {
        let full = format!("echo: {}", self.last_user.as_deref().unwrap_or_default());
        let (answer, stop_reason) = if tokens::completion_tokens(&full) > self.max_tokens {
            let chars = usize::try_from(self.max_tokens.saturating_mul(4)).unwrap_or(usize::MAX);
            (full.chars().take(chars).collect::<String>(), "max_tokens")
        } else {
            (full, "end_turn")
        };
        let answer_tokens = tokens::completion_tokens(&answer);
        let (content, stop_reason, output_tokens) = match faults::shape(self.last_user.as_deref()) {
            None => (json!([{"type": "text", "text": answer}]), stop_reason, answer_tokens),
            Some(Shape::Empty) => (json!([]), "max_tokens", self.max_tokens),
            Some(Shape::Null | Shape::NoChoices) => (json!([]), "end_turn", 0),
            Some(Shape::Filtered | Shape::Blocked) => (json!([]), "refusal", answer_tokens),
        };
        let (created, read) = match self.cached_prefix() {
            Some((key, tokens)) => {
                if cache.hit(key) {
                    (0, tokens)
                } else {
                    (tokens, 0)
                }
            }
            None => (0, 0),
        };
        let usage = json!({
            "input_tokens": self.prompt_tokens().saturating_sub(created + read),
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        });
        let body = json!({
            "id": format!("msg_mock_{seq}"),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": usage,
        });
        (body, usage)
    }
}

/// The segments of a content value: a string, or an array of blocks (text
/// blocks give their text; other blocks count as empty).
fn content_segments(content: &Value, field: &str) -> Result<Vec<Segment>, ApiError> {
    match content {
        Value::String(text) => Ok(vec![Segment { text: text.clone(), breakpoint: false }]),
        Value::Array(blocks) => blocks.iter().map(|block| block_segment(block, field)).collect(),
        _ => Err(ApiError::invalid_request(format!("{field}: expected a string or an array of content blocks"))),
    }
}

fn block_segment(block: &Value, field: &str) -> Result<Segment, ApiError> {
    let Some(block) = block.as_object() else {
        return Err(ApiError::invalid_request(format!("{field}: each content block must be an object")));
    };
    let text = match (block.get("type").and_then(Value::as_str), block.get("text")) {
        (Some("text"), Some(Value::String(text))) => text.clone(),
        (Some("text"), _) => return Err(ApiError::invalid_request(format!("{field}: text blocks need a string text"))),
        (Some(_), _) => String::new(),
        (None, _) => return Err(ApiError::invalid_request(format!("{field}: content blocks need a type"))),
    };
    Ok(Segment { text, breakpoint: has_cache_control(block) })
}

fn has_cache_control(block: &Map<String, Value>) -> bool {
    block.get("cache_control").is_some_and(|c| !c.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<MessagesRequest, ApiError> {
        MessagesRequest::parse(&body)
    }

    #[test]
    fn echoes_last_user_message_with_usage() {
        let request = parse(json!({"model": "claude-x", "max_tokens": 100, "system": "Be brief.",
            "messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
                         {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image"}]}]}))
        .expect("valid");
        assert_eq!(request.prompt().as_deref(), Some("hello\n"));
        // Texts: 3 + 2 + 1 + 2 + 0 = 8; framing: 4 × 4 = 16.
        assert_eq!(request.prompt_tokens(), 24);
        assert_eq!(request.charge(), 124);
        let (body, usage) = request.render(7, &PromptCache::default());
        assert_eq!(body["id"], "msg_mock_7");
        assert_eq!(body["content"][0]["text"], "echo: hello\n");
        assert_eq!(body["stop_reason"], "end_turn");
        assert_eq!(usage["input_tokens"], 24);
        assert_eq!(usage["cache_read_input_tokens"], 0);
        assert_eq!(usage["output_tokens"], 3);
    }

    #[test]
    fn cache_control_creates_then_reads() {
        let doc = "x".repeat(400);
        let body = json!({"model": "m", "max_tokens": 5,
            "system": [{"type": "text", "text": doc, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "question"}]});
        let request = parse(body).expect("valid");
        let cache = PromptCache::default();
        let (_, first) = request.render(1, &cache);
        assert_eq!(first["cache_creation_input_tokens"], 100);
        assert_eq!(first["cache_read_input_tokens"], 0);
        // 100 + 2 + 2 × 4 = 110 in all; 10 uncached.
        assert_eq!(first["input_tokens"], 10);
        let (_, second) = request.render(2, &cache);
        assert_eq!(
            (second["cache_creation_input_tokens"].as_u64(), second["cache_read_input_tokens"].as_u64()),
            (Some(0), Some(100))
        );
        cache.clear();
        assert_eq!(request.render(3, &cache).1["cache_creation_input_tokens"], 100);
    }

    #[test]
    fn max_tokens_truncates() {
        let request =
            parse(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "long question"}]}))
                .expect("valid");
        let (body, _) = request.render(1, &PromptCache::default());
        assert_eq!(body["content"][0]["text"], "echo");
        assert_eq!(body["stop_reason"], "max_tokens");
    }

    #[test]
    fn degenerate_answers() {
        let render = |marker: &str| {
            let body = json!({"model": "m", "max_tokens": 64,
                "messages": [{"role": "user", "content": format!("q {marker}")}]});
            parse(body).expect("valid").render(1, &PromptCache::default())
        };
        let (body, usage) = render("[[mock:answer=empty]]");
        assert_eq!((body["content"].clone(), body["stop_reason"].clone()), (json!([]), json!("max_tokens")));
        assert_eq!(usage["output_tokens"], 64, "the budget is billed");
        let (body, usage) = render("[[mock:answer=null]]");
        assert_eq!((body["content"].clone(), body["stop_reason"].clone()), (json!([]), json!("end_turn")));
        assert_eq!(usage["output_tokens"], 0);
        for kind in ["filtered", "blocked"] {
            let (body, _) = render(&format!("[[mock:answer={kind}]]"));
            assert_eq!(body["stop_reason"], "refusal", "{kind}");
            assert_eq!(body["content"], json!([]), "{kind}");
        }
    }

    #[test]
    fn rejects_bad_requests() {
        for body in [
            json!([]),
            json!({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
            json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
            json!({"model": "m", "max_tokens": 1, "messages": []}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": 5}]}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"text": "x"}]}]}),
            json!({"model": "m", "max_tokens": 1, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        ] {
            let error = parse(body.clone()).expect_err(&body.to_string());
            assert_eq!(error.status.as_u16(), 400, "{body}");
        }
    }
}
