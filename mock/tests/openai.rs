//! End-to-end tests: a real `MockServer` on a loopback port, driven by a real
//! HTTP client.

use std::time::{Duration, Instant};

use batchllm_mock::{LoggedRequest, MockConfig, MockServer};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// What a test needs to know about one response.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.text))
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no header {name}"))
    }
}

async fn start(config: MockConfig) -> MockServer {
    MockServer::start(config).await.expect("mock server starts")
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request is answered");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let text = response.text().await.expect("body is readable");
    Answer { status, headers, text }
}

async fn post_raw(server: &MockServer, path: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    let url = format!("{}{path}", server.base_url());
    let mut request = reqwest::Client::new().post(url).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(body.to_owned())).await
}

async fn chat(server: &MockServer, prompt: &str) -> Answer {
    let body = json!({"model": "gpt-test", "messages": [{"role": "user", "content": prompt}]});
    post_raw(server, "/chat/completions", &body.to_string(), &[]).await
}

fn last(server: &MockServer) -> LoggedRequest {
    server.requests().pop().expect("something was logged")
}

#[tokio::test]
async fn normal_completion() {
    let server = start(MockConfig::default()).await;
    let body = json!({
        "model": "gpt-test",
        "temperature": 0.2,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
    });
    let answer = post_raw(&server, "/chat/completions", &body.to_string(), &[("x-custom", "yes")]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-request-id"), "req_mock_1");
    assert!(answer.header("content-type").starts_with("application/json"));
    let json = answer.json();
    assert_eq!(json["id"], "chatcmpl-mock-1");
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(json["model"], "gpt-test");
    assert!(json["created"].as_u64().is_some_and(|t| t > 1_600_000_000));
    assert_eq!(
        json["choices"][0]["message"],
        json!({"role": "assistant", "content": "echo: hello there", "refusal": null})
    );
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    // P = (ceil(9/4)+4) + (ceil(11/4)+4) = 14; C = ceil(17/4) = 5.
    let usage = json!({
        "prompt_tokens": 14, "completion_tokens": 5, "total_tokens": 19,
        "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0},
    });
    assert_eq!(json["usage"], usage);
    assert!(answer.headers.get("x-ratelimit-limit-requests").is_none(), "no limits configured");

    let logged = last(&server);
    assert_eq!((logged.seq, logged.status, logged.method.as_str()), (1, 200, "POST"));
    assert_eq!(logged.path, "/v1/chat/completions");
    assert_eq!(logged.request_id, "req_mock_1");
    assert_eq!(logged.body, body);
    assert_eq!(logged.response_body, json);
    assert_eq!(logged.prompt.as_deref(), Some("hello there"));
    assert_eq!(logged.usage, Some(usage));
    assert!(logged.headers.contains(&("x-custom".to_owned(), "yes".to_owned())));
    server.shutdown().await;
}

#[tokio::test]
async fn cached_tokens_for_long_prompts() {
    let server = start(MockConfig { cached_ratio: 0.5, ..Default::default() }).await;
    let answer = chat(&server, &"x".repeat(4 * 2000)).await;
    // P = 2000 + 4 = 2004; floor(1002 / 64) * 64 = 960.
    assert_eq!(answer.json()["usage"]["prompt_tokens"], 2004);
    assert_eq!(answer.json()["usage"]["prompt_tokens_details"]["cached_tokens"], 960);
    server.shutdown().await;
}

#[tokio::test]
async fn rpm_limit_answers_429_then_recovers() {
    // Two seconds: room for three requests on a loaded machine.
    let server = start(MockConfig { rpm: Some(2), window_ms: 2_000, ..Default::default() }).await;
    let first = chat(&server, "one").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-ratelimit-limit-requests"), "2");
    assert_eq!(first.header("x-ratelimit-remaining-requests"), "1");
    assert!(first.header("x-ratelimit-reset-requests").ends_with('s'));
    assert!(first.headers.get("x-ratelimit-limit-tokens").is_none());
    assert_eq!(chat(&server, "two").await.status, 200);

    let limited = chat(&server, "three").await;
    assert_eq!(limited.status, 429);
    let retry_ms: u64 = limited.header("retry-after-ms").parse().expect("integer");
    assert!((1..=2_000).contains(&retry_ms), "{retry_ms}");
    assert_eq!(limited.header("retry-after"), retry_ms.div_ceil(1000).to_string());
    assert_eq!(limited.header("x-ratelimit-remaining-requests"), "0");
    assert_eq!(limited.header("x-request-id"), "req_mock_3");
    let error = &limited.json()["error"];
    assert_eq!(error["type"], "requests");
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["param"], Value::Null);
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message
            .starts_with("Rate limit reached for requests (RPM): Limit 2, Used 2, Requested 1. Please try again in "),
        "{message}"
    );
    assert_eq!(last(&server).status, 429);
    assert_eq!(last(&server).prompt.as_deref(), Some("three"));

    tokio::time::sleep(Duration::from_millis(retry_ms + 20)).await;
    assert_eq!(chat(&server, "four").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn tpm_limit_counts_prompt_plus_max_tokens() {
    // Each request: P = 1 + 4 = 5, charge = 5 + 16 = 21.
    let server = start(MockConfig { tpm: Some(50), ..Default::default() }).await;
    let ok = chat(&server, "hi").await;
    assert_eq!(ok.header("x-ratelimit-limit-tokens"), "50");
    assert_eq!(ok.header("x-ratelimit-remaining-tokens"), "29");
    assert_eq!(chat(&server, "hi").await.status, 200);
    let limited = chat(&server, "hi").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["error"]["type"], "tokens");
    let message = limited.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.starts_with("Rate limit reached for tokens (TPM): Limit 50, Used 42, Requested 21."), "{message}");
    server.shutdown().await;
}

