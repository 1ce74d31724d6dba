//! One line of the results file, and the helpers that keep it one line.
//!
//! Each line is an OpenAI Batch output line (`id`, `custom_id`, `response`,
//! `error`), so existing tooling can read it, plus one namespaced block,
//! `batchllm`, with what the host knows: status, output, attempts, normalised
//! usage, latency and the failure class. `error` is non-null exactly when the
//! item failed; `response` is present whenever a provider answered.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::{FailureClass, TokenUsage};

/// One line of the results file.
#[derive(Debug, Clone, Serialize)]
pub struct ResultRecord {
    pub id: String,
    pub custom_id: String,
    pub response: Option<ProviderResponse>,
    pub error: Option<ResultError>,
    pub batchllm: HostBlock,
}

impl ResultRecord {
    /// The record of an item whose request was on the wire when whatever ran
    /// it stopped: the provider may have answered (and billed) it, so it is
    /// not sent again; `message` says who stopped and what to do.
    pub fn outcome_unknown(id: &str, line: usize, fingerprint: Fingerprint, message: &str) -> Self {
        Self::failed_without_answer(id, line, fingerprint, FailureClass::OutcomeUnknown, message)
    }

    /// The record of an item that failed as `class` with no answer of the
    /// provider to keep (no attempt recorded, no usage).
    pub fn failed_without_answer(
        id: &str,
        line: usize,
        fingerprint: Fingerprint,
        class: FailureClass,
        message: &str,
    ) -> Self {
        ResultRecord {
            id: line_id(id),
            custom_id: id.to_string(),
            response: None,
            error: Some(ResultError { code: class, message: message.to_string() }),
            batchllm: HostBlock {
                status: ItemStatus::Failed,
                output: None,
                attempts: 0,
                rate_limit_retries: 0,
                usage: TokenUsage::default(),
                latency_ms: 0.0,
                error_class: Some(class),
                http_status: None,
                metadata: None,
                context: None,
                line,
                finished_at: Some(now_rfc3339()),
                fingerprint,
                cost_usd: None,
            },
        }
    }
}

/// The provider's answer, as in OpenAI Batch output.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderResponse {
    pub status_code: u16,
    pub request_id: Option<String>,
    pub body: Box<RawValue>,
}

/// Why an item failed, as in OpenAI Batch output.
#[derive(Debug, Clone, Serialize)]
pub struct ResultError {
    /// The failure class, e.g. `rate_limited`, `auth`, `plugin_trap`.
    pub code: FailureClass,
    pub message: String,
}

/// Terminal status of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Succeeded,
    Failed,
}

/// What the host adds to each line.
#[derive(Debug, Clone, Serialize)]
pub struct HostBlock {
    pub status: ItemStatus,
    /// The plugin's output (e.g. the assistant's text); absent on failure.
    pub output: Option<String>,
    /// Calls to `execute` made for this item.
    pub attempts: u32,
    /// Of those, how many ended rate-limited.
    pub rate_limit_retries: u32,
    /// Tokens over all attempts, failed ones included.
    pub usage: TokenUsage,
    /// From the first attempt's start to the terminal outcome.
    pub latency_ms: f64,
    /// The failure class on failure.
    pub error_class: Option<FailureClass>,
    /// The HTTP status of the last provider answer, if any.
    pub http_status: Option<u16>,
    /// The plugin's metadata (model used, finish reason, ...).
    pub metadata: Option<Value>,
    /// The input's `context` / `metadata`, as written (key order, number
    /// spelling and all).
    pub context: Option<Box<RawValue>>,
    /// The input line number.
    pub line: usize,
    /// When the item got this record (RFC 3339, UTC, milliseconds): the
    /// time axis of `batchllm-host report`.
    pub finished_at: Option<String>,
    /// What this record was computed from, so a resumed run can tell
    /// whether it still answers the current input, plugin and settings.
    pub fingerprint: Fingerprint,
    /// The cost of every attempt's tokens, in US dollars, when the model has
    /// a price (see `crate::cost`).
    pub cost_usd: Option<f64>,
}

/// Short digests of what produced a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The input line's content (canonical JSON), see [`super::Job::fingerprint`].
    pub input: String,
    /// The plugin component's SHA-256 (first 16 hex digits).
    pub plugin: String,
    /// The plugin configuration (canonical JSON, first 16 hex digits).
    pub config: String,
}

