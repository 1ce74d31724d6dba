//! `POST /v1/responses`: the Responses API, as a deterministic echo model.
//!
//! The answer is `"echo: "` followed by the text of the last user message of
//! `input` (a string is one user message), cut to `4 * max_output_tokens`
//! characters with `status: "incomplete"` and
//! `incomplete_details.reason: "max_output_tokens"` when it would exceed
//! `max_output_tokens`. Token counts follow [`crate::tokens`], with
//! `instructions` counted as one more message. The usage uses the Responses
//! names (`input_tokens`, `input_tokens_details.cached_tokens`,
//! `output_tokens`, `output_tokens_details.reasoning_tokens`).
//!
//! `[[mock:reasoning=N]]` in the last user message adds a `reasoning` output
//! item and N reasoning tokens, which count in `output_tokens` as OpenAI
//! bills them, so tests can check that reasoning is reported as a subset of
//! the output. Streaming is refused with a 400.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::fields::{missing, model, object, positive_int, wrong_type};
use super::{Endpoint, RenderContext, Rendered};
use crate::tokens;

/// Model name answered when the request names none.
pub(crate) const DEFAULT_MODEL: &str = "mock-model";

/// The Responses endpoint.
pub(crate) struct Responses;

/// A validated Responses request, reduced to what the mock needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResponsesRequest {
    model: String,
    /// The text of `instructions` and of every input message, in order.
    texts: Vec<String>,
    /// The text of the last user message.
    last_user: Option<String>,
    max_output_tokens: Option<u64>,
    instructions: Option<String>,
}

impl Endpoint for Responses {
    type Request = ResponsesRequest;

    fn parse(body: &Value) -> Result<ResponsesRequest, ApiError> {
        let body = object(body)?;
        if body.get("stream").and_then(Value::as_bool) == Some(true) {
            let message = "Streaming is not supported by the mock; send \"stream\": false.";
            return Err(ApiError::invalid_request(message, Some("stream")));
        }
        let model = model(body, DEFAULT_MODEL)?;
        let instructions = match body.get("instructions") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => return Err(wrong_type("instructions", "a string")),
        };
        let messages = input(body)?;
        let max_output_tokens = positive_int(body, "max_output_tokens")?;
        let last_user = messages.iter().rev().find(|(role, _)| role == "user").map(|(_, text)| text.clone());
        let texts = instructions.iter().cloned().chain(messages.into_iter().map(|(_, text)| text)).collect();
        Ok(ResponsesRequest { model, texts, last_user, max_output_tokens, instructions })
    }

    fn prompt(request: &ResponsesRequest) -> Option<String> {
        request.last_user.clone()
    }

    fn charge(request: &ResponsesRequest) -> u64 {
        input_tokens(request).saturating_add(request.max_output_tokens.unwrap_or(tokens::DEFAULT_MAX_TOKENS))
    }

    fn render(request: &ResponsesRequest, ctx: &RenderContext) -> Rendered {
        let last = request.last_user.as_deref().unwrap_or_default();
        let full = format!("echo: {last}");
        let (answer, incomplete) = match request.max_output_tokens {
            Some(max) if tokens::completion_tokens(&full) > max => {
                let chars = usize::try_from(max.saturating_mul(4)).unwrap_or(usize::MAX);
                (full.chars().take(chars).collect::<String>(), true)
            }
            _ => (full, false),
        };
        let reasoning = reasoning_marker(last).unwrap_or(0);
        let input = input_tokens(request);
        let output = tokens::completion_tokens(&answer).saturating_add(reasoning);
        let usage = json!({
            "input_tokens": input,
            "input_tokens_details": {"cached_tokens": tokens::cached_tokens(input, ctx.cached_ratio)},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": input.saturating_add(output),
        });
        let mut items = Vec::new();
        if reasoning > 0 {
            items.push(json!({"type": "reasoning", "id": format!("rs_mock_{}", ctx.seq), "summary": []}));
        }
        items.push(json!({
            "type": "message",
            "id": format!("msg_mock_{}", ctx.seq),
            "status": if incomplete { "incomplete" } else { "completed" },
            "role": "assistant",
            "content": [{"type": "output_text", "text": answer, "annotations": []}],
        }));
        let body = json!({
            "id": format!("resp_mock_{}", ctx.seq),
            "object": "response",
            "created_at": ctx.created,
            "status": if incomplete { "incomplete" } else { "completed" },
            "error": null,
            "incomplete_details": if incomplete { json!({"reason": "max_output_tokens"}) } else { Value::Null },
            "instructions": request.instructions,
            "model": request.model,
            "output": items,
            "usage": usage,
        });
        Rendered { body, usage }
    }
}

fn input_tokens(request: &ResponsesRequest) -> u64 {
    tokens::prompt_tokens(request.texts.iter().map(String::as_str))
}

/// The N of a `[[mock:reasoning=N]]` marker.
fn reasoning_marker(text: &str) -> Option<u64> {
    const MARKER: &str = "[[mock:reasoning=";
    let start = text.find(MARKER)? + MARKER.len();
    let len = text[start..].find("]]")?;
    text[start..start + len].trim().parse().ok()
}

