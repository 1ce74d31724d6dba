//! `POST /v1/embeddings`: deterministic 8-dimensional unit vectors.
//!
//! Each input's vector comes from a 64-bit FNV-1a hash of its text, expanded
//! with SplitMix64 into 8 values in `[-1, 1)` and normalised to length 1, so
//! equal texts always get equal vectors. `encoding_format: "base64"` returns
//! the little-endian `f32` bytes in base64, as OpenAI does.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::fields::{missing, model, object, wrong_type};
use super::{Endpoint, RenderContext, Rendered};
use crate::tokens;

/// Model name answered when the request names none.
pub(crate) const DEFAULT_MODEL: &str = "mock-embedding-model";

/// Number of dimensions of every embedding.
pub(crate) const DIMENSIONS: usize = 8;

/// The embeddings endpoint.
pub(crate) struct Embeddings;

/// A validated embeddings request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EmbeddingsRequest {
    model: String,
    inputs: Vec<String>,
    base64: bool,
}

impl Endpoint for Embeddings {
    type Request = EmbeddingsRequest;

    fn parse(body: &Value) -> Result<EmbeddingsRequest, ApiError> {
        let body = object(body)?;
        let model = model(body, DEFAULT_MODEL)?;
        let inputs = inputs(body)?;
        let base64 = match body.get("encoding_format").map(Value::as_str) {
            None | Some(Some("float")) => false,
            Some(Some("base64")) => true,
            Some(_) => return Err(wrong_type("encoding_format", "\"float\" or \"base64\"")),
        };
        Ok(EmbeddingsRequest { model, inputs, base64 })
    }

    fn prompt(request: &EmbeddingsRequest) -> Option<String> {
        Some(request.inputs.join("\n"))
    }

    fn charge(request: &EmbeddingsRequest) -> u64 {
        request.inputs.iter().map(|input| tokens::text_tokens(input)).sum()
    }

    fn render(request: &EmbeddingsRequest, _ctx: &RenderContext) -> Rendered {
        let data: Vec<Value> = request
            .inputs
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let vector = embedding(text);
                let embedding = if request.base64 { json!(base64_f32(&vector)) } else { json!(vector) };
                json!({"object": "embedding", "index": index, "embedding": embedding})
            })
            .collect();
        let prompt_tokens = Self::charge(request);
        let usage = json!({"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens});
        let body = json!({"object": "list", "data": data, "model": request.model, "usage": usage});
        Rendered { body, usage }
    }
}

/// `input`: a string or a non-empty array of strings.
fn inputs(body: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let invalid = || wrong_type("input", "a string or a non-empty array of strings");
    match body.get("input") {
        None | Some(Value::Null) => Err(missing("input")),
        Some(Value::String(text)) => Ok(vec![text.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().map(|item| item.as_str().map(str::to_owned).ok_or_else(invalid)).collect()
        }
        Some(_) => Err(invalid()),
    }
}

/// The deterministic unit vector of `text`.
pub(crate) fn embedding(text: &str) -> Vec<f32> {
    let mut state = fnv1a(text.as_bytes());
    let raw: Vec<f64> = (0..DIMENSIONS)
        .map(|_| {
            state = splitmix64(state);
            (state >> 11) as f64 / TWO_POW_53 * 2.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 1.0 };
    raw.iter().map(|x| (x * scale) as f32).collect()
}

const TWO_POW_53: f64 = 9_007_199_254_740_992.0;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Standard base64 (with padding) of the little-endian bytes of `values`.
fn base64_f32(values: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = values.iter().flat_map(|value| value.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let word = chunk.iter().enumerate().fold(0u32, |word, (i, &b)| word | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            let sextet = (word >> (18 - 6 * i)) & 0x3f;
            out.push(if i <= chunk.len() { char::from(ALPHABET[sextet as usize]) } else { '=' });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RenderContext {
        RenderContext { seq: 1, created: 0, cached_ratio: 0.5 }
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding("hello");
        assert_eq!(a.len(), DIMENSIONS);
        assert_eq!(a, embedding("hello"));
        assert_ne!(a, embedding("hello!"));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }

    #[test]
    fn renders_list_with_usage() {
        let request = Embeddings::parse(&json!({"model": "emb", "input": ["abcd", "abcde"]})).expect("valid");
        let rendered = Embeddings::render(&request, &ctx());
        assert_eq!(rendered.body["object"], "list");
        assert_eq!(rendered.body["model"], "emb");
        assert_eq!(rendered.body["data"][1]["index"], 1);
        assert_eq!(rendered.body["data"][0]["embedding"].as_array().map(Vec::len), Some(DIMENSIONS));
        assert_eq!(rendered.usage, json!({"prompt_tokens": 3, "total_tokens": 3}));
        assert_eq!(Embeddings::prompt(&request).as_deref(), Some("abcd\nabcde"));
    }

    #[test]
    fn rejects_bad_inputs() {
        for body in
            [json!({}), json!({"input": []}), json!({"input": [1, 2]}), json!({"input": "x", "encoding_format": "hex"})]
        {
            assert!(Embeddings::parse(&body).is_err(), "{body}");
        }
    }

    #[test]
    fn base64_matches_reference() {
        assert_eq!(base64_f32(&[]), "");
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, -2.0]), "AACAPwAAAMA=");
        let request = Embeddings::parse(&json!({"input": "x", "encoding_format": "base64"})).expect("valid");
        let encoded = &Embeddings::render(&request, &ctx()).body["data"][0]["embedding"];
        assert_eq!(encoded.as_str().map(str::len), Some(44)); // 32 bytes -> 44 chars
    }
}
