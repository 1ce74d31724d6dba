//! `batchllm-host serve` driven by the official OpenAI Python SDK (pinned),
//! unchanged, against the real binary and the mock provider: a batch from
//! upload to output, a cancel mid-run, the errors a client sees, bad input
//! and quotas, and a reload on SIGHUP.

use std::time::Duration;

use serde_json::Value;

use crate::serve_support::*;
use crate::support::mock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_runs_a_batch_from_upload_to_output_and_cancels_one() {
    let provider = mock(|c| c.latency_ms = 20).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tenants = operator() + &tenant("acme", &provider, "concurrency = 4");
    let server = Server::start(dir.path(), &tenants).await;

    // 30 requests, one of which the provider refuses (400): it ends in the error file.
    let mut lines: Vec<String> = (0..30).map(|i| line(&format!("r{i}"), &format!("complete {i}"))).collect();
    lines[7] = line("r7", "complete 7 [[mock:status=400]]");
    let jobs = dir.path().join("jobs.jsonl");
    std::fs::write(&jobs, lines.join("\n") + "\n").expect("jobs");
    let facts = sdk(&server, "complete", &key("acme"), &jobs, None).await;
    let batch = &facts["batch"];
    assert_eq!(batch["status"], "completed", "{batch}");
    assert_eq!(batch["request_counts"], serde_json::json!({"total": 30, "completed": 29, "failed": 1}));
    assert!(batch["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0, "{batch}");
    assert!(batch["usage"]["input_tokens"].as_u64().unwrap_or(0) > 0);
    for field in ["created_at", "in_progress_at", "finalizing_at", "completed_at", "expires_at"] {
        assert!(batch[field].as_i64().is_some(), "{field} is set: {batch}");
    }
    assert_eq!(batch["model"], "gpt-4o-mini");
    let output = facts["output"].as_array().expect("output lines");
    let errors = facts["errors"].as_array().expect("error lines");
    assert_eq!(output.len(), 29);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["custom_id"], "r7");
    assert_eq!(errors[0]["error"]["code"], "client_error");
    // Today's output line format: the OpenAI Batch line plus `batchllm`.
    let first = &output[0];
    assert_eq!(first["response"]["status_code"], 200);
    assert!(
        first["response"]["body"]["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .starts_with("echo: complete")
    );
    assert_eq!(first["batchllm"]["status"], "succeeded");
    let all: Vec<Value> = output.iter().chain(errors).cloned().collect();
    let counts = id_counts(&all);
    assert_eq!(counts.len(), 30);
    assert!(counts.values().all(|&n| n == 1), "every custom_id exactly once");
    assert!(prompts_sent(&provider).values().all(|&n| n == 1), "nothing sent twice");
    assert_eq!(facts["listed_batches"].as_array().map(Vec::len), Some(1));
    assert!(facts["files"].as_array().expect("files").iter().any(|f| f == &facts["input_file"]));

    // A cancel while the batch runs: it ends `cancelled`, what was done is
    // in the output file, every other line in the error file, once.
    let slow: Vec<String> = (0..400).map(|i| line(&format!("c{i}"), &format!("cancel {i}"))).collect();
    let jobs = dir.path().join("slow.jsonl");
    std::fs::write(&jobs, slow.join("\n") + "\n").expect("jobs");
    let facts = sdk(&server, "cancel", &key("acme"), &jobs, None).await;
    let batch = &facts["batch"];
    assert_eq!(batch["status"], "cancelled", "{batch}");
    assert!(batch["cancelling_at"].as_i64().is_some() && batch["cancelled_at"].as_i64().is_some());
    let statuses: Vec<&str> =
        facts["statuses"].as_array().expect("statuses").iter().filter_map(Value::as_str).collect();
    assert_eq!(statuses.last(), Some(&"cancelled"), "{statuses:?}");
    let output = facts["output"].as_array().expect("output");
    let errors = facts["errors"].as_array().expect("errors");
    let counts = id_counts(&output.iter().chain(errors).cloned().collect::<Vec<_>>());
    assert_eq!(counts.len(), 400);
    assert!(counts.values().all(|&n| n == 1), "every custom_id exactly once");
    let c = &batch["request_counts"];
    assert_eq!(c["total"], 400);
    assert_eq!(c["completed"].as_u64(), Some(output.len() as u64));
    assert!(output.len() >= 3 && output.len() < 400, "cancelled mid-run: {} done", output.len());
    assert!(errors.iter().any(|e| e["error"]["code"] == "aborted"), "unsent lines end `aborted`");
    let sent = prompts_sent(&provider);
    assert!(sent.values().all(|&n| n == 1), "nothing sent twice");
    let sent_cancel = sent.keys().filter(|p| p.starts_with("cancel ")).count();
    assert!(
        sent_cancel <= output.len() + 4 * 2,
        "at most the items on the wire were sent after the cancel: {sent_cancel}"
    );
    assert_eq!(server.stop().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_clients_get_openai_errors_and_another_tenants_objects_are_404() {
    let provider = mock(|_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tenants = tenant("acme", &provider, "") + &tenant("other", &provider, "");
    let server = Server::start(dir.path(), &tenants).await;
    let jobs = dir.path().join("jobs.jsonl");
    std::fs::write(
        &jobs,
        (0..5).map(|i| line(&format!("e{i}"), &format!("errors {i}"))).collect::<Vec<_>>().join("\n"),
    )
    .expect("jobs");
    let facts = sdk(&server, "errors", &key("acme"), &jobs, Some(&key("other"))).await;
    assert_eq!(facts["wrong_key"]["status"], 401);
    assert_eq!(facts["wrong_key"]["body"]["code"], "invalid_api_key");
    for what in ["other_batch", "other_cancel", "other_file", "other_content", "other_delete", "other_uses_file"] {
        assert_eq!(facts[what]["status"], 404, "{what}: {}", facts[what]);
        assert_eq!(facts[what]["body"]["type"], "invalid_request_error");
    }
    assert_eq!(facts["other_list_empty"], true);
    assert_eq!(facts["bad_endpoint"]["status"], 400);
    assert_eq!(facts["bad_endpoint"]["body"]["code"], "unsupported_endpoint");
    assert!(facts["bad_endpoint"]["body"]["message"].as_str().unwrap_or("").contains("/v1/chat/completions"));
    assert_eq!(facts["missing_file"]["status"], 404);
    assert_eq!(facts["unknown_url"]["status"], 404);
    assert_eq!(facts["unknown_url"]["body"]["code"], "unknown_url");
    assert_eq!(facts["deleted"], true);
    assert_eq!(facts["after_delete"]["status"], 404);
    assert_eq!(server.stop().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_quotas_answer_429_with_retry_after() {
    let provider = mock(|c| c.latency_ms = 200).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let quotas = "[tenants.acme.quotas]\nmax-file-bytes = 8192\nmax-active-batches = 1\nmax-lines-per-batch = 50\n";
    let tenants = tenant("acme", &provider, "") + quotas;
    let server = Server::start(dir.path(), &tenants).await;
    let k = key("acme");

    // No key, a wrong key: 401, OpenAI-shaped.
    let r = http().get(server.url("/v1/batches")).send().await.expect("get");
    assert_eq!(r.status(), 401);
    let body: Value = json_of(r).await;
    assert_eq!(body["error"]["type"], "authentication_error");
    // An unknown endpoint and a wrong method: 404 with the URL named.
    let r = server.req(reqwest::Method::GET, "/v1/nothing", &k).send().await.expect("get");
    assert_eq!(r.status(), 404);
    let body: Value = json_of(r).await;
    assert_eq!(body["error"]["message"], "Unknown request URL: GET /v1/nothing.");
    let r = server.req(reqwest::Method::PUT, "/v1/batches", &k).send().await.expect("put");
    assert_eq!(r.status(), 404);

    // An upload over the tenant's limit: 413, and nothing is kept.
    let big = "x".repeat(9000);
    let (status, body, _) = upload(&server, &k, big.as_bytes(), "batch").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "file_too_large");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("8192"));
    let (status, body, _) = upload(&server, &k, b"{}", "fine-tune").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "purpose");
    let scratch: Vec<_> = std::fs::read_dir(dir.path().join("data/files")).expect("files dir").collect();
    assert!(scratch.is_empty(), "a refused upload leaves nothing: {scratch:?}");

    // Malformed JSONL: the batch fails in `validating` with per-line errors,
    // and nothing is sent.
    let text = [
        line("a", "v a"),
        "{not json".into(),
        line("a", "v dup"),
        line("b", "v b").replace("chat/completions", "embeddings"),
    ]
    .join("\n");
    let file = server.upload(&k, &text).await;
    let created = server.create(&k, &file).await;
    let id = created["id"].as_str().expect("id");
    let batch = server.wait_end(&k, id, Duration::from_secs(60)).await;
    assert_eq!(batch["status"], "failed", "{batch}");
    assert!(batch["failed_at"].as_i64().is_some());
    assert!(batch["in_progress_at"].is_null(), "it never ran");
    let errors = batch["errors"]["data"].as_array().expect("errors");
    let got: Vec<(&str, i64)> =
        errors.iter().map(|e| (e["code"].as_str().unwrap_or(""), e["line"].as_i64().unwrap_or(0))).collect();
    assert_eq!(got, [("invalid_json_line", 2), ("duplicate_custom_id", 3), ("invalid_url", 4)], "{errors:?}");
    assert!(!errors.iter().any(|e| e["message"].as_str().unwrap_or("").contains("/data/")), "no server paths");
    assert!(provider.requests().is_empty(), "nothing was sent");

    // Too many lines for the tenant: refused in validation too.
    let many: Vec<String> = (0..51).map(|i| line(&format!("m{i}"), "x")).collect();
    let file = server.upload(&k, &many.join("\n")).await;
    let id = server.create(&k, &file).await["id"].as_str().expect("id").to_string();
    let batch = server.wait_end(&k, &id, Duration::from_secs(60)).await;
    assert_eq!(batch["errors"]["data"][0]["code"], "too_many_requests_in_file", "{batch}");

    // One active batch at a time: the second create is 429 with retry-after.
    let lines: Vec<String> = (0..20).map(|i| line(&format!("q{i}"), &format!("quota {i}"))).collect();
    let file = server.upload(&k, &lines.join("\n")).await;
    let running = server.create(&k, &file).await;
    let body =
        serde_json::json!({"input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let r = server
        .req(reqwest::Method::POST, "/v1/batches", &k)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some(), "retry-after is set");
    let body: Value = json_of(r).await;
    assert_eq!(body["error"]["code"], "batch_quota_exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    // A huge JSON body is refused before it is read whole.
    let huge = format!("{{\"metadata\": \"{}\"}}", "m".repeat(100_000));
    let r = server.req(reqwest::Method::POST, "/v1/batches", &k).body(huge).send().await.expect("create");
    assert_eq!(r.status(), 413);
    // A bad request body names what to send.
    let r =
        server.req(reqwest::Method::POST, "/v1/batches", &k).body("{\"endpoint\": 1}").send().await.expect("create");
    assert_eq!(r.status(), 400);
    let id = running["id"].as_str().expect("id");
    assert_eq!(server.wait_end(&k, id, Duration::from_secs(60)).await["status"], "completed");
    assert_eq!(server.stop().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_tenants_and_a_broken_file_keeps_the_old_one() {
    let provider = mock(|c| c.latency_ms = 20).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &tenant("acme", &provider, "")).await;
    let list = |k: String| {
        let server = &server;
        async move { server.req(reqwest::Method::GET, "/v1/batches", &k).send().await.expect("list").status().as_u16() }
    };
    assert_eq!(list(key("acme")).await, 200);
    assert_eq!(list(key("later")).await, 401);
    // A mistake in the file: refused, logged; the old tenants stay.
    std::fs::write(dir.path().join("tenants.toml"), tenant("acme", &provider, "concurency = 3")).expect("write");
    server.hup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(list(key("acme")).await, 200);
    assert!(server.log().contains("did you mean `concurrency`"), "{}", server.log());
    // A good file, while a batch runs: the new tenant's key works at once,
    // and the running batch goes on with the settings it started with.
    let lines: Vec<String> = (0..300).map(|i| line(&format!("h{i}"), &format!("reload {i}"))).collect();
    let file = server.upload(&key("acme"), &lines.join("\n")).await;
    let running = server.create(&key("acme"), &file).await["id"].as_str().expect("id").to_string();
    let both = tenant("acme", &provider, "concurrency = 2") + &tenant("later", &provider, "");
    std::fs::write(dir.path().join("tenants.toml"), both).expect("write");
    server.hup();
    let started = std::time::Instant::now();
    while list(key("later")).await != 200 {
        assert!(started.elapsed() < Duration::from_secs(20), "the reload did not happen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let batch = server.wait_end(&key("acme"), &running, Duration::from_secs(60)).await;
    assert_eq!(batch["status"], "completed", "{batch}");
    assert_eq!(batch["request_counts"]["completed"], 300, "{batch}");
    assert_eq!(server.stop().await, Some(0));

    // A broken file at start: the server refuses to start, naming the fix.
    std::fs::write(dir.path().join("tenants.toml"), "[tenants.a]\napi-keys = [\"sk-plain\"]\n").expect("write");
    let out = std::process::Command::new(crate::support::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--tenants"])
        .arg(dir.path().join("tenants.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sha256:") && stderr.contains("serve-key"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_cost_and_storage_quotas_stop_spending_and_say_when_waiting_cannot_help() {
    let provider = mock(|_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // gpt-4o-mini is priced: the first answer spends more than a micro-dollar.
    let quotas = "[tenants.acme.quotas]\nmax-cost-per-day = 0.000001\nmax-stored-bytes = 6000\n";
    let server = Server::start(dir.path(), &(tenant("acme", &provider, "concurrency = 1") + quotas)).await;
    let k = key("acme");
    let lines: Vec<String> = (0..10).map(|i| line(&format!("d{i}"), &format!("spend {i}"))).collect();
    let file = server.upload(&k, &lines.join("\n")).await;
    let id = server.create(&k, &file).await["id"].as_str().expect("id").to_string();
    let batch = server.wait_end(&k, &id, Duration::from_secs(60)).await;
    // The budget runs out after the first answer: the rest is not sent.
    assert_eq!(batch["request_counts"]["completed"], 1, "{batch}");
    assert_eq!(batch["batchllm"]["failures"]["aborted"], 9, "{batch}");
    assert_eq!(provider.requests().len(), 1, "nothing sent past the budget");
    // Today's budget is spent: a new batch is refused until UTC midnight.
    let body =
        serde_json::json!({"input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let r = server
        .req(reqwest::Method::POST, "/v1/batches", &k)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 429);
    let wait: i64 = r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).expect("retry-after");
    assert!((1..=86_400).contains(&wait), "until midnight: {wait}");
    assert_eq!(r.headers().get("x-should-retry").map(|v| v.as_bytes()), Some(&b"false"[..]));
    assert_eq!(json_of(r).await["error"]["code"], "cost_quota_exceeded");

    // Storage: the input and the batch's output and error files count.
    let (status, body, headers) = upload(&server, &k, "x".repeat(4000).as_bytes(), "batch").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "storage_quota_exceeded");
    assert_eq!(headers.get("x-should-retry").map(|v| v.as_bytes()), Some(&b"false"[..]));
    assert_eq!(server.stop().await, Some(0));
}
