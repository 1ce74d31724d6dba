//! A real batch through the real openai plugin.

use std::collections::{HashMap, HashSet};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_jobs_end_in_thousand_matching_results() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let lines: Vec<String> = (0..1000)
        .map(|i| {
            if i % 2 == 0 {
                job(&format!("job-{i}"), &format!("question number {i}: what is {i} squared?"))
            } else {
                serde_json::json!({
                    "custom_id": format!("job-{i}"),
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("question number {i}: what is {i} squared?")}]}
                })
                .to_string()
            }
        })
        .collect();
    let jobs = ws.jobs(&lines);
    let args = openai_args(&server);
    let out = ws.run(&jobs, &[&strs(&args)[..], &["--concurrency", "32"]].concat(), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 0, "stderr:\n{}", out.stderr);
    assert_eq!(out.results.len(), 1000);

    let ids: HashSet<&str> = out.results.iter().map(|r| r["custom_id"].as_str().expect("custom_id")).collect();
    assert_eq!(ids.len(), 1000, "every id exactly once");

    // What the server said for each prompt, from its own log.
    let served: HashMap<String, batchllm_mock::LoggedRequest> =
        chat_requests(&server).into_iter().map(|r| (r.prompt.clone().expect("prompt logged"), r)).collect();
    assert_eq!(served.len(), 1000, "one request per job, no duplicates");
    for r in &out.results {
        let id = r["custom_id"].as_str().expect("id");
        let i: usize = id.trim_start_matches("job-").parse().expect("numbered id");
        let prompt = format!("question number {i}: what is {i} squared?");
        let logged = &served[&prompt];
        assert_eq!(r["error"], serde_json::Value::Null, "{id}");
        assert_eq!(r["batchllm"]["status"], "succeeded");
        let answer = logged.response_body["choices"][0]["message"]["content"].as_str().expect("content");
        assert_eq!(r["batchllm"]["output"], answer, "{id}: output is what the server returned");
        assert_eq!(r["response"]["status_code"], 200);
        assert_eq!(r["response"]["request_id"], logged.request_id.as_str());
        assert_eq!(r["response"]["body"], logged.response_body, "{id}: body kept verbatim");
        let usage = logged.usage.as_ref().expect("usage logged");
        assert_eq!(r["batchllm"]["usage"]["input_tokens"], usage["prompt_tokens"], "{id}");
        assert_eq!(r["batchllm"]["usage"]["output_tokens"], usage["completion_tokens"], "{id}");
        assert_eq!(
            r["batchllm"]["usage"]["cached_input_tokens"], usage["prompt_tokens_details"]["cached_tokens"],
            "{id}"
        );
        assert_eq!(r["batchllm"]["attempts"], 1);
        assert_eq!(r["batchllm"]["line"], i + 1);
    }
    // The key reached the provider only through the host.
    assert!(
        chat_requests(&server)
            .iter()
            .all(|r| r.headers.iter().any(|(k, v)| k == "authorization" && v == &format!("Bearer {API_KEY}")))
    );
    assert!(out.stderr.contains("1000 items: 1000 succeeded, 0 failed"), "{}", out.stderr);
    assert!(!out.stderr.contains(API_KEY), "the key never appears in logs");
    let results_text = std::fs::read_to_string(ws.path("results.jsonl")).expect("results");
    assert!(!results_text.contains(API_KEY), "the key never appears in results");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_plugin_needs_no_network_and_keeps_context() {
    let ws = Workspace::new();
    let jobs = ws.jobs(&[
        r#"{"id":"a","prompt":"hello","context":{"row":7}}"#.to_string(),
        r#"{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"hi there"}]},"metadata":{"k":"v"}}"#.to_string(),
    ]);
    let out = ws.run(&jobs, &["--plugin", "mock"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result("a")["batchllm"]["output"], "mock: hello");
    assert_eq!(out.result("a")["batchllm"]["context"]["row"], 7);
    assert_eq!(out.result("b")["batchllm"]["output"], "mock: hi there");
    assert_eq!(out.result("b")["batchllm"]["context"]["k"], "v");
    assert!(out.stderr.contains("HTTP requests 0"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_mock_provider_runs_the_readme_demo() {
    let ws = Workspace::new();
    let jobs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/jobs.jsonl");
    let out = ws.run(&jobs, &["--plugin", "openai", "--mock-provider"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let expected = std::fs::read_to_string(&jobs).expect("example").lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(out.results.len(), expected);
    assert!(out.results.iter().all(|r| r["batchllm"]["status"] == "succeeded"), "{:?}", out.results);
}
