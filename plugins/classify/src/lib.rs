//! How a provider's HTTP answer becomes a success or a classified failure:
//! one implementation for the host and every plugin.
//!
//! The rules are the same in every language: the status table
//! ([`http::class_for_status`]), the wait a provider asks for (`retry-after`,
//! `retry-after-ms`, Google `RetryInfo`, "try again in 644ms"), the
//! provider's error codes ([`openai`], [`anthropic`], [`gemini`]), token
//! usage ([`usage`]), what an answer's output is, and which answers have
//! none (`no-content`). The Rust plugins link this crate through their SDK;
//! the host links it too and offers it to plugins in every other language as
//! the WIT `classify` interface, so JavaScript, Python and Go call it instead
//! of porting it.
//!
//! Pure functions of their arguments (no I/O, no clock, no state) over
//! types of its own ([`Failure`], [`Answer`], [`Class`], [`Usage`]): the
//! WIT bindings differ between the host and the guests, and each side
//! converts at its edge.

pub mod anthropic;
pub mod gemini;
pub mod google_rpc;
pub mod http;
pub mod openai;
pub mod text;
pub mod usage;

mod answer;
mod openai_typed;

pub use answer::{MAX_EXCERPT_BYTES, expect_object, invalid_answer, no_content, parse_json};

use serde_json::Value;

/// Why a call failed: the WIT `error-class` (0.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    RateLimited,
    Overloaded,
    Timeout,
    Network,
    InvalidResponse,
    ClientError,
    Auth,
    QuotaExhausted,
    TooLarge,
    Other,
    /// A 2xx answer with nothing to return (budget spent, filtered, refused,
    /// blocked, no choice): the same request gets the same answer.
    NoContent,
}

impl Class {
    /// Every class, in the WIT order.
    pub const ALL: [Class; 11] = [
        Class::RateLimited,
        Class::Overloaded,
        Class::Timeout,
        Class::Network,
        Class::InvalidResponse,
        Class::ClientError,
        Class::Auth,
        Class::QuotaExhausted,
        Class::TooLarge,
        Class::Other,
        Class::NoContent,
    ];

    /// Whether the host may make another attempt after a failure of this
    /// class: every class but `client-error`, `auth`, `quota-exhausted`,
    /// `too-large` and `no-content`, which no retry can cure.
    pub fn is_retryable(self) -> bool {
        !matches!(self, Class::ClientError | Class::Auth | Class::QuotaExhausted | Class::TooLarge | Class::NoContent)
    }

    /// The WIT (kebab-case) name, e.g. `"rate-limited"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::RateLimited => "rate-limited",
            Class::Overloaded => "overloaded",
            Class::Timeout => "timeout",
            Class::Network => "network",
            Class::InvalidResponse => "invalid-response",
            Class::ClientError => "client-error",
            Class::Auth => "auth",
            Class::QuotaExhausted => "quota-exhausted",
            Class::TooLarge => "too-large",
            Class::Other => "other",
            Class::NoContent => "no-content",
        }
    }

    /// Parses a WIT (kebab-case) class name.
    pub fn from_name(name: &str) -> Option<Self> {
        Class::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// Tokens one provider call consumed (the WIT `usage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// The whole prompt, cached tokens included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    /// Usage with input and output tokens and no breakdown.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage { input_tokens, output_tokens, ..Usage::default() }
    }
}

/// A classified failure (the WIT `strategy-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: Class,
    pub message: String,
    pub http_status: Option<u16>,
    pub retry_after_ms: Option<u64>,
    /// Tokens the failed call was still billed for.
    pub usage: Option<Usage>,
    /// The provider's body (JSON text), for the results file.
    pub response_body: Option<String>,
}

impl Failure {
    /// A failure of `class` with `message`; every optional field unset.
    pub fn new(class: Class, message: impl Into<String>) -> Self {
        Failure {
            class,
            message: message.into(),
            http_status: None,
            retry_after_ms: None,
            usage: None,
            response_body: None,
        }
    }

    /// Sets the HTTP status.
    pub fn with_http_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    /// Sets the provider's body.
    pub fn with_response_body(mut self, body: impl Into<String>) -> Self {
        self.response_body = Some(body.into());
        self
    }

