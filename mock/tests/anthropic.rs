//! The Anthropic Messages endpoint over loopback: shapes, usage with prompt
//! caching, rate-limit headers, and each injected error.

use batchllm_mock::{MockConfig, MockServer};
use serde_json::{Value, json};

const KEY: &str = "sk-ant-test";

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    json: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no header {name}"))
    }
}

async fn start(config: MockConfig) -> MockServer {
    MockServer::start(MockConfig { api_key: Some(KEY.into()), ..config }).await.expect("mock server starts")
}

async fn messages(server: &MockServer, body: &Value, key: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.origin()))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01");
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = request.body(body.to_string()).send().await.expect("answered");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, headers, json }
}

fn ask(prompt: &str) -> Value {
    json!({"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]})
}

#[tokio::test]
async fn message_with_usage_request_id_and_rate_limit_headers() {
    let server = start(MockConfig { rpm: Some(100), ..Default::default() }).await;
    let answer = messages(&server, &ask("hello there"), Some(KEY)).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["type"], "message");
    assert_eq!(answer.json["content"], json!([{"type": "text", "text": "echo: hello there"}]));
    assert_eq!(answer.json["stop_reason"], "end_turn");
    // P = ceil(11/4) + 4 = 7; C = ceil(17/4) = 5.
    assert_eq!(answer.json["usage"]["input_tokens"], 7);
    assert_eq!(answer.json["usage"]["output_tokens"], 5);
    assert_eq!(answer.header("request-id"), "req_mock_1");
    assert_eq!(answer.header("anthropic-ratelimit-requests-limit"), "100");
    assert_eq!(answer.header("anthropic-ratelimit-requests-remaining"), "99");
    assert!(answer.header("anthropic-ratelimit-requests-reset").ends_with('Z'));
    let logged = server.requests().pop().expect("logged");
    assert_eq!((logged.path.as_str(), logged.status), ("/v1/messages", 200));
    assert_eq!(logged.usage, Some(answer.json["usage"].clone()));
    server.shutdown().await;
}

#[tokio::test]
async fn prompt_caching_reports_creation_then_reads() {
    let server = start(MockConfig::default()).await;
    let body = json!({"model": "claude-test", "max_tokens": 64,
        "system": [{"type": "text", "text": "d".repeat(800), "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "q"}]});
    let first = messages(&server, &body, Some(KEY)).await.json;
    let second = messages(&server, &body, Some(KEY)).await.json;
    assert_eq!(first["usage"]["cache_creation_input_tokens"], 200);
    assert_eq!(first["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(second["usage"]["cache_creation_input_tokens"], 0);
    assert_eq!(second["usage"]["cache_read_input_tokens"], 200);
    assert_eq!(second["usage"]["input_tokens"], 1 + 2 * 4);
    server.shutdown().await;
}

#[tokio::test]
async fn refusals_and_injected_errors_use_anthropic_shapes() {
    let server = start(MockConfig { rpm: Some(12), window_ms: 60_000, ..Default::default() }).await;
    let wrong = messages(&server, &ask("x"), Some("nope")).await;
    assert_eq!((wrong.status, wrong.json["error"]["type"].as_str()), (401, Some("authentication_error")));
    assert_eq!(wrong.json["type"], "error");
    assert_eq!(wrong.json["request_id"], wrong.header("request-id"));
    let cases = [
        ("[[mock:status=429]]", 429, "rate_limit_error"),
        ("[[mock:status=529]]", 529, "overloaded_error"),
        ("[[mock:status=413]]", 413, "request_too_large"),
        ("[[mock:status=500]]", 500, "api_error"),
        ("[[mock:quota-per-day]]", 400, "invalid_request_error"),
    ];
    for (prompt, status, kind) in cases {
        let answer = messages(&server, &ask(prompt), Some(KEY)).await;
        assert_eq!((answer.status, answer.json["error"]["type"].as_str()), (status, Some(kind)), "{prompt}");
        if status == 429 {
            assert_eq!(answer.header("retry-after"), "1");
        }
    }
    let billing = messages(&server, &ask("[[mock:insufficient_quota]]"), Some(KEY)).await;
    assert!(billing.json["error"]["message"].as_str().is_some_and(|m| m.contains("credit balance is too low")));
    let invalid = messages(&server, &json!({"model": "m", "messages": []}), Some(KEY)).await;
    assert_eq!(invalid.status, 400);
    // Fill the window: 12 requests per minute, 6 admitted so far (refusals
    // at the front door are not counted).
    for _ in 0..6 {
        messages(&server, &ask("fill"), Some(KEY)).await;
    }
    let limited = messages(&server, &ask("over"), Some(KEY)).await;
    assert_eq!((limited.status, limited.json["error"]["type"].as_str()), (429, Some("rate_limit_error")));
    assert!(limited.header("retry-after").parse::<u64>().is_ok_and(|s| s >= 1));
    assert_eq!(limited.header("anthropic-ratelimit-requests-remaining"), "0");
    server.shutdown().await;
}
