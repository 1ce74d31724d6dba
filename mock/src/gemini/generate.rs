//! `POST /v1beta/models/{model}:generateContent`: a deterministic echo model
//! in Gemini's shapes.
//!
//! The answer is `"echo: "` plus the text of the last user turn, cut to
//! `4 * maxOutputTokens` characters with `finishReason: "MAX_TOKENS"` when it
//! would exceed `generationConfig.maxOutputTokens`. `promptTokenCount`
//! counts the request's contents and system instruction (see
//! [`super::content`]) plus, when the request names a live
//! `cachedContent`, the cache's tokens, which are also reported as
//! `cachedContentTokenCount`.
//!
//! `[[mock:answer=KIND]]` gives a degenerate success (see [`Shape`]):
//! `empty` is a candidate whose content has no parts, `MAX_TOKENS`, with
//! the whole output budget billed as `thoughtsTokenCount` (a thinking
//! model that spent it); `null` a candidate without `content` (`STOP`);
//! `no-choices` no `candidates` at all; `filtered` a candidate stopped for
//! `SAFETY` with its `safetyRatings`; `blocked` no candidates and a
//! `promptFeedback.blockReason` of `SAFETY`.

use serde_json::{Value, json};

use super::caches::{CacheRef, full_model};
use super::content::{self, Turn};
use super::error::GoogleError;
use crate::faults::{self, Shape};
use crate::tokens;

/// A validated `generateContent` request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GenerateRequest {
    /// `models/<id>`.
    model: String,
    turns: Vec<Turn>,
    system: Option<Turn>,
    max_output_tokens: Option<u64>,
    cache: Option<CacheRef>,
}

