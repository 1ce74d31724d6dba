//! `POST /v1/chat/completions`: a deterministic echo model.
//!
//! The answer is `"echo: "` followed by the text of the last user message
//! (markers included), cut to `4 * max_tokens` characters with
//! `finish_reason: "length"` when it would exceed `max_completion_tokens` /
//! `max_tokens`. Token counts follow [`crate::tokens`]. Streaming is refused
//! with a 400.
//!
//! For tests of adaptive strategies, `[[mock:json-from-model=NAME]]` in the
//! last user message makes the answer a JSON object `{"answer": <echo>}` when
//! the request's model is NAME, and the plain (non-JSON) echo otherwise.
//! `[[mock:json-fields=a,b]]` answers a JSON object with just those fields
//! (`{"a": "a-value", "b": "b-value"}`); and a message asking for "these
//! missing fields as a JSON object: x, y" is answered with those fields, as
//! a model following the instruction would (partial-recovery tests).
//!
//! `[[mock:answer=KIND]]` gives a degenerate success instead (see
//! [`Shape`]): `empty` is `content: ""` with `finish_reason: "length"` and
//! the whole budget billed as `reasoning_tokens`; `null` is `content: null`;
//! `no-choices` is `choices: []`; `filtered` and `blocked` are
//! `content: null` with `finish_reason: "content_filter"`.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::fields::{missing, model, object, positive_int, wrong_type};
use super::{Endpoint, RenderContext, Rendered};
use crate::faults::{self, Shape};
use crate::tokens;

/// Model name answered when the request names none.
pub(crate) const DEFAULT_MODEL: &str = "mock-model";

/// The chat-completions endpoint.
pub(crate) struct Chat;

/// A validated chat request, reduced to what the mock needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChatRequest {
    model: String,
    /// The text of every message, in order.
    texts: Vec<String>,
    /// The text of the last `user` message.
    last_user: Option<String>,
    /// `max_completion_tokens`, else `max_tokens`.
    max_tokens: Option<u64>,
}

impl Endpoint for Chat {
    type Request = ChatRequest;

    fn parse(body: &Value) -> Result<ChatRequest, ApiError> {
        let body = object(body)?;
        if body.get("stream").and_then(Value::as_bool) == Some(true) {
            let message = "Streaming is not supported by the mock; send \"stream\": false.";
            return Err(ApiError::invalid_request(message, Some("stream")));
        }
        let model = model(body, DEFAULT_MODEL)?;
        let messages = messages(body)?;
        let max_tokens = match positive_int(body, "max_completion_tokens")? {
            Some(max) => Some(max),
            None => positive_int(body, "max_tokens")?,
        };
        let last_user = messages.iter().rev().find(|(role, _)| role == "user").map(|(_, text)| text.clone());
        let texts = messages.into_iter().map(|(_, text)| text).collect();
        Ok(ChatRequest { model, texts, last_user, max_tokens })
    }

    fn prompt(request: &ChatRequest) -> Option<String> {
        request.last_user.clone()
    }

    fn charge(request: &ChatRequest) -> u64 {
        prompt_tokens(request).saturating_add(request.max_tokens.unwrap_or(tokens::DEFAULT_MAX_TOKENS))
    }

    fn render(request: &ChatRequest, ctx: &RenderContext) -> Rendered {
        let (answer, finish_reason) = answer(request);
        let prompt = prompt_tokens(request);
        let (choices, usage) = match faults::shape(request.last_user.as_deref()) {
            None => {
                let usage = usage(prompt, tokens::completion_tokens(&answer), 0, ctx.cached_ratio);
                (vec![choice(Value::String(answer), finish_reason)], usage)
            }
            Some(Shape::Empty) => {
                // A reasoning model that spent its whole budget thinking.
                let budget = request.max_tokens.unwrap_or(tokens::DEFAULT_MAX_TOKENS);
                (vec![choice(Value::String(String::new()), "length")], usage(prompt, budget, budget, ctx.cached_ratio))
            }
            Some(Shape::Null) => (vec![choice(Value::Null, "stop")], usage(prompt, 0, 0, ctx.cached_ratio)),
            Some(Shape::NoChoices) => (Vec::new(), usage(prompt, 0, 0, ctx.cached_ratio)),
            Some(Shape::Filtered | Shape::Blocked) => {
                let usage = usage(prompt, tokens::completion_tokens(&answer), 0, ctx.cached_ratio);
                (vec![choice(Value::Null, "content_filter")], usage)
            }
        };
        let body = json!({
            "id": format!("chatcmpl-mock-{}", ctx.seq),
            "object": "chat.completion",
            "created": ctx.created,
            "model": request.model,
            "choices": choices,
            "usage": usage,
            "system_fingerprint": "fp_mock",
        });
        Rendered { body, usage }
    }
}

fn prompt_tokens(request: &ChatRequest) -> u64 {
    tokens::prompt_tokens(request.texts.iter().map(String::as_str))
}

