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
    let prompt_details = usage.get("prompt_tokens_details").or(usage.get("input_tokens_details"));
    let completion_details = usage.get("completion_tokens_details").or(usage.get("output_tokens_details"));
    let detail = |d: Option<&Value>, key: &str| num(d.and_then(|d| d.get(key)));
    Some(Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
        cached_input_tokens: detail(prompt_details, "cached_tokens"),
        cache_write_tokens: num(usage.get("cache_write_tokens")).or(detail(prompt_details, "cache_write_tokens")),
        reasoning_tokens: detail(completion_details, "reasoning_tokens"),
    })
}

/// Usage from an Anthropic Messages `usage` object (or the whole response).
///
/// Anthropic's `input_tokens` counts only the uncached part of the prompt,
/// so the normalised input is `input_tokens + cache_read_input_tokens +
/// cache_creation_input_tokens`; cached input is `cache_read_input_tokens`
/// and cache writes are `cache_creation_input_tokens`. `None` when there is
/// no such object or it reports neither input nor output tokens.
pub fn from_anthropic(value: &Value) -> Option<Usage> {
    let usage = match value.get("usage") {
        Some(inner @ Value::Object(_)) => inner,
        _ => value,
    };
    let usage = usage.as_object()?;
    let num = |key: &str| usage.get(key).and_then(as_count);
    let (input, output) = (num("input_tokens"), num("output_tokens"));
    if input.is_none() && output.is_none() {
        return None;
    }
    let read = num("cache_read_input_tokens");
    let write = num("cache_creation_input_tokens");
    let total = input.unwrap_or(0).saturating_add(read.unwrap_or(0)).saturating_add(write.unwrap_or(0));
    Some(Usage {
        input_tokens: total,
        output_tokens: output.unwrap_or(0),
        cached_input_tokens: read,
        cache_write_tokens: write,
        reasoning_tokens: None,
    })
}

/// Usage from a Gemini `usageMetadata` object (or the whole response).
///
/// `promptTokenCount` already includes the cached content
/// (`cachedContentTokenCount`, the cached input). Output is
/// `candidatesTokenCount + thoughtsTokenCount` (thinking tokens are billed as
/// output; reasoning is `thoughtsTokenCount`, a subset). `None` when there is
/// no such object or it reports neither prompt nor candidate tokens.
pub fn from_gemini(value: &Value) -> Option<Usage> {
    let usage = match value.get("usageMetadata") {
        Some(inner @ Value::Object(_)) => inner,
        _ => value,
    };
    let usage = usage.as_object()?;
    let num = |key: &str| usage.get(key).and_then(as_count);
    let (prompt, candidates) = (num("promptTokenCount"), num("candidatesTokenCount"));
    let thoughts = num("thoughtsTokenCount");
    if prompt.is_none() && candidates.is_none() && thoughts.is_none() {
        return None;
    }
    Some(Usage {
        input_tokens: prompt.unwrap_or(0),
        output_tokens: candidates.unwrap_or(0).saturating_add(thoughts.unwrap_or(0)),
        cached_input_tokens: num("cachedContentTokenCount"),
        cache_write_tokens: None,
        reasoning_tokens: thoughts,
    })
}

/// A token count: a non-negative integer (or an integral float, as some
/// servers send).
fn as_count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_f64().and_then(count_of_f64))
}

/// A float read as a token count: an integral, finite, non-negative value
/// below 10^18.
pub(crate) fn count_of_f64(f: f64) -> Option<u64> {
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1e18).then_some(f as u64)
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
        let u = from_openai(&json!({"object":"list","usage":{"prompt_tokens":7,"total_tokens":7}})).unwrap();
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
        let u = from_openai(&json!({"prompt_tokens": 10, "completion_tokens": 1, "cache_write_tokens": 3})).unwrap();
        assert_eq!(u.cache_write_tokens, Some(3));
        let u = from_openai(&json!({
            "input_tokens": 5, "output_tokens": 6,
            "input_tokens_details": {"cached_tokens": 2},
            "output_tokens_details": {"reasoning_tokens": 4}
        }))
        .unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (5, 6));
        assert_eq!((u.cached_input_tokens, u.reasoning_tokens), (Some(2), Some(4)));
    }

    #[test]
    fn absent_usage() {
        assert_eq!(from_openai(&json!(null)), None);
        assert_eq!(from_openai(&json!({"usage": null})), None);
        assert_eq!(from_openai(&json!({"total_tokens": 3})), None);
        assert_eq!(from_openai(&json!({"prompt_tokens": 2.0})), Some(Usage::new(2, 0)));
    }

    #[test]
    fn anthropic_usage_totals_cached_input() {
        let u = from_anthropic(&json!({"id": "msg_1", "usage": {
            "input_tokens": 3, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000,
            "output_tokens": 50, "service_tier": "standard"}}))
        .unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (2103, 50));
        assert_eq!((u.cached_input_tokens, u.cache_write_tokens), (Some(2000), Some(100)));
        assert_eq!(u.reasoning_tokens, None);
        let u = from_anthropic(&json!({"input_tokens": 9, "output_tokens": 1})).unwrap();
        assert_eq!(u, Usage::new(9, 1));
        assert_eq!(from_anthropic(&json!({"usage": {}})), None);
        assert_eq!(from_anthropic(&json!("x")), None);
    }

    #[test]
    fn gemini_usage_includes_cached_and_thoughts() {
        let u = from_gemini(&json!({"candidates": [], "usageMetadata": {
            "promptTokenCount": 323388, "candidatesTokenCount": 397, "totalTokenCount": 323785,
            "cachedContentTokenCount": 323383}}))
        .unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (323388, 397));
        assert_eq!(u.cached_input_tokens, Some(323383));
        assert_eq!(u.reasoning_tokens, None);
        let u =
            from_gemini(&json!({"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 7})).unwrap();
        assert_eq!((u.output_tokens, u.reasoning_tokens), (12, Some(7)));
        assert_eq!(from_gemini(&json!({"usageMetadata": {"totalTokenCount": 3}})), None);
        assert_eq!(from_gemini(&json!(null)), None);
    }
}