    /// Settles the class: sets `class` and, when the host does not retry
    /// it, drops the wait hint, which would only mislead.
    pub fn reclassified(mut self, class: Class) -> Self {
        self.class = class;
        if !class.is_retryable() {
            self.retry_after_ms = None;
        }
        self
    }
}

/// A usable answer (the WIT `success`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub output: String,
    pub usage: Option<Usage>,
    pub response_body: Option<String>,
    /// A JSON object: `model`, `id`, the finish reason, ...
    pub metadata: Option<String>,
}

/// The provider API an answer comes from (the WIT `classify.api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// Any HTTP API: status, wait hints, the usual message fields,
    /// OpenAI-style usage; a 2xx JSON answer is its own output.
    Generic,
    OpenAiChat,
    OpenAiCompletions,
    OpenAiResponses,
    OpenAiEmbeddings,
    AnthropicMessages,
    GeminiGenerateContent,
}

/// Classifies one HTTP answer of `api`: the whole rule set, as the host
/// offers it to plugins (`classify.classify`).
pub fn classify(api: Api, status: u16, headers: &[(String, String)], body: &[u8]) -> Result<Answer, Failure> {
    match api {
        Api::Generic => generic(status, headers, body),
        Api::OpenAiChat => openai::interpret(openai::Endpoint::ChatCompletions, status, headers, body),
        Api::OpenAiCompletions => openai::interpret(openai::Endpoint::Completions, status, headers, body),
        Api::OpenAiResponses => openai::interpret(openai::Endpoint::Responses, status, headers, body),
        Api::OpenAiEmbeddings => openai::interpret(openai::Endpoint::Embeddings, status, headers, body),
        Api::AnthropicMessages => anthropic::interpret(status, headers, body),
        Api::GeminiGenerateContent => gemini::interpret(status, headers, body),
    }
}

/// [`Api::Generic`]: a non-2xx answer by [`http::from_http_bytes`]; a 2xx
/// one must be JSON and is its own output, with OpenAI-style usage.
fn generic(status: u16, headers: &[(String, String)], body: &[u8]) -> Result<Answer, Failure> {
    if !(200..300).contains(&status) {
        return Err(http::from_http_bytes(status, headers, body));
    }
    let (text, json) = parse_json(status, body)?;
    Ok(Answer {
        output: text.clone(),
        usage: usage::from_openai(&json),
        response_body: Some(text),
        metadata: Some(Value::Object(serde_json::Map::new()).to_string()),
    })
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip_and_retryability() {
        for class in Class::ALL {
            assert_eq!(Class::from_name(class.as_str()), Some(class));
        }
        assert_eq!(Class::from_name("RateLimited"), None);
        let fatal = [Class::ClientError, Class::Auth, Class::QuotaExhausted, Class::TooLarge, Class::NoContent];
        for class in Class::ALL {
            assert_eq!(class.is_retryable(), !fatal.contains(&class), "{}", class.as_str());
        }
        let f = Failure::new(Class::RateLimited, "m").with_http_status(200);
        let f = Failure { retry_after_ms: Some(5), ..f }.reclassified(Class::NoContent);
        assert_eq!((f.class, f.retry_after_ms, f.http_status), (Class::NoContent, None, Some(200)));
    }

    #[test]
    fn generic_answers() {
        let a = classify(Api::Generic, 200, &[], br#"{"x":1,"usage":{"prompt_tokens":2}}"#).expect("ok");
        assert_eq!(a.output, r#"{"x":1,"usage":{"prompt_tokens":2}}"#);
        assert_eq!(a.usage, Some(Usage::new(2, 0)));
        let e = classify(Api::Generic, 200, &[], b"<html>").expect_err("not JSON");
        assert_eq!(e.class, Class::InvalidResponse);
        let e = classify(Api::Generic, 429, &[("retry-after".into(), "2".into())], b"").expect_err("429");
        assert_eq!((e.class, e.retry_after_ms), (Class::RateLimited, Some(2000)));
    }
}
