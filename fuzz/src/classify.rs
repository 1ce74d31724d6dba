//! Provider answers through the classifier every plugin uses
//! (`batchllm-classify`): status, headers and body to a success or a
//! classified failure, and the readers under it (wait hints, durations,
//! usage, Google RPC details, Anthropic rate-limit headers).
//!
//! Input format, an HTTP answer as text:
//! ```text
//! <api> <status>
//! <header>: <value>
//!
//! <body bytes>
//! ```
//! `api` is one of `generic`, `openai-chat`, `openai-completions`,
//! `openai-responses`, `openai-embeddings`, `anthropic`, `gemini`.

use batchllm_classify::{Api, anthropic, google_rpc, http, usage};

/// The longest error message the classifier may build (its excerpts are
/// cut to 1-2 KiB; a message must never carry a whole body).
const MAX_MESSAGE: usize = 8 << 10;

/// An HTTP answer parsed from the harness's text format.
pub struct Answer {
    pub api: Api,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads the text format (see the module docs); any bytes give an answer.
pub fn parse(data: &[u8]) -> Answer {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], data[i + 2..].to_vec()),
        None => (data, Vec::new()),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default();
    let (api, status) = first.split_once(' ').unwrap_or((first, ""));
    let api = match api {
        "generic" => Api::Generic,
        "openai-chat" => Api::OpenAiChat,
        "openai-completions" => Api::OpenAiCompletions,
        "openai-responses" => Api::OpenAiResponses,
        "openai-embeddings" => Api::OpenAiEmbeddings,
        "anthropic" => Api::AnthropicMessages,
        "gemini" => Api::GeminiGenerateContent,
        _ => [Api::Generic, Api::OpenAiChat, Api::AnthropicMessages, Api::GeminiGenerateContent][api.len() % 4],
    };
    let status = status.trim().parse().unwrap_or(200);
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap_or((l, ""));
            (k.trim().to_string(), v.trim_start().to_string())
        })
        .collect();
    Answer { api, status, headers, body }
}

/// Input: see the module docs.
pub fn run(data: &[u8]) {
    let Answer { api, status, headers, body } = parse(data);
    match batchllm_classify::classify(api, status, &headers, &body) {
        Ok(answer) => {
            assert!((200..300).contains(&status), "a {status} answer taken as a success");
            if let Some(metadata) = &answer.metadata {
                let parsed: serde_json::Value = serde_json::from_str(metadata).expect("metadata is JSON");
                assert!(parsed.is_object(), "metadata is an object: {metadata}");
            }
            if let Some(body) = &answer.response_body {
                assert!(serde_json::from_str::<serde_json::Value>(body).is_ok(), "a response body that is not JSON");
            }
        }
        Err(failure) => {
            assert_eq!(failure.http_status, Some(status), "{failure:?}");
            assert!(!failure.message.is_empty());
            assert!(failure.message.len() <= MAX_MESSAGE, "a {}-byte message", failure.message.len());
            // Anthropic's and Gemini's rules drop the wait of a class the
            // host does not retry (OpenAI's keep an unrefined error as it is).
            if matches!(api, Api::AnthropicMessages | Api::GeminiGenerateContent) && !failure.class.is_retryable() {
                assert_eq!(failure.retry_after_ms, None, "a wait hint on a class that is not retried");
            }
            // A 2xx may still be a rate limit: an error embedded in a 2xx
            // body is classified by what it says (Anthropic's `"type":
            // "error"`, a proxy's `error.code: 429`), on purpose.
            if let Some(body) = &failure.response_body {
                assert!(serde_json::from_str::<serde_json::Value>(body).is_ok(), "a response body that is not JSON");
            }
        }
    }

    for (_, value) in &headers {
        let _ = http::parse_retry_after_header(value);
        let _ = http::parse_retry_after_ms_header(value);
        let _ = http::parse_duration_ms(value);
    }
    // Each key is a header's name without the prefix, once (a name with
    // the prefix twice keeps the second: it is what the server sent).
    for (key, _) in anthropic::rate_limits(&headers) {
        let name = format!("anthropic-ratelimit-{key}");
        assert!(headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)), "{key} names no header");
    }
    let text = String::from_utf8_lossy(&body);
    let _ = http::parse_try_again_in(&text);
    let _ = http::provider_message(None, &text);
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
        if let Some(u) = usage::from_anthropic(&json) {
            // Anthropic's input leaves the cache out; the normalised input counts it.
            assert!(u.input_tokens >= u.cached_input_tokens.unwrap_or(0), "{u:?}");
        }
        let _ = (usage::from_openai(&json), usage::from_gemini(&json));
        let _ = google_rpc::retry_delay_ms(&json);
        let _ = google_rpc::only_per_day_quotas(&json);
        let _ = google_rpc::error_reasons(&json);
        let _ = google_rpc::status(&json);
        let _ = http::provider_message(Some(&json), &text);
    }
}