/// Now, as a record's `finished_at`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// The first 16 hex digits of the SHA-256 of `bytes`.
pub fn short_digest(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// The OpenAI-style line id for an item: stable across runs.
pub fn line_id(custom_id: &str) -> String {
    let digest = Sha256::digest(custom_id.as_bytes());
    let mut id = String::with_capacity(34);
    id.push_str("batch_req_");
    // The first 12 bytes are the 24 hex digits the id has always had.
    id.push_str(&hex::encode(&digest[..12]));
    id
}

/// Parses a plugin-provided JSON body; keeps non-JSON text as a string.
pub fn body_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// A plugin-provided body for the results file. Valid JSON on one line (the
/// usual case) is kept as the plugin gave it: checked, not parsed into a
/// tree and printed again. JSON spread over lines is printed compactly (a
/// results line must stay one line), and text that is not JSON becomes a
/// JSON string. Text with a `\uD800`-`\uDFFF` escape takes the parsing
/// path too: the raw check does not validate escapes, and a lone surrogate
/// (a reply cut inside an emoji) would make the line unreadable to strict
/// JSON readers.
pub fn body_json(text: &str) -> Box<RawValue> {
    if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_none()
        && !has_surrogate_escape(text)
        && let Ok(raw) = RawValue::from_string(text.to_owned())
    {
        return raw;
    }
    raw_json(&body_value(text))
}

/// Whether `text` holds a `\u` escape of a UTF-16 surrogate (`\uD8xx` to `\uDFxx`).
fn has_surrogate_escape(text: &str) -> bool {
    // Runs on every record: a byte search for backslashes, which most
    // bodies have few of, instead of a substring search set up per call.
    let bytes = text.as_bytes();
    memchr::memchr_iter(b'\\', bytes)
        .any(|i| matches!(bytes.get(i + 1..i + 4), Some([b'u', b'd' | b'D', b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'])))
}

/// `value` as raw JSON text.
pub fn raw_json(value: &Value) -> Box<RawValue> {
    // Printing a `Value` cannot fail, and its output is valid JSON.
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| null_json())
}

/// JSON `null`.
pub fn null_json() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_kept_as_given_on_one_line_and_never_break_the_line() {
        assert_eq!(body_json(r#"{"b": 1, "a": [true]}"#).get(), r#"{"b": 1, "a": [true]}"#, "kept as given");
        assert_eq!(body_json("{\n  \"a\": 1\n}\n").get(), r#"{"a":1}"#, "multi-line JSON printed compactly");
        assert_eq!(body_json("not json\nat all").get(), r#""not json\nat all""#, "text becomes a string");
        assert_eq!(body_json("{\"a\":").get(), r#""{\"a\":""#, "truncated JSON becomes a string");
        assert_eq!(null_json().get(), "null");
        // A lone surrogate is not valid for strict readers: parsed, refused,
        // kept as a string; a proper pair survives the parse.
        assert_eq!(body_json(r#"{"c":"\ud83d"}"#).get(), r#""{\"c\":\"\\ud83d\"}""#);
        assert_eq!(body_json(r#"{"c":"\ud83d\ude00"}"#).get(), "{\"c\":\"\u{1F600}\"}");
    }

    /// JSON by RFC 8259 as strict readers take it: serde_json's `Value`
    /// refuses lone surrogates; numbers beyond `f64` (`1e999`) are still
    /// grammatical, so those are checked by the grammar only.
    fn strict_json(text: &str) -> bool {
        match serde_json::from_str::<Value>(text) {
            Ok(_) => true,
            Err(e) if e.to_string().contains("number out of range") => {
                serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
            }
            Err(_) => false,
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            "\\PC{0,8}|[\u{0}-\u{1f}\"\\\\\u{2028}]{0,4}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::vec((".{0,4}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Whatever a plugin hands back: one line of valid JSON.
        #[test]
        fn any_body_becomes_one_line_of_json(text in ".{0,48}|[\\[\\]{}\",:0-9eE.+\\\\nuDd8\n\r ]{0,32}") {
            let raw = body_json(&text);
            proptest::prop_assert!(!raw.get().contains(['\n', '\r']), "{:?}", raw.get());
            proptest::prop_assert!(strict_json(raw.get()), "{:?}", raw.get());
        }

        /// JSON on one line is kept byte for byte; spread over lines, it is
        /// the same value on one line.
        #[test]
        fn json_bodies_keep_their_value(value in json_value()) {
            let compact = serde_json::to_string(&value).expect("print");
            let kept = body_json(&compact);
            proptest::prop_assert_eq!(kept.get(), compact.as_str());
            let pretty = serde_json::to_string_pretty(&value).expect("print");
            let kept: Value = serde_json::from_str(body_json(&pretty).get()).expect("JSON");
            proptest::prop_assert_eq!(kept, value);
        }
    }

    #[test]
    fn line_ids_are_stable_and_shaped_like_openai() {
        assert_eq!(line_id("a"), line_id("a"));
        assert_ne!(line_id("a"), line_id("b"));
        assert!(line_id("a").starts_with("batch_req_"));
        // The id of earlier versions: a resume matches records by it.
        assert_eq!(line_id("j1"), "batch_req_08243666f926aa4e5b884b8e");
    }
}
