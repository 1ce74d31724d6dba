//! Token usage from provider responses, normalised to [`Usage`].

use crate::Usage;
use serde_json::Value;

/// Usage from an OpenAI-style `usage` object.
///
/// Pass the `usage` object or the whole response (a top-level `usage` field is
/// used when present). Maps `prompt_tokens` → input (cached included, as the
/// contract wants), `completion_tokens` → output,
/// `prompt_tokens_details.cached_tokens` → cached input,
/// `completion_tokens_details.reasoning_tokens` → reasoning, and
/// `cache_write_tokens` (top level or in `prompt_tokens_details`, as
/// OpenRouter reports it) → cache writes. The Responses API names
/// (`input_tokens`, `output_tokens`, `input_tokens_details`,
/// `output_tokens_details`) are understood too.
///
/// `None` when there is no such object or it reports neither input nor output
/// tokens. Embeddings report only `prompt_tokens`: output is then 0.
pub fn from_openai(value: &Value) -> Option<Usage> {
    let usage = match value.get("usage") {
        Some(inner @ Value::Object(_)) => inner,
        _ => value,
    };
    let usage = usage.as_object()?;
    let num = |v: Option<&Value>| v.and_then(as_count);
    let input = num(usage.get("prompt_tokens")).or(num(usage.get("input_tokens")));
    let output = num(usage.get("completion_tokens")).or(num(usage.get("output_tokens")));
    if input.is_none() && output.is_none() {
        return None;
    }
    let prompt_details = usage
        .get("prompt_tokens_details")
        .or(usage.get("input_tokens_details"));
    let completion_details = usage
        .get("completion_tokens_details")
        .or(usage.get("output_tokens_details"));
    let detail = |d: Option<&Value>, key: &str| num(d.and_then(|d| d.get(key)));
    Some(Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
        cached_input_tokens: detail(prompt_details, "cached_tokens"),
        cache_write_tokens: num(usage.get("cache_write_tokens"))
            .or(detail(prompt_details, "cache_write_tokens")),
        reasoning_tokens: detail(completion_details, "reasoning_tokens"),
    })
}

/// A token count: a non-negative integer (or an integral float, as some
/// servers send).
fn as_count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 1e18)
            .map(|f| f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_chat_usage() {
        let u = from_openai(&json!({
            "prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 8}
        }))
        .unwrap();
        assert_eq!(u.input_tokens, 100);
        assert_eq!(u.output_tokens, 20);
        assert_eq!(u.cached_input_tokens, Some(64));
        assert_eq!(u.reasoning_tokens, Some(8));
        assert_eq!(u.cache_write_tokens, None);
    }

    #[test]
    fn whole_response_and_embeddings() {
        let u = from_openai(&json!({"object":"list","usage":{"prompt_tokens":7,"total_tokens":7}}))
            .unwrap();
        assert_eq!(u, Usage::new(7, 0));
    }

    #[test]
    fn cache_writes_and_responses_api() {
        let u = from_openai(&json!({
            "prompt_tokens": 10, "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 9}
        }))
        .unwrap();
        assert_eq!(u.cache_write_tokens, Some(9));
        let u = from_openai(
            &json!({"prompt_tokens": 10, "completion_tokens": 1, "cache_write_tokens": 3}),
        )
        .unwrap();
        assert_eq!(u.cache_write_tokens, Some(3));
        let u = from_openai(&json!({
            "input_tokens": 5, "output_tokens": 6,
            "input_tokens_details": {"cached_tokens": 2},
            "output_tokens_details": {"reasoning_tokens": 4}
        }))
        .unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (5, 6));
        assert_eq!(
            (u.cached_input_tokens, u.reasoning_tokens),
            (Some(2), Some(4))
        );
    }

    #[test]
    fn absent_usage() {
        assert_eq!(from_openai(&json!(null)), None);
        assert_eq!(from_openai(&json!({"usage": null})), None);
        assert_eq!(from_openai(&json!({"total_tokens": 3})), None);
        assert_eq!(
            from_openai(&json!({"prompt_tokens": 2.0})),
            Some(Usage::new(2, 0))
        );
    }
}
