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
//! per item.

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

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let config = match Config::parse(r#"{"base_url":"http://127.0.0.1:18080/v1"}"#) {
        Ok(config) => config,
        Err(e) => panic!("configuration: {}", e.message),
    };
    let item = Item {
        id: "j1234".to_owned(),
        prompt: "Summarise item number 1234 in one line.".to_owned(),
        params: "{}".to_owned(),
        context: None,
        endpoint: None,
    };
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("content-length".to_owned(), ANSWER.len().to_string()),
        ("date".to_owned(), "Thu, 04 Dec 2026 00:00:00 GMT".to_owned()),
    ];
    let mut bytes = 0usize;
    for _ in 0..n {
        let (endpoint, req) = match request::build_request(black_box(&config), black_box(&item), &[], 30_000) {
            Ok(built) => built,
            Err(e) => panic!("request: {}", e.message),
        };
        bytes += black_box(&req).body.len();
        let body = black_box(ANSWER.as_bytes().to_vec());
        match classify::answer(endpoint.api(), 200, &headers, &body) {
            Ok(success) => bytes += black_box(success).output.len(),
            Err(e) => panic!("answer: {}", e.message),
        }
    }
    println!("{n} items, {bytes} bytes");
}
