//! A job: one input line, as the engine and the plugin see it.
//!
//! `params` and `context` are kept as the caller's JSON text. Parsing them
//! into `serde_json::Value` and printing them again sorted the keys, turned
//! `1.10` into `1.1` and `123456789012345678901234567890` into
//! `1.2345678901234568e+29` (an id silently corrupted); the plugin now gets
//! the parameters as written and the results file carries the context as
//! written. What the host itself needs from the parameters (the model, the
//! output cap) is read once, when the line is parsed.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Parameter names providers use for the output cap.
const MAX_OUTPUT_KEYS: [&str; 3] = ["max_tokens", "max_completion_tokens", "max_output_tokens"];

/// A job's provider parameters: the JSON object as the caller wrote it, and
/// the two facts the host reads from it.
#[derive(Debug, Clone)]
pub struct Params {
    /// Valid JSON text of an object (checked when the line was parsed).
    raw: String,
    model: Option<String>,
    max_output_tokens: Option<u64>,
}

impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Default for Params {
    /// No parameters: `{}`.
    fn default() -> Self {
        Params { raw: "{}".to_string(), model: None, max_output_tokens: None }
    }
}

impl Params {
    /// `raw` is the object's text; `parsed` the same object, parsed (the
    /// caller has it already, for the fingerprint).
    pub fn new(raw: &RawValue, parsed: &Map<String, Value>) -> Self {
        Params::read(raw.get().to_string(), parsed)
    }

    /// Parameters from a parsed object (tests, and callers that build jobs).
    pub fn from_map(map: &Map<String, Value>) -> Self {
        Params::read(serde_json::to_string(map).unwrap_or_else(|_| "{}".to_string()), map)
    }

    fn read(raw: String, map: &Map<String, Value>) -> Self {
        let model = map.get("model").and_then(Value::as_str).map(str::to_string);
        let direct = MAX_OUTPUT_KEYS.iter().find_map(|k| map.get(*k).and_then(Value::as_u64));
        let max_output_tokens = direct.or_else(|| map.get("generationConfig")?.get("maxOutputTokens")?.as_u64());
        Params { raw, model, max_output_tokens }
    }

    /// Rebuilds parameters from their parts (the spool stores them apart).
    /// `raw` must be the text of a JSON object that [`Params::new`] once checked.
    pub fn from_parts(raw: String, model: Option<String>, max_output_tokens: Option<u64>) -> Self {
        Params { raw, model, max_output_tokens }
    }

    /// The object's JSON text, as the caller wrote it.
    pub fn text(&self) -> &str {
        &self.raw
    }

    /// `model`, when the parameters name one.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The output cap (`max_tokens`, `max_completion_tokens`,
    /// `max_output_tokens`, or Gemini's `generationConfig.maxOutputTokens`).
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_output_tokens
    }
}

/// One job, as the engine and the plugin see it.
#[derive(Debug, Clone)]
pub struct Job {
    /// 1-based line number in the input.
    pub line: usize,
    /// `custom_id` or `id`.
    pub id: String,
    /// Free-text prompt (empty for OpenAI Batch lines).
    pub prompt: String,
    /// Provider parameters / the OpenAI Batch `body` (a JSON object), as written.
    pub params: Params,
    /// The caller's opaque context, copied to the result as written.
    pub context: Option<Box<RawValue>>,
    /// The OpenAI Batch `url` (e.g. `/v1/chat/completions`).
    pub endpoint: Option<String>,
    /// Digest of the job's content, recorded with its result so a resume can
    /// tell whether the answer still belongs to this input; see [`fingerprint`].
    pub fingerprint: String,
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        self.line == other.line
            && self.id == other.id
            && self.prompt == other.prompt
            && self.params == other.params
            && self.context.as_deref().map(RawValue::get) == other.context.as_deref().map(RawValue::get)
            && self.endpoint == other.endpoint
            && self.fingerprint == other.fingerprint
    }
}

/// The fingerprint of a job's content: the first 16 hex digits of the
/// SHA-256 of its canonical JSON, an object with the fields `context`,
/// `endpoint`, `id`, `params` and `prompt` in that order, `params` and
/// `context` with their keys sorted, numbers as serde_json prints them
/// (integers exactly up to 64 bits, other numbers as the nearest double).
/// So whitespace, key order and the spelling of a number (`1.10`, `1.1`)
/// do not change it; the line number does not either. The definition is
/// the one results files have always carried, so a resume keeps matching
/// records written by earlier versions.
pub fn fingerprint(
    id: &str,
    prompt: &str,
    params: &Map<String, Value>,
    context: Option<&Value>,
    endpoint: Option<&str>,
) -> String {
    #[derive(serde::Serialize)]
    struct Canonical<'a> {
        context: Option<&'a Value>,
        endpoint: Option<&'a str>,
        id: &'a str,
        params: &'a Map<String, Value>,
        prompt: &'a str,
    }
    let canonical = Canonical { context, endpoint, id, params, prompt };
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    super::short_digest(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_keep_their_text_and_read_the_model_and_the_output_cap() {
        let text = r#"{"temperature": 1.10, "model": "m", "max_completion_tokens": 7}"#;
        let parsed: Map<String, Value> = serde_json::from_str(text).expect("object");
        let raw = RawValue::from_string(text.to_string()).expect("raw");
        let p = Params::new(&raw, &parsed);
        assert_eq!(p.text(), text);
        assert_eq!((p.model(), p.max_output_tokens()), (Some("m"), Some(7)));
        let gemini: Map<String, Value> =
            serde_json::from_str(r#"{"generationConfig": {"maxOutputTokens": 9}}"#).expect("object");
        assert_eq!(Params::from_map(&gemini).max_output_tokens(), Some(9));
        assert_eq!(Params::default().text(), "{}");
    }

    #[test]
    fn the_fingerprint_is_the_one_earlier_versions_wrote() {
        // Values taken from records written before params and context were
        // kept as text: a resume must still match them.
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"temperature":1.10,"z":[1,{"b":2,"a":1}]}"#).expect("object");
        let context: Value =
            serde_json::from_str(r#"{"row":123456789012345678901234567890,"k":"v"}"#).expect("context");
        assert_eq!(fingerprint("a", "hi", &params, Some(&context), None), "923b052e68288744");
        let body: Map<String, Value> =
            serde_json::from_str(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}"#)
                .expect("body");
        let metadata = serde_json::json!({"x": 1});
        assert_eq!(fingerprint("b", "", &body, Some(&metadata), Some("/v1/chat/completions")), "f908f340bb46459b");
    }
}
