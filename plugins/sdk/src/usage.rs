//! Token usage from provider responses, normalised to [`Usage`]: the
//! readers of [`batchllm_classify::usage`], in the WIT type.

use crate::Usage;
use serde_json::Value;

/// Usage from an OpenAI-style `usage` object or whole response
/// ([`batchllm_classify::usage::from_openai`]).
pub fn from_openai(value: &Value) -> Option<Usage> {
    batchllm_classify::usage::from_openai(value).map(Usage::from)
}

/// Usage from an Anthropic Messages `usage` object or whole response
/// ([`batchllm_classify::usage::from_anthropic`]).
pub fn from_anthropic(value: &Value) -> Option<Usage> {
    batchllm_classify::usage::from_anthropic(value).map(Usage::from)
}

/// Usage from a Gemini `usageMetadata` object or whole response
/// ([`batchllm_classify::usage::from_gemini`]).
pub fn from_gemini(value: &Value) -> Option<Usage> {
    batchllm_classify::usage::from_gemini(value).map(Usage::from)
}
