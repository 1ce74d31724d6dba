//! Properties of classifying any answer (the `classify` fuzz target's
//! checks on generated answers, and its seeds and kept crashes replayed):
//! no panic, the status kept, messages bounded, wait hints only where the
//! host retries, and the duration readers exact on what they accept.

use proptest::prelude::*;

use crate::{Api, Class, classify, http, usage};

const APIS: [Api; 7] = [
    Api::Generic,
    Api::OpenAiChat,
    Api::OpenAiCompletions,
    Api::OpenAiResponses,
    Api::OpenAiEmbeddings,
    Api::AnthropicMessages,
    Api::GeminiGenerateContent,
];

/// What must hold for any answer.
fn check(api: Api, status: u16, headers: &[(String, String)], body: &[u8]) {
    match classify(api, status, headers, body) {
        Ok(answer) => {
            assert!((200..300).contains(&status));
            if let Some(m) = &answer.metadata {
                assert!(serde_json::from_str::<serde_json::Value>(m).is_ok_and(|v| v.is_object()), "{m}");
            }
        }
        Err(f) => {
            assert_eq!(f.http_status, Some(status));
            assert!(!f.message.is_empty() && f.message.len() <= 8 << 10, "{} bytes", f.message.len());
            // Anthropic's and Gemini's rules drop the wait of a class the
            // host does not retry; OpenAI's keep an unrefined error as it is.
            if matches!(api, Api::AnthropicMessages | Api::GeminiGenerateContent) && !f.class.is_retryable() {
                assert_eq!(f.retry_after_ms, None, "{f:?}");
            }
            if let Some(b) = &f.response_body {
                assert!(serde_json::from_str::<serde_json::Value>(b).is_ok(), "{b}");
            }
        }
    }
}

/// A body that is sometimes a provider's error or answer, sometimes not.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        ".{0,64}".prop_map(String::into_bytes),
        (
            prop::sample::select(vec![
                "error",
                "type",
                "message",
                "status",
                "details",
                "choices",
                "content",
                "candidates",
                "usage",
                "usageMetadata",
                "stop_reason",
                "finishReason",
                "output",
                "data"
            ]),
            prop::sample::select(vec![
                "null",
                "1",
                "-1",
                "1e999",
                "\"x\"",
                "[]",
                "{}",
                "[{}]",
                "\"RESOURCE_EXHAUSTED\"",
                "{\"type\":\"rate_limit_error\",\"message\":\"try again in 1m30s\"}",
                "[{\"retryDelay\":\"9.5s\"}]",
                "[{\"message\":{\"content\":null},\"finish_reason\":\"length\"}]",
                "{\"prompt_tokens\":18446744073709551615}"
            ]),
        )
            .prop_map(|(k, v)| format!("{{\"{k}\":{v}}}").into_bytes()),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop::sample::select(vec![
                "retry-after",
                "Retry-After-Ms",
                "x-ratelimit-reset-requests",
                "anthropic-ratelimit-requests-reset",
                "anthropic-ratelimit-tokens-remaining",
                "x-other",
            ]),
            prop_oneof![".{0,12}", "[0-9]{0,25}(\\.[0-9]{0,25})?", "([0-9]{1,3}(h|m|s|ms|us|µs|ns)){1,3}"],
        )
            .prop_map(|(k, v)| (k.to_string(), v)),
        0..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_answer_is_classified(api in prop::sample::select(APIS.to_vec()), status in prop_oneof![100u16..600, any::<u16>()], headers in headers(), body in body()) {
        check(api, status, &headers, &body);
    }

    /// Go-style durations as OpenAI writes them read back exactly (in
    /// milliseconds, rounded up), wherever the phrase sits in a message.
    #[test]
    fn go_durations_read_back_exactly(h in 0u64..100, m in 0u64..60, s in 0u64..60, ms in 0u64..1000, before in "[0-9 ,.:()é中-]{0,16}", after in "([ .,;][ .,;a-z]{0,7})?") {
        let text = match (h, m) {
            (0, 0) => format!("{s}.{ms:03}s"),
            (0, _) => format!("{m}m{s}.{ms:03}s"),
            _ => format!("{h}h{m}m{s}.{ms:03}s"),
        };
        let expected = ((h * 60 + m) * 60 + s) * 1000 + ms;
        prop_assert_eq!(http::parse_duration_ms(&format!("{text}{after}")), Some(expected));
        prop_assert_eq!(http::parse_try_again_in(&format!("{before} Please try again in {text}{after}")), Some(expected));
    }

    /// `retry-after` seconds and `retry-after-ms` read back exactly, rounded up.
    #[test]
    fn retry_after_values_read_back(secs in 0u64..10_000_000, frac in 0u32..1000) {
        prop_assert_eq!(http::parse_retry_after_header(&secs.to_string()), Some(secs * 1000));
        prop_assert_eq!(http::parse_retry_after_header(&format!(" {secs}.{frac:03} ")), Some(secs * 1000 + u64::from(frac)));
        prop_assert_eq!(http::parse_retry_after_ms_header(&format!("{secs}.{frac:03}")), Some(secs + u64::from(frac > 0)));
    }

    /// Anthropic's cache counts add into the input, saturating.
    #[test]
    fn anthropic_usage_counts_the_cache(input in any::<u64>(), read in any::<u64>(), write in any::<u64>(), output in any::<u64>()) {
        let json = serde_json::json!({"usage": {"input_tokens": input, "cache_read_input_tokens": read,
            "cache_creation_input_tokens": write, "output_tokens": output}});
        let u = usage::from_anthropic(&json).expect("usage");
        prop_assert_eq!(u.input_tokens, input.saturating_add(read).saturating_add(write));
        prop_assert_eq!((u.cached_input_tokens, u.cache_write_tokens, u.output_tokens), (Some(read), Some(write), output));
    }
}

/// The `classify` fuzz target's seeds and kept crashes, replayed (its text
/// format: `<api> <status>`, headers, a blank line, the body).
#[test]
fn replays_the_fuzz_inputs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(dir.join(kind).join("classify")) else { continue };
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).expect("read");
            let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
                Some(i) => (&data[..i], &data[i + 2..]),
                None => (&data[..], &[][..]),
            };
            let head = String::from_utf8_lossy(head);
            let mut lines = head.lines();
            let first = lines.next().unwrap_or_default();
            let (api, status) = first.split_once(' ').unwrap_or((first, ""));
            let status = status.trim().parse().unwrap_or(200);
            let headers: Vec<(String, String)> = lines
                .map(|l| {
                    l.split_once(':')
                        .map_or((l.to_string(), String::new()), |(k, v)| (k.trim().into(), v.trim_start().into()))
                })
                .collect();
            let api = match api {
                "openai-chat" => Api::OpenAiChat,
                "openai-completions" => Api::OpenAiCompletions,
                "openai-responses" => Api::OpenAiResponses,
                "openai-embeddings" => Api::OpenAiEmbeddings,
                "anthropic" => Api::AnthropicMessages,
                "gemini" => Api::GeminiGenerateContent,
                _ => Api::Generic,
            };
            for a in [api, Api::Generic] {
                check(a, status, &headers, body);
            }
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no fuzz inputs under {}", dir.display());
    // A seed the classifier must get right, to show the replay reads them.
    let e = classify(Api::GeminiGenerateContent, 503, &[], br#"{"error":{"code":503,"status":"UNAVAILABLE"}}"#);
    assert_eq!(e.map_err(|f| f.class), Err(Class::Overloaded));
}