#[tokio::test]
async fn api_key_is_required() {
    let server = start(MockConfig { api_key: Some("sk-test".into()), ..Default::default() }).await;
    let body = json!({"messages": [{"role": "user", "content": "hi"}]}).to_string();
    for headers in [&[][..], &[("authorization", "Bearer sk-wrong")][..]] {
        let answer = post_raw(&server, "/chat/completions", &body, headers).await;
        assert_eq!(answer.status, 401);
        let expected = json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
        assert_eq!(answer.json(), expected);
    }
    let ok = post_raw(&server, "/chat/completions", &body, &[("authorization", "Bearer sk-test")]).await;
    assert_eq!(ok.status, 200);

    let auth: Vec<Option<String>> = server
        .requests()
        .iter()
        .map(|r| r.headers.iter().find(|(name, _)| name == "authorization").map(|(_, v)| v.clone()))
        .collect();
    assert_eq!(auth, [None, Some("Bearer sk-wrong".into()), Some("Bearer sk-test".into())]);
    server.shutdown().await;
}

#[tokio::test]
async fn fail_first_fails_twice_then_succeeds() {
    let server = start(MockConfig::default()).await;
    let prompt = "item 42 [[mock:fail-first=2]]";
    let statuses = [
        chat(&server, prompt).await,
        chat(&server, "other").await,
        chat(&server, prompt).await,
        chat(&server, prompt).await,
    ]
    .map(|answer| answer.status);
    assert_eq!(statuses, [503, 200, 503, 200]);
    let logged: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(logged, [503, 200, 503, 200]);
    server.shutdown().await;
}

