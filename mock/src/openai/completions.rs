//! `POST /v1/completions`: legacy text completions, as a deterministic echo.
//!
//! `prompt` is a string or a non-empty array of strings; each prompt gets
//! one choice whose `text` is `"echo: "` followed by the prompt, cut to
//! `4 * max_tokens` characters with `finish_reason: "length"` when it would
//! exceed `max_tokens`. Token counts follow [`crate::tokens`]: the prompt is
//! `Σ T(prompt)` (no per-message framing), the completion the sum over the
//! choices. Markers and faults are read from the prompts joined with `"\n"`.
//! Token-array prompts and streaming are refused with a 400.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::fields::{missing, model, object, positive_int, wrong_type};
use super::{Endpoint, RenderContext, Rendered};
use crate::tokens;

/// Model name answered when the request names none.
pub(crate) const DEFAULT_MODEL: &str = "mock-instruct-model";

/// The completions endpoint.
pub(crate) struct Completions;

/// A validated completions request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompletionsRequest {
    model: String,
    prompts: Vec<String>,
    max_tokens: Option<u64>,
}

impl Endpoint for Completions {
    type Request = CompletionsRequest;

    fn parse(body: &Value) -> Result<CompletionsRequest, ApiError> {
        let body = object(body)?;
        if body.get("stream").and_then(Value::as_bool) == Some(true) {
            let message = "Streaming is not supported by the mock; send \"stream\": false.";
            return Err(ApiError::invalid_request(message, Some("stream")));
        }
        let model = model(body, DEFAULT_MODEL)?;
        let prompts = prompts(body)?;
        let max_tokens = positive_int(body, "max_tokens")?;
        Ok(CompletionsRequest { model, prompts, max_tokens })
    }

    fn prompt(request: &CompletionsRequest) -> Option<String> {
        Some(request.prompts.join("\n"))
    }

    fn charge(request: &CompletionsRequest) -> u64 {
        let budget = request.max_tokens.unwrap_or(tokens::DEFAULT_MAX_TOKENS);
        let count = u64::try_from(request.prompts.len()).unwrap_or(u64::MAX);
        prompt_tokens(request).saturating_add(budget.saturating_mul(count))
    }

    fn render(request: &CompletionsRequest, ctx: &RenderContext) -> Rendered {
        let mut completion = 0u64;
        let choices: Vec<Value> = request
            .prompts
            .iter()
            .enumerate()
            .map(|(index, prompt)| {
                let (text, finish_reason) = answer(prompt, request.max_tokens);
                completion = completion.saturating_add(tokens::completion_tokens(&text));
                json!({"text": text, "index": index, "logprobs": null, "finish_reason": finish_reason})
            })
            .collect();
        let prompt = prompt_tokens(request);
        let usage = json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt.saturating_add(completion),
        });
        let body = json!({
            "id": format!("cmpl-mock-{}", ctx.seq),
            "object": "text_completion",
            "created": ctx.created,
            "model": request.model,
            "choices": choices,
            "usage": usage,
        });
        Rendered { body, usage }
    }
}

fn prompt_tokens(request: &CompletionsRequest) -> u64 {
    request.prompts.iter().map(|prompt| tokens::text_tokens(prompt)).sum()
}

/// The echo of one prompt and its finish reason.
fn answer(prompt: &str, max_tokens: Option<u64>) -> (String, &'static str) {
    let full = format!("echo: {prompt}");
    match max_tokens {
        Some(max) if tokens::completion_tokens(&full) > max => {
            let chars = usize::try_from(max.saturating_mul(4)).unwrap_or(usize::MAX);
            (full.chars().take(chars).collect(), "length")
        }
        _ => (full, "stop"),
    }
}

/// `prompt`: a string or a non-empty array of strings.
fn prompts(body: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let invalid = || wrong_type("prompt", "a string or a non-empty array of strings");
    match body.get("prompt") {
        None | Some(Value::Null) => Err(missing("prompt")),
        Some(Value::String(text)) => Ok(vec![text.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().map(|item| item.as_str().map(str::to_owned).ok_or_else(invalid)).collect()
        }
        Some(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RenderContext {
        RenderContext { seq: 5, created: 1_700_000_000, cached_ratio: 0.5 }
    }

    #[test]
    fn echoes_each_prompt_with_usage() {
        let request = Completions::parse(&json!({"model": "m", "prompt": ["Once upon", "a"]})).expect("valid");
        assert_eq!(Completions::prompt(&request).as_deref(), Some("Once upon\na"));
        let rendered = Completions::render(&request, &ctx());
        let body = &rendered.body;
        assert_eq!(body["id"], "cmpl-mock-5");
        assert_eq!(body["object"], "text_completion");
        assert_eq!(body["model"], "m");
        assert_eq!(body["choices"][0]["text"], "echo: Once upon");
        assert_eq!(
            body["choices"][1],
            json!({"text": "echo: a", "index": 1, "logprobs": null, "finish_reason": "stop"})
        );
        // prompts: 3 + 1; answers: 4 + 2
        assert_eq!(rendered.usage, json!({"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}));
        assert_eq!(Completions::charge(&request), 4 + 2 * tokens::DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn max_tokens_truncates() {
        let request = Completions::parse(&json!({"prompt": "a long prompt", "max_tokens": 2})).expect("valid");
        let rendered = Completions::render(&request, &ctx());
        assert_eq!(rendered.body["model"], DEFAULT_MODEL);
        assert_eq!(rendered.body["choices"][0]["text"], "echo: a ");
        assert_eq!(rendered.body["choices"][0]["finish_reason"], "length");
        assert_eq!(rendered.usage["completion_tokens"], 2);
    }

    #[test]
    fn rejects_bad_requests() {
        for body in [
            json!({}),
            json!({"prompt": []}),
            json!({"prompt": [1, 2]}),
            json!({"prompt": 5}),
            json!({"prompt": "x", "max_tokens": 0}),
            json!({"prompt": "x", "stream": true}),
            json!({"messages": [{"role": "user", "content": "x"}]}),
        ] {
            let error = Completions::parse(&body).expect_err(&body.to_string());
            assert_eq!(error.status.as_u16(), 400, "{body}");
        }
    }
}
