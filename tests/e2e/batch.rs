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
    // Running the README command again resumes: nothing is sent twice.
    let again = ws.resume(&jobs, &["--plugin", "openai", "--mock-provider"], &[]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains(&format!("resumed: {expected} items already had a record")), "{}", again.stderr);
    assert!(again.stderr.contains("HTTP requests 0"), "{}", again.stderr);
    assert_eq!(again.results.len(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_json_matches_the_results() {
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("a", "hello"), job("b", "[[fail:client-error]]"), job("c", "world")]);
    let summary = ws.path("summary.json");
    let out = ws.run(&jobs, &["--plugin", "mock", "--summary-json", summary.to_str().expect("utf8")], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary written")).expect("json");
    assert_eq!(s["termination"], "completed");
    assert_eq!(s["items"], 3);
    assert_eq!(s["succeeded"], 2);
    assert_eq!(s["failed"], 1);
    assert_eq!(s["failures"]["client_error"]["count"], 1);
    assert_eq!(s["failures"]["client_error"]["sample_ids"][0], "b");
    let input: u64 = out.results.iter().map(|r| r["batchllm"]["usage"]["input_tokens"].as_u64().expect("n")).sum();
    assert_eq!(s["usage"]["input_tokens"], input);
    assert!(s["elapsed"].as_f64().expect("seconds") > 0.0);
    let p50 = s["latency"]["p50_ms"].as_f64().expect("p50");
    let max = s["latency"]["max_ms"].as_f64().expect("max");
    assert!(p50 > 0.0 && p50 <= max, "{s}");
    let slowest = out.results.iter().map(|r| r["batchllm"]["latency_ms"].as_f64().expect("ms")).fold(0.0, f64::max);
    assert!((max - slowest).abs() / slowest < 0.01, "max {max} vs slowest record {slowest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_validates_and_estimates_without_sending() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&[
        job("a", "12345678"),
        serde_json::json!({"id": "b", "prompt": "x", "params": {"max_tokens": 10}}).to_string(),
    ]);
    let args = openai_args(&server);
    let summary = ws.path("dry.json");
    let out = ws
        .run(
            &jobs,
            &[
                &strs(&args)[..],
                &["--dry-run", "--default-max-output-tokens", "100", "--plugin-config", "model=gpt-4o-mini"],
                &["--summary-json", summary.to_str().expect("utf8")],
            ]
            .concat(),
            &[("E2E_API_KEY", API_KEY)],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("dry run: 2 jobs valid"), "{}", out.stderr);
    assert!(server.requests().is_empty(), "nothing sent");
    assert!(out.results.is_empty(), "no results written");
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).expect("json")).expect("json");
    assert_eq!(s["jobs"], 2);
    assert_eq!(s["max_output_tokens"], 110);
    // gpt-4o-mini is in the shipped price table.
    assert_eq!(s["unpriced_jobs"], 0);
    let input = s["estimated_input_tokens"].as_f64().expect("n");
    let expected = input * 0.15 / 1e6 + 110.0 * 0.60 / 1e6;
    assert!((s["estimated_max_cost_usd"].as_f64().expect("cost") - expected).abs() < 1e-12, "{s}");
    // A bad line still fails the dry run, with the usual message.
    let jobs = ws.jobs(&[job("a", "x"), "{oops".into()]);
    let out = ws.run(&jobs, &["--plugin", "mock", "--dry-run"], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("jobs.jsonl:2: invalid JSON"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preserve_order_writes_results_in_input_order() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    // Later lines answer sooner, so completion order is the reverse.
    let lines: Vec<String> =
        (0..6).map(|i| job(&format!("j{i}"), &format!("[[mock:latency={}]] q{i}", 50 + (5 - i) * 60))).collect();
    let jobs = ws.jobs(&lines);
    let args = openai_args(&server);
    let env = [("E2E_API_KEY", API_KEY)];
    let order = |out: &Outcome| {
        out.results.iter().map(|r| r["custom_id"].as_str().expect("id").to_string()).collect::<Vec<_>>()
    };
    let expected: Vec<String> = (0..6).map(|i| format!("j{i}")).collect();

    let unordered = ws.run(&jobs, &[&strs(&args)[..], &["--concurrency", "6"]].concat(), &env).await;
    assert_eq!(unordered.code, 0, "{}", unordered.stderr);
    assert_ne!(order(&unordered), expected, "completion order differs from input order");

    let ordered = ws.run(&jobs, &[&strs(&args)[..], &["--concurrency", "6", "--preserve-order"]].concat(), &env).await;
    assert_eq!(ordered.code, 0, "{}", ordered.stderr);
    assert_eq!(order(&ordered), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costs_follow_the_price_table_and_a_cost_budget_stops_the_run() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let prices = ws.path("prices.toml");
    // $1 per token in, $2 per token out: easy to check by hand.
    std::fs::write(&prices, "[models.\"gpt-4o-mini\"]\ninput = 1000000.0\noutput = 2000000.0\n").expect("write");
    let jobs = ws.jobs(&(0..20).map(|i| job(&format!("j{i}"), &format!("question {i}"))).collect::<Vec<_>>());
    let args = openai_args(&server);
    let summary = ws.path("summary.json");
    let flags = [
        "--prices",
        prices.to_str().expect("utf8"),
        "--summary-json",
        summary.to_str().expect("utf8"),
        "--concurrency",
        "1",
    ];
    let out = ws.run(&jobs, &[&strs(&args)[..], &flags].concat(), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut total = 0.0;
    for r in &out.results {
        let u = &r["batchllm"]["usage"];
        let expected = u["input_tokens"].as_f64().expect("n") + 2.0 * u["output_tokens"].as_f64().expect("n");
        assert_eq!(r["batchllm"]["cost_usd"].as_f64(), Some(expected), "{r}");
        total += expected;
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    assert!((s["cost_usd"].as_f64().expect("cost") - total).abs() < 1e-6, "{s}");

    // A budget below the total stops the run with exit code 3.
    server.reset();
    let budget = format!("{}", total / 4.0);
    let out = ws
        .run(&jobs, &[&strs(&args)[..], &flags, &["--max-cost", &budget]].concat(), &[("E2E_API_KEY", API_KEY)])
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.results.iter().any(|r| r["error"]["code"] == "aborted"));
    assert!(chat_requests(&server).len() < 20);
    assert!(out.stderr.contains("--max-cost"), "{}", out.stderr);
}