#[tokio::test]
async fn status_markers() {
    let server = start(MockConfig::default()).await;
    let rate = chat(&server, "[[mock:status=429]]").await;
    assert_eq!(rate.status, 429);
    assert_eq!(rate.header("retry-after"), "1");
    assert_eq!(rate.json()["error"]["code"], "rate_limit_exceeded");

    let quota = chat(&server, "[[mock:insufficient_quota]]").await;
    assert_eq!(quota.status, 429);
    assert_eq!(quota.json()["error"]["code"], "insufficient_quota");
    assert_eq!(quota.json()["error"]["type"], "insufficient_quota");

    for (code, kind) in [
        (400, "invalid_request_error"),
        (401, "invalid_request_error"),
        (404, "invalid_request_error"),
        (413, "invalid_request_error"),
        (500, "server_error"),
        (503, "server_error"),
        (529, "overloaded_error"),
    ] {
        let answer = chat(&server, &format!("x [[mock:status={code}]]")).await;
        assert_eq!(answer.status, code);
        assert_eq!(answer.json()["error"]["type"], kind, "{code}");
        assert!(answer.json()["error"]["message"].is_string());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_bodies() {
    let server = start(MockConfig::default()).await;
    let answer = chat(&server, "[[mock:malformed]]").await;
    assert_eq!(answer.status, 200);
    assert!(serde_json::from_str::<Value>(&answer.text).is_err(), "{}", answer.text);
    let logged = last(&server);
    assert_eq!(logged.response_body, Value::String(answer.text.clone()));
    assert!(logged.usage.is_some(), "a malformed answer is still billed");
    server.shutdown().await;

    let server = start(MockConfig { malformed_rate: 1.0, ..Default::default() }).await;
    let answer = chat(&server, "plain").await;
    assert_eq!(answer.status, 200);
    assert!(serde_json::from_str::<Value>(&answer.text).is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_400() {
    let server = start(MockConfig::default()).await;
    let bad_json = post_raw(&server, "/chat/completions", "{\"messages\": [", &[]).await;
    assert_eq!(bad_json.status, 400);
    let error = &bad_json.json()["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!((error["param"].clone(), error["code"].clone()), (Value::Null, Value::Null));
    assert!(error["message"].as_str().is_some_and(|m| m.contains("could not parse the JSON body")));
    assert_eq!(bad_json.header("x-request-id"), "req_mock_1");
    assert_eq!(last(&server).body, Value::String("{\"messages\": [".into()));

    for body in ["", "[]", "{}", "{\"messages\": [{\"role\": \"user\", \"content\": {}}]}", "\u{1f600}"] {
        let answer = post_raw(&server, "/chat/completions", body, &[]).await;
        assert_eq!(answer.status, 400, "{body:?}");
        assert_eq!(answer.json()["error"]["type"], "invalid_request_error");
    }
    assert_eq!(server.requests().len(), 6);
    server.shutdown().await;
}

#[tokio::test]
async fn embeddings() {
    let server = start(MockConfig::default()).await;
    let body = json!({"model": "text-embedding-test", "input": ["alpha", "beta", "alpha"]}).to_string();
    let answer = post_raw(&server, "/embeddings", &body, &[]).await;
    assert_eq!(answer.status, 200);
    let json = answer.json();
    assert_eq!(json["object"], "list");
    assert_eq!(json["model"], "text-embedding-test");
    assert_eq!(json["usage"], json!({"prompt_tokens": 5, "total_tokens": 5}));
    let data = json["data"].as_array().expect("data array");
    assert_eq!(data.len(), 3);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[1]["object"], "embedding");
    assert_eq!(data[0]["embedding"].as_array().map(Vec::len), Some(8));
    assert_eq!(data[0]["embedding"], data[2]["embedding"]);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);

    let single = post_raw(&server, "/embeddings", &json!({"input": "alpha"}).to_string(), &[]).await;
    assert_eq!(single.json()["data"][0]["embedding"], data[0]["embedding"]);
    assert_eq!(last(&server).prompt.as_deref(), Some("alpha"));
    server.shutdown().await;
}

#[tokio::test]
async fn routing_log_and_reset() {
    let server = start(MockConfig::default()).await;
    let client = reqwest::Client::new();
    let root = format!("http://{}", server.addr());

    let health = send(client.get(format!("{root}/health"))).await;
    assert_eq!((health.status, health.text.as_str()), (200, "ok"));
    let unknown = post_raw(&server, "/nope?x=1", "{}", &[]).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["message"], "Invalid URL (POST /v1/nope?x=1)");
    let wrong_method = send(client.get(format!("{root}/v1/chat/completions"))).await;
    assert_eq!(wrong_method.status, 404);
    assert_eq!(chat(&server, "hi").await.status, 200);

    let listed = send(client.get(format!("{root}/_mock/requests"))).await;
    let listed: Vec<LoggedRequest> = serde_json::from_str(&listed.text).expect("log as JSON");
    assert_eq!(listed, server.requests());
    let summary: Vec<(u64, u16, &str)> = listed.iter().map(|r| (r.seq, r.status, r.path.as_str())).collect();
    assert_eq!(summary, [(1, 404, "/v1/nope?x=1"), (2, 404, "/v1/chat/completions"), (3, 200, "/v1/chat/completions")]);
    assert_eq!(listed[1].body, Value::Null);

    let reset = send(client.post(format!("{root}/_mock/reset"))).await;
    assert_eq!(reset.status, 200);
    assert!(server.requests().is_empty());
    assert_eq!(chat(&server, "again").await.header("x-request-id"), "req_mock_4");
    server.shutdown().await;
}

#[tokio::test]
async fn reset_restores_rate_window() {
    let server = start(MockConfig { rpm: Some(1), ..Default::default() }).await;
    assert_eq!(chat(&server, "a").await.status, 200);
    assert_eq!(chat(&server, "b").await.status, 429);
    server.reset();
    assert_eq!(chat(&server, "c").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn random_errors_alternate_500_and_503() {
    let server = start(MockConfig { error_rate: 1.0, ..Default::default() }).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(chat(&server, "x").await.status);
    }
    assert_eq!(statuses, [500, 503, 500, 503]);
    assert_eq!(chat(&server, "x").await.json()["error"]["type"], "server_error");
    server.shutdown().await;
}

#[tokio::test]
async fn latency_and_hang() {
    let server = start(MockConfig { hang_ms: 60_000, ..Default::default() }).await;
    let started = Instant::now();
    assert_eq!(chat(&server, "[[mock:latency=150]]").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    let url = format!("{}/chat/completions", server.base_url());
    let body = json!({"messages": [{"role": "user", "content": "[[mock:hang]]"}]}).to_string();
    let hung = reqwest::Client::new().post(url).timeout(Duration::from_millis(200)).body(body).send().await;
    assert!(hung.is_err_and(|err| err.is_timeout()));
    let logged = last(&server);
    assert_eq!(logged.status, 504);
    assert_eq!(logged.prompt.as_deref(), Some("[[mock:hang]]"));

    // Shutdown does not wait for hung requests.
    let stopping = Instant::now();
    server.shutdown().await;
    assert!(stopping.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn hang_answers_504_after_hang_ms() {
    let server = start(MockConfig { hang_rate: 1.0, hang_ms: 100, ..Default::default() }).await;
    let answer = chat(&server, "x").await;
    assert_eq!(answer.status, 504);
    assert_eq!(answer.json()["error"]["type"], "timeout");
    server.shutdown().await;
}

#[tokio::test]
async fn log_file_gets_json_lines() {
    let path = std::env::temp_dir().join(format!("batchllm-mock-it-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let server = start(MockConfig { log_file: Some(path.clone()), ..Default::default() }).await;
    chat(&server, "one").await;
    chat(&server, "two [[mock:status=500]]").await;
    let text = std::fs::read_to_string(&path).expect("log file written");
    let _ = std::fs::remove_file(&path);
    let lines: Vec<LoggedRequest> = text.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines, server.requests());
    assert_eq!(lines.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 500]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_on_multi_thread_runtime() {
    let server = std::sync::Arc::new(start(MockConfig { latency_ms: 20, jitter_ms: 10, ..Default::default() }).await);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let server = server.clone();
            tokio::spawn(async move { chat(&server, &format!("item {i}")).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task"), 200);
    }
    let mut seqs: Vec<u64> = server.requests().iter().map(|r| r.seq).collect();
    seqs.dedup();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
}

#[tokio::test]
async fn invalid_config_is_refused() {
    assert!(MockServer::start(MockConfig { error_rate: 2.0, ..Default::default() }).await.is_err());
}
