//! The plugin's own JSON work for one item, natively, N times: building a
//! prompt-only chat request and reading an OpenAI-style 2xx answer (the
//! shape the benchmark's mock sends). For instruction counts of the
//! per-item path without the host around it:
//!
//! ```sh
//! cargo build --release --manifest-path plugins/Cargo.toml --target x86_64-unknown-linux-gnu \
//!     -p batchllm-plugin-openai-core --example per_item
//! valgrind --tool=callgrind plugins/target/x86_64-unknown-linux-gnu/release/examples/per_item 2000
//! valgrind --tool=callgrind plugins/target/x86_64-unknown-linux-gnu/release/examples/per_item 6000
//! ```
//!
//! The difference of the two totals divided by 4,000 is the instructions
//! per item. A second argument `responses` runs a Responses API item and
//! answer instead of a chat one.

use batchllm_plugin_openai_core::config::Config;
use batchllm_plugin_openai_core::request;
use batchllm_plugin_sdk::{Item, classify};
use std::hint::black_box;

/// An answer as the benchmark's mock sends it (keys sorted, as its
/// `serde_json` writes them).
const ANSWER: &str = concat!(
    r#"{"choices":[{"finish_reason":"stop","index":0,"logprobs":null,"message":{"content":"echo: Summarise item "#,
    r#"number 1234 in one line.","refusal":null,"role":"assistant"}}],"created":1764806400,"#,
    r#""id":"chatcmpl-mock-1234","model":"gpt-4o-mini","object":"chat.completion","system_fingerprint":"fp_mock","#,
    r#""usage":{"completion_tokens":11,"completion_tokens_details":{"reasoning_tokens":0},"prompt_tokens":9,"#,
    r#""prompt_tokens_details":{"cached_tokens":0},"total_tokens":20}}"#
);

/// A Responses API answer as OpenAI sends it (reasoning item included).
const RESPONSES_ANSWER: &str = concat!(
    r#"{"id":"resp_1234","object":"response","created_at":1764806400,"status":"completed","error":null,"#,
    r#""incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-4.1-mini-2025-04-14","#,
    r#""output":[{"id":"msg_1234","type":"message","status":"completed","content":[{"type":"output_text","#,
    r#""annotations":[],"logprobs":[],"text":"echo: Summarise item number 1234 in one line."}],"role":"assistant"}],"#,
    r#""parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"#,
    r#""store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"#,
    r#""top_p":1.0,"truncation":"disabled","usage":{"input_tokens":9,"input_tokens_details":{"cached_tokens":0},"#,
    r#""output_tokens":11,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":20},"user":null,"metadata":{}}"#
);

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let responses = std::env::args().nth(2).as_deref() == Some("responses");
    let (endpoint, answer) =
        if responses { (Some("/v1/responses".to_owned()), RESPONSES_ANSWER) } else { (None, ANSWER) };
    let config = match Config::parse(r#"{"base_url":"http://127.0.0.1:18080/v1"}"#) {
        Ok(config) => config,
        Err(e) => panic!("configuration: {}", e.message),
    };
    let item = Item {
        id: "j1234".to_owned(),
        prompt: "Summarise item number 1234 in one line.".to_owned(),
        params: "{}".to_owned(),
        context: None,
        endpoint,
    };
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("content-length".to_owned(), answer.len().to_string()),
        ("date".to_owned(), "Thu, 04 Dec 2026 00:00:00 GMT".to_owned()),
    ];
    let mut bytes = 0usize;
    for _ in 0..n {
        let (endpoint, req) = match request::build_request(black_box(&config), black_box(&item), &[], 30_000) {
            Ok(built) => built,
            Err(e) => panic!("request: {}", e.message),
        };
        bytes += black_box(&req).body.len();
        let body = black_box(answer.as_bytes().to_vec());
        match classify::answer(endpoint.api(), 200, &headers, &body) {
            Ok(success) => bytes += black_box(success).output.len(),
            Err(e) => panic!("answer: {}", e.message),
        }
    }
    println!("{n} items, {bytes} bytes");
}