/// The echo answer and its finish reason.
fn answer(request: &ChatRequest) -> (String, &'static str) {
    let last = request.last_user.as_deref().unwrap_or_default();
    let echo = format!("echo: {last}");
    let full = match (json_model(last), requested_fields(last)) {
        (_, Some(fields)) => fields_object(&fields),
        (Some(model), None) if model == request.model => json!({ "answer": echo }).to_string(),
        _ => echo,
    };
    match request.max_tokens {
        Some(max) if tokens::completion_tokens(&full) > max => {
            let chars = usize::try_from(max.saturating_mul(4)).unwrap_or(usize::MAX);
            (full.chars().take(chars).collect(), "length")
        }
        _ => (full, "stop"),
    }
}

/// The fields a message asks for: an explicit "missing fields" request wins
/// over a `[[mock:json-fields=...]]` marker.
fn requested_fields(text: &str) -> Option<Vec<String>> {
    const ASK: &str = "missing fields as a JSON object: ";
    const MARKER: &str = "[[mock:json-fields=";
    let list = if let Some(at) = text.find(ASK) {
        let rest = &text[at + ASK.len()..];
        &rest[..rest.find(['.', '\n']).unwrap_or(rest.len())]
    } else {
        let start = text.find(MARKER)? + MARKER.len();
        let rest = &text[start..];
        &rest[..rest.find("]]")?]
    };
    let fields: Vec<String> = list.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect();
    (!fields.is_empty()).then_some(fields)
}

fn fields_object(fields: &[String]) -> String {
    let object: Map<String, Value> = fields.iter().map(|f| (f.clone(), Value::String(format!("{f}-value")))).collect();
    Value::Object(object).to_string()
}

/// The NAME of a `[[mock:json-from-model=NAME]]` marker.
fn json_model(text: &str) -> Option<&str> {
    const MARKER: &str = "[[mock:json-from-model=";
    let start = text.find(MARKER)? + MARKER.len();
    let len = text[start..].find("]]")?;
    Some(text[start..start + len].trim())
}

/// The one choice of an answer.
fn choice(content: Value, finish_reason: &str) -> Value {
    json!({
        "index": 0,
        "message": {"role": "assistant", "content": content, "refusal": null},
        "logprobs": null,
        "finish_reason": finish_reason,
    })
}

fn usage(prompt: u64, completion: u64, reasoning: u64, cached_ratio: f64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
        "prompt_tokens_details": {"cached_tokens": tokens::cached_tokens(prompt, cached_ratio)},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    })
}

/// `(role, text)` of every message; at least one is required.
fn messages(body: &Map<String, Value>) -> Result<Vec<(String, String)>, ApiError> {
    let list = match body.get("messages") {
        None | Some(Value::Null) => return Err(missing("messages")),
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(_) => return Err(wrong_type("messages", "a non-empty array of messages")),
    };
    list.iter().map(message).collect()
}

fn message(value: &Value) -> Result<(String, String), ApiError> {
    let role = value.get("role").and_then(Value::as_str);
    let role = role.ok_or_else(|| wrong_type("messages", "objects with a string 'role'"))?;
    let text = content_text(value.get("content"));
    let text = text.ok_or_else(|| wrong_type("messages", "'content' as a string or an array of parts"))?;
    Ok((role.to_owned(), text))
}

/// The text of a message's content: the string itself, or its text parts
/// joined with `"\n"`; `None` for a content of another type.
fn content_text(content: Option<&Value>) -> Option<String> {
    match content {
        None | Some(Value::Null) => Some(String::new()),
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Array(parts)) => Some(parts.iter().filter_map(part_text).collect::<Vec<_>>().join("\n")),
        Some(_) => None,
    }
}

