//! Anthropic's Message Batches API on `serve`, as the Anthropic SDK calls it
//! (`x-api-key`, inline requests, `results_url` fetched as given), over the
//! anthropic plugin and the mock provider's Messages API.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve_support::*;
use crate::support::{grant, mock};

fn anthropic_tenant(name: &str, provider: &batchllm_mock::MockServer, extra: &str) -> String {
    format!(
        "[tenants.{name}]\napi-keys = [\"{}\"]\nplugin = \"anthropic\"\nallow-host = [\"{}\"]\napi-key-env = \"{KEY_VAR}\"\n\
         {extra}\n[tenants.{name}.plugin-config]\nbase_url = \"{}\"\n",
        digest(&key(name)),
        grant(provider),
        provider.origin()
    )
}

fn request(id: &str, text: &str) -> Value {
    json!({"custom_id": id, "params": {"model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": text}]}})
}

async fn call(server: &Server, method: reqwest::Method, url: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = http().request(method, url).header("x-api-key", key).header("anthropic-version", "2023-06-01");
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body.to_string());
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    let _ = server;
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn wait_ended(server: &Server, key: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let (_, b) =
            call(server, reqwest::Method::GET, &server.url(&format!("/v1/messages/batches/{id}")), key, None).await;
        if b["processing_status"] == "ended" {
            return b;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not ended: {b}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_batches_run_through_the_anthropic_plugin_and_answer_in_anthropics_shapes() {
    let fast = mock(|_| {}).await;
    let slow = mock(|c| c.latency_ms = 100).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tenants = anthropic_tenant("claude", &fast, "concurrency = 4")
        + &anthropic_tenant("slow", &slow, "concurrency = 2")
        + &tenant("gpt", &fast, "");
    let server = Server::start(dir.path(), &tenants).await;
    let k = key("claude");
    let batches = server.url("/v1/messages/batches");

    let mut requests: Vec<Value> = (0..5).map(|i| request(&format!("m{i}"), &format!("hello {i}"))).collect();
    requests[2] = request("m2", "hello 2 [[mock:status=400]]");
    let (status, created) =
        call(&server, reqwest::Method::POST, &batches, &k, Some(json!({"requests": requests}))).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["type"], "message_batch");
    assert_eq!(created["processing_status"], "in_progress");
    assert!(created["created_at"].as_str().unwrap_or("").ends_with('Z'), "RFC 3339: {created}");
    let id = created["id"].as_str().expect("id").to_string();
    let ended = wait_ended(&server, &k, &id).await;
    assert_eq!(
        ended["request_counts"],
        json!({"processing": 0, "succeeded": 4, "errored": 1, "canceled": 0, "expired": 0}),
        "{ended}"
    );
    let results_url = ended["results_url"].as_str().expect("results_url").to_string();
    assert!(results_url.starts_with("http://127.0.0.1:"), "absolute: {results_url}");
    let r = http().get(&results_url).header("x-api-key", &k).send().await.expect("results");
    assert_eq!(r.status(), 200);
    let lines: Vec<Value> =
        r.text().await.expect("text").lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 5);
    let by_id = |id: &str| lines.iter().find(|l| l["custom_id"] == id).cloned().expect("a line per request");
    let ok = by_id("m0");
    assert_eq!(ok["result"]["type"], "succeeded");
    assert_eq!(ok["result"]["message"]["type"], "message", "the provider's Message: {ok}");
    assert_eq!(ok["result"]["message"]["content"][0]["text"], "echo: hello 0");
    let bad = by_id("m2");
    assert_eq!(bad["result"]["type"], "errored");
    assert_eq!(bad["result"]["error"]["error"]["type"], "invalid_request_error");

    // The same batch under the OpenAI view, and in the list.
    let b = server.batch(&k, &id).await;
    assert_eq!(b["endpoint"], "/v1/messages");
    let (_, list) = call(&server, reqwest::Method::GET, &format!("{batches}?limit=10"), &k, None).await;
    assert_eq!(list["data"][0]["id"], id.as_str());

    // A cancel mid-run: unsent requests are `canceled`.
    let ks = key("slow");
    let many: Vec<Value> = (0..100).map(|i| request(&format!("c{i}"), &format!("cancel {i}"))).collect();
    let (_, created) = call(&server, reqwest::Method::POST, &batches, &ks, Some(json!({"requests": many}))).await;
    let cid = created["id"].as_str().expect("id").to_string();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, canceling) = call(&server, reqwest::Method::POST, &format!("{batches}/{cid}/cancel"), &ks, None).await;
    assert_eq!(status, 200, "{canceling}");
    assert!(["canceling", "ended"].contains(&canceling["processing_status"].as_str().unwrap_or("")), "{canceling}");
    let ended = wait_ended(&server, &ks, &cid).await;
    let counts = &ended["request_counts"];
    assert!(counts["canceled"].as_u64().unwrap_or(0) > 0, "{ended}");
    assert_eq!(
        counts["succeeded"].as_u64().unwrap_or(0)
            + counts["canceled"].as_u64().unwrap_or(0)
            + counts["errored"].as_u64().unwrap_or(0),
        100
    );

    // Isolation and errors: another tenant's batch is 404; a plugin that
    // cannot serve /v1/messages is refused; an ended batch can be deleted.
    let (status, _) = call(&server, reqwest::Method::GET, &format!("{batches}/{id}"), &ks, None).await;
    assert_eq!(status, 404);
    let (status, body) =
        call(&server, reqwest::Method::POST, &batches, &key("gpt"), Some(json!({"requests": [request("x", "y")]})))
            .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_endpoint");
    let (status, body) = call(&server, reqwest::Method::POST, &batches, &k, Some(json!({"requests": "no"}))).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(&server, reqwest::Method::DELETE, &format!("{batches}/{id}"), &k, None).await;
    assert_eq!((status, &body["type"]), (200, &json!("message_batch_deleted")), "{body}");
    let (status, _) = call(&server, reqwest::Method::GET, &format!("{batches}/{id}"), &k, None).await;
    assert_eq!(status, 404);
    assert_eq!(server.stop().await, Some(0));
}