/// `(role, text)` of every input message: a string is one user message; a
/// list holds messages (`{"role", "content"}`, `type` `"message"` or absent)
/// and other items (function call outputs, reasoning), which count as empty
/// text without a role.
fn input(body: &Map<String, Value>) -> Result<Vec<(String, String)>, ApiError> {
    match body.get("input") {
        None | Some(Value::Null) => Err(missing("input")),
        Some(Value::String(text)) => Ok(vec![("user".to_owned(), text.clone())]),
        Some(Value::Array(items)) if !items.is_empty() => items.iter().map(item).collect(),
        Some(_) => Err(wrong_type("input", "a string or a non-empty array of input items")),
    }
}

fn item(value: &Value) -> Result<(String, String), ApiError> {
    let bad = || wrong_type("input", "items that are objects; messages with a string 'role'");
    let item = value.as_object().ok_or_else(bad)?;
    match item.get("type").and_then(Value::as_str) {
        None | Some("message") => {}
        Some(_) => return Ok((String::new(), String::new())),
    }
    let role = item.get("role").and_then(Value::as_str).ok_or_else(bad)?;
    let text = match item.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(part_text).collect::<Vec<_>>().join("\n"),
        Some(_) => return Err(wrong_type("input", "message 'content' as a string or an array of parts")),
    };
    Ok((role.to_owned(), text))
}

/// The text of an `input_text` (or, in earlier turns, `output_text`) part.
fn part_text(part: &Value) -> Option<&str> {
    match part.get("type")?.as_str()? {
        "input_text" | "output_text" => part.get("text")?.as_str(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RenderContext {
        RenderContext { seq: 3, created: 1_700_000_000, cached_ratio: 0.5 }
    }

    fn parse(body: Value) -> Result<ResponsesRequest, ApiError> {
        Responses::parse(&body)
    }

    #[test]
    fn echoes_a_string_input_with_responses_usage() {
        let request = parse(json!({"model": "gpt-x", "input": "hello"})).expect("valid");
        let rendered = Responses::render(&request, &ctx());
        let body = &rendered.body;
        assert_eq!(body["id"], "resp_mock_3");
        assert_eq!(body["object"], "response");
        assert_eq!(body["status"], "completed");
        assert_eq!(body["model"], "gpt-x");
        assert_eq!(body["output"][0]["type"], "message");
        assert_eq!(
            body["output"][0]["content"][0],
            json!({"type": "output_text", "text": "echo: hello", "annotations": []})
        );
        // "hello": 2 + 4 = 6; "echo: hello" is 11 chars -> 3.
        assert_eq!(
            rendered.usage,
            json!({"input_tokens": 6, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 3,
                   "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 9})
        );
        assert_eq!(Responses::charge(&request), 6 + tokens::DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn message_lists_instructions_and_parts() {
        let request = parse(json!({"instructions": "Be brief.", "input": [
            {"role": "user", "content": "first"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "x"}]},
            {"type": "function_call_output", "call_id": "c", "output": "42"},
            {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_image"}, {"type": "input_text", "text": "b"}]},
        ]}))
        .expect("valid");
        assert_eq!(Responses::prompt(&request).as_deref(), Some("a\nb"));
        let rendered = Responses::render(&request, &ctx());
        assert_eq!(rendered.body["model"], DEFAULT_MODEL);
        assert_eq!(rendered.body["instructions"], "Be brief.");
        // (3+4) + (2+4) + (1+4) + (0+4) + (1+4) = 27
        assert_eq!(rendered.usage["input_tokens"], 27);
    }

    #[test]
    fn reasoning_marker_is_a_subset_of_the_output() {
        let request = parse(json!({"input": "think [[mock:reasoning=40]]"})).expect("valid");
        let rendered = Responses::render(&request, &ctx());
        assert_eq!(rendered.body["output"][0]["type"], "reasoning");
        assert_eq!(rendered.body["output"][1]["type"], "message");
        let answer_tokens = tokens::completion_tokens("echo: think [[mock:reasoning=40]]");
        assert_eq!(rendered.usage["output_tokens"], answer_tokens + 40);
        assert_eq!(rendered.usage["output_tokens_details"]["reasoning_tokens"], 40);
    }

    #[test]
    fn max_output_tokens_makes_it_incomplete() {
        let request = parse(json!({"input": "a long question", "max_output_tokens": 2})).expect("valid");
        let rendered = Responses::render(&request, &ctx());
        assert_eq!(rendered.body["status"], "incomplete");
        assert_eq!(rendered.body["incomplete_details"], json!({"reason": "max_output_tokens"}));
        assert_eq!(rendered.body["output"][0]["content"][0]["text"], "echo: a ");
        assert_eq!(rendered.usage["output_tokens"], 2);
    }

    #[test]
    fn long_prompts_report_cached_tokens() {
        let request = parse(json!({"input": "x".repeat(8000)})).expect("valid");
        let usage = Responses::render(&request, &ctx()).usage;
        assert_eq!(usage["input_tokens"], 2004);
        assert_eq!(usage["input_tokens_details"]["cached_tokens"], 960);
    }

    #[test]
    fn rejects_bad_requests() {
        for body in [
            json!([]),
            json!({}),
            json!({"input": []}),
            json!({"input": 5}),
            json!({"input": [5]}),
            json!({"input": [{"content": "no role"}]}),
            json!({"input": [{"role": "user", "content": 5}]}),
            json!({"input": "x", "instructions": 1}),
            json!({"input": "x", "max_output_tokens": 0}),
            json!({"input": "x", "stream": true}),
        ] {
            let error = parse(body.clone()).expect_err(&body.to_string());
            assert_eq!(error.status.as_u16(), 400, "{body}");
        }
    }
}