fn part_text(part: &Value) -> Option<&str> {
    match (part.get("type")?.as_str()?, part.get("text")?.as_str()) {
        ("text", Some(text)) => Some(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RenderContext {
        RenderContext { seq: 7, created: 1_700_000_000, cached_ratio: 0.5 }
    }

    fn parse(body: Value) -> Result<ChatRequest, ApiError> {
        Chat::parse(&body)
    }

    #[test]
    fn json_fields_marker_and_missing_field_requests() {
        assert_eq!(requested_fields("x [[mock:json-fields=a, b]]"), Some(vec!["a".into(), "b".into()]));
        let ask = "[[mock:json-fields=a,b]] task\n\nReturn only these missing fields as a JSON object: c, d.";
        assert_eq!(requested_fields(ask), Some(vec!["c".into(), "d".into()]));
        assert_eq!(fields_object(&["a".into()]), r#"{"a":"a-value"}"#);
        assert_eq!(requested_fields("plain"), None);
    }

    #[test]
    fn json_from_model_marker() {
        assert_eq!(json_model("x [[mock:json-from-model= gpt-4o ]] y"), Some("gpt-4o"));
        assert_eq!(json_model("no marker"), None);
        assert_eq!(json_model("[[mock:json-from-model=unterminated"), None);
    }

    #[test]
    fn echoes_last_user_message_with_usage() {
        let request = parse(json!({"model": "gpt-x", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": null},
            {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url"}, {"type": "text", "text": "world"}]},
        ]}))
        .expect("valid");
        assert_eq!(Chat::prompt(&request).as_deref(), Some("hello\nworld"));
        let rendered = Chat::render(&request, &ctx());
        let body = &rendered.body;
        assert_eq!(body["id"], "chatcmpl-mock-7");
        assert_eq!(body["model"], "gpt-x");
        assert_eq!(body["choices"][0]["message"]["content"], "echo: hello\nworld");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        // (3+4) + (2+4) + (0+4) + (3+4) = 24; "echo: hello\nworld" is 17 chars -> 5.
        assert_eq!(rendered.usage["prompt_tokens"], 24);
        assert_eq!(rendered.usage["completion_tokens"], 5);
        assert_eq!(rendered.usage["total_tokens"], 29);
        assert_eq!(rendered.usage["prompt_tokens_details"]["cached_tokens"], 0);
        assert_eq!(Chat::charge(&request), 24 + tokens::DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn max_tokens_truncates() {
        let request = parse(json!({"max_tokens": 2, "messages": [{"role": "user", "content": "a long question"}]}))
            .expect("valid");
        let rendered = Chat::render(&request, &ctx());
        assert_eq!(rendered.body["model"], DEFAULT_MODEL);
        assert_eq!(rendered.body["choices"][0]["message"]["content"], "echo: a ");
        assert_eq!(rendered.body["choices"][0]["finish_reason"], "length");
        assert_eq!(rendered.usage["completion_tokens"], 2);
        assert_eq!(Chat::charge(&request), (4 + 4) + 2);
    }

    #[test]
    fn huge_max_tokens_does_not_overflow() {
        let request =
            parse(json!({"max_tokens": u64::MAX, "messages": [{"role": "user", "content": "q"}]})).expect("valid");
        assert_eq!(Chat::charge(&request), u64::MAX);
        assert_eq!(Chat::render(&request, &ctx()).body["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn degenerate_answers() {
        let render = |marker: &str, max_tokens: Option<u64>| {
            let mut body = json!({"messages": [{"role": "user", "content": format!("q {marker}")}]});
            if let Some(max) = max_tokens {
                body["max_completion_tokens"] = max.into();
            }
            Chat::render(&parse(body).expect("valid"), &ctx())
        };
        let empty = render("[[mock:answer=empty]]", Some(300));
        assert_eq!(empty.body["choices"][0]["message"]["content"], "");
        assert_eq!(empty.body["choices"][0]["finish_reason"], "length");
        assert_eq!(empty.usage["completion_tokens"], 300, "the budget is billed");
        assert_eq!(empty.usage["completion_tokens_details"]["reasoning_tokens"], 300);
        let empty = render("[[mock:answer=empty]]", None);
        assert_eq!(empty.usage["completion_tokens"], tokens::DEFAULT_MAX_TOKENS);

        let null = render("[[mock:answer=null]]", None);
        assert_eq!(null.body["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(null.body["choices"][0]["finish_reason"], "stop");
        assert_eq!(null.usage["completion_tokens"], 0);

        let none = render("[[mock:answer=no-choices]]", None);
        assert_eq!(none.body["choices"], json!([]));
        assert!(none.usage["prompt_tokens"].as_u64().is_some_and(|p| p > 0));

        for kind in ["filtered", "blocked"] {
            let filtered = render(&format!("[[mock:answer={kind}]]"), None);
            assert_eq!(filtered.body["choices"][0]["message"]["content"], Value::Null, "{kind}");
            assert_eq!(filtered.body["choices"][0]["finish_reason"], "content_filter", "{kind}");
            assert!(filtered.usage["completion_tokens"].as_u64().is_some_and(|c| c > 0), "{kind}");
        }
    }

    #[test]
    fn max_completion_tokens_wins() {
        let body = json!({"max_tokens": 5, "max_completion_tokens": 9, "messages": [{"role": "user", "content": "q"}]});
        assert_eq!(parse(body).map(|r| r.max_tokens).ok(), Some(Some(9)));
    }

    #[test]
    fn rejects_bad_requests() {
        for body in [
            json!([]),
            json!({}),
            json!({"messages": []}),
            json!({"messages": "hi"}),
            json!({"messages": [{"content": "no role"}]}),
            json!({"messages": [{"role": "user", "content": 5}]}),
            json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
            json!({"messages": [{"role": "user", "content": "x"}], "stream": true}),
            json!({"messages": [{"role": "user", "content": "x"}], "model": ["m"]}),
        ] {
            let error = parse(body.clone()).expect_err(&body.to_string());
            assert_eq!(error.status.as_u16(), 400, "{body}");
        }
    }

    #[test]
    fn no_user_message_echoes_nothing() {
        let request = parse(json!({"messages": [{"role": "system", "content": "s"}]})).expect("valid");
        assert_eq!(Chat::prompt(&request), None);
        assert_eq!(Chat::render(&request, &ctx()).body["choices"][0]["message"]["content"], "echo: ");
    }
}