impl GenerateRequest {
    /// Validates a body for `model`; `lookup` finds a live cache by name.
    pub(super) fn parse(
        model: &str,
        body: &Value,
        lookup: impl Fn(&str) -> Option<CacheRef>,
    ) -> Result<Self, GoogleError> {
        let body = body.as_object().ok_or_else(|| GoogleError::invalid_argument("The body must be a JSON object."))?;
        let model = full_model(model);
        let turns = content::turns(body.get("contents"), "contents", true)?;
        let system = match body.get("systemInstruction").or_else(|| body.get("system_instruction")) {
            None | Some(Value::Null) => None,
            Some(system) => Some(content::turn(system, "system_instruction")?),
        };
        let max_output_tokens = match body.get("generationConfig").and_then(|c| c.get("maxOutputTokens")) {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                GoogleError::invalid_argument("Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32)")
            })?),
        };
        let cache = match body.get("cachedContent").or_else(|| body.get("cached_content")) {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => {
                let cache = lookup(name).ok_or_else(GoogleError::cache_not_found)?;
                if cache.model != model {
                    return Err(GoogleError::invalid_argument(format!(
                        "Model used by GenerateContent request ({model}) and CachedContent ({}) has to be the same.",
                        cache.model
                    )));
                }
                if system.is_some() || body.contains_key("tools") || body.contains_key("toolConfig") {
                    return Err(GoogleError::invalid_argument(
                        "CachedContent can not be used with GenerateContent request setting system_instruction, \
                         tools or tool_config.",
                    ));
                }
                Some(cache)
            }
            Some(_) => return Err(GoogleError::invalid_argument("Invalid value at 'cached_content' (TYPE_STRING)")),
        };
        Ok(Self { model, turns, system, max_output_tokens, cache })
    }

    /// The text of the last user turn.
    pub(super) fn prompt(&self) -> Option<String> {
        self.turns.iter().rev().find(|t| t.role == "user").map(|t| t.text.clone())
    }

    /// The whole prompt's tokens, cached content included.
    pub(super) fn prompt_tokens(&self) -> u64 {
        content::prompt_tokens(&self.turns, self.system.as_ref()) + self.cache.as_ref().map_or(0, |c| c.tokens)
    }

    /// Tokens charged against the rate window: prompt plus the output budget.
    pub(super) fn charge(&self) -> u64 {
        self.prompt_tokens().saturating_add(self.max_output_tokens.unwrap_or(tokens::DEFAULT_MAX_TOKENS))
    }

    /// The success body and its `usageMetadata`.
    pub(super) fn render(&self, seq: u64) -> (Value, Value) {
        let full = format!("echo: {}", self.prompt().unwrap_or_default());
        let (answer, finish_reason) = match self.max_output_tokens {
            Some(max) if tokens::completion_tokens(&full) > max => {
                let chars = usize::try_from(max.saturating_mul(4)).unwrap_or(usize::MAX);
                (full.chars().take(chars).collect::<String>(), "MAX_TOKENS")
            }
            _ => (full, "STOP"),
        };
        let prompt = self.prompt_tokens();
        let shape = faults::shape(self.prompt().as_deref());
        let (candidates, thoughts) = match shape {
            None => (tokens::completion_tokens(&answer), 0),
            Some(Shape::Empty) => (0, self.max_output_tokens.unwrap_or(tokens::DEFAULT_MAX_TOKENS)),
            Some(Shape::Filtered) => (tokens::completion_tokens(&answer), 0),
            Some(Shape::Null | Shape::NoChoices | Shape::Blocked) => (0, 0),
        };
        let mut usage = json!({"promptTokenCount": prompt});
        if candidates > 0 {
            usage["candidatesTokenCount"] = candidates.into();
        }
        if thoughts > 0 {
            usage["thoughtsTokenCount"] = thoughts.into();
        }
        usage["totalTokenCount"] = prompt.saturating_add(candidates).saturating_add(thoughts).into();
        if let Some(cache) = &self.cache {
            usage["cachedContentTokenCount"] = cache.tokens.into();
        }
        let mut body = json!({
            "usageMetadata": usage,
            "modelVersion": self.model.trim_start_matches("models/"),
            "responseId": format!("mock-{seq}"),
        });
        let candidate = match shape {
            None => Some(json!({"content": {"parts": [{"text": answer}], "role": "model"},
                "finishReason": finish_reason, "index": 0})),
            Some(Shape::Empty) => Some(json!({"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0})),
            Some(Shape::Null) => Some(json!({"finishReason": "STOP", "index": 0})),
            Some(Shape::Filtered) => {
                Some(json!({"finishReason": "SAFETY", "index": 0, "safetyRatings": blocking_ratings()}))
            }
            Some(Shape::NoChoices | Shape::Blocked) => None,
        };
        if let Some(candidate) = candidate {
            body["candidates"] = json!([candidate]);
        }
        if shape == Some(Shape::Blocked) {
            body["promptFeedback"] = json!({"blockReason": "SAFETY", "safetyRatings": blocking_ratings()});
        }
        (body, usage)
    }
}

/// The safety ratings of a blocked prompt or answer.
fn blocking_ratings() -> Value {
    json!([
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true},
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_cache(_: &str) -> Option<CacheRef> {
        None
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "parts": [{"text": text}]})
    }

    #[test]
    fn echoes_with_usage() {
        let body = json!({"contents": [user("first"), {"role": "model", "parts": [{"text": "ok"}]}, user("hello")],
            "systemInstruction": {"parts": [{"text": "Be brief."}]}});
        let request = GenerateRequest::parse("gemini-x", &body, no_cache).expect("valid");
        assert_eq!(request.prompt().as_deref(), Some("hello"));
        // (2+4) + (1+4) + (2+4) + (3+4) = 24.
        assert_eq!(request.prompt_tokens(), 24);
        let (body, usage) = request.render(3);
        assert_eq!(body["candidates"][0]["content"]["parts"][0]["text"], "echo: hello");
        assert_eq!(body["candidates"][0]["finishReason"], "STOP");
        assert_eq!(body["modelVersion"], "gemini-x");
        assert_eq!(body["responseId"], "mock-3");
        assert_eq!(usage, json!({"promptTokenCount": 24, "candidatesTokenCount": 3, "totalTokenCount": 27}));
    }

    #[test]
    fn cached_content_adds_cached_tokens() {
        let lookup =
            |name: &str| (name == "cachedContents/c").then(|| CacheRef { model: "models/g".into(), tokens: 500 });
        let body = json!({"contents": [user("hi")], "cachedContent": "cachedContents/c"});
        let request = GenerateRequest::parse("g", &body, lookup).expect("valid");
        let (_, usage) = request.render(1);
        assert_eq!(usage["promptTokenCount"], 505);
        assert_eq!(usage["cachedContentTokenCount"], 500);
        let missing = json!({"contents": [user("hi")], "cachedContent": "cachedContents/gone"});
        assert_eq!(GenerateRequest::parse("g", &missing, lookup).map_err(|e| e.code.as_u16()), Err(403));
        assert_eq!(GenerateRequest::parse("other", &body, lookup).map_err(|e| e.code.as_u16()), Err(400));
        let with_system = json!({"contents": [user("hi")], "cachedContent": "cachedContents/c",
            "systemInstruction": {"parts": [{"text": "s"}]}});
        assert!(GenerateRequest::parse("g", &with_system, lookup).is_err());
    }

    #[test]
    fn max_output_tokens_truncates() {
        let body = json!({"contents": [user("a long question")], "generationConfig": {"maxOutputTokens": 1}});
        let request = GenerateRequest::parse("g", &body, no_cache).expect("valid");
        assert_eq!(request.charge(), request.prompt_tokens() + 1);
        let (body, _) = request.render(1);
        assert_eq!(body["candidates"][0]["content"]["parts"][0]["text"], "echo");
        assert_eq!(body["candidates"][0]["finishReason"], "MAX_TOKENS");
    }

    #[test]
    fn degenerate_answers() {
        let render = |marker: &str| {
            let body =
                json!({"contents": [user(&format!("q {marker}"))], "generationConfig": {"maxOutputTokens": 200}});
            GenerateRequest::parse("g", &body, no_cache).expect("valid").render(1)
        };
        let (body, usage) = render("[[mock:answer=empty]]");
        assert_eq!(body["candidates"][0]["content"], json!({"role": "model"}));
        assert_eq!(body["candidates"][0]["finishReason"], "MAX_TOKENS");
        assert_eq!(usage["thoughtsTokenCount"], 200, "the budget is billed");
        assert!(usage.get("candidatesTokenCount").is_none());
        assert_eq!(usage["totalTokenCount"].as_u64(), usage["promptTokenCount"].as_u64().map(|p| p + 200));
        let (body, _) = render("[[mock:answer=null]]");
        assert!(body["candidates"][0].get("content").is_none());
        let (body, _) = render("[[mock:answer=no-choices]]");
        assert!(body.get("candidates").is_none() && body.get("promptFeedback").is_none());
        let (body, _) = render("[[mock:answer=filtered]]");
        assert_eq!(body["candidates"][0]["finishReason"], "SAFETY");
        assert_eq!(body["candidates"][0]["safetyRatings"][0]["blocked"], true);
        let (body, usage) = render("[[mock:answer=blocked]]");
        assert!(body.get("candidates").is_none());
        assert_eq!(body["promptFeedback"]["blockReason"], "SAFETY");
        assert_eq!(usage["totalTokenCount"], usage["promptTokenCount"]);
    }

    #[test]
    fn rejects_bad_requests() {
        for body in [
            json!([]),
            json!({}),
            json!({"contents": []}),
            json!({"contents": [user("x")], "generationConfig": {"maxOutputTokens": 0}}),
            json!({"contents": [user("x")], "cachedContent": 5}),
        ] {
            assert!(GenerateRequest::parse("g", &body, no_cache).is_err(), "{body}");
        }
    }
}
