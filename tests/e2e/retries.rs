//! The host's retry policy, driven by real failures from the mock provider
//! and by the mock plugin's test hooks.

use crate::support::*;

const FAST: [&str; 4] = ["--backoff-initial", "0.01", "--backoff-max", "0.05"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_server_errors_are_retried_until_success() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("flaky", "[[mock:fail-first=2]] hello"), job("steady", "hello")]);
    let args = openai_args(&server);
    let out = ws.run(&jobs, &[&strs(&args)[..], &FAST].concat(), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result("flaky")["batchllm"]["attempts"], 3);
    assert_eq!(out.result("flaky")["batchllm"]["status"], "succeeded");
    assert_eq!(out.result("steady")["batchllm"]["attempts"], 1);
    assert_eq!(chat_requests(&server).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_budget_ends_an_item_that_keeps_failing() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("down", "[[mock:status=503]]")]);
    let args = openai_args(&server);
    let out =
        ws.run(&jobs, &[&strs(&args)[..], &FAST, &["--max-attempts", "2"]].concat(), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let r = out.result("down");
    assert_eq!(r["error"]["code"], "overloaded");
    assert_eq!(r["response"]["status_code"], 503);
    assert_eq!(r["batchllm"]["attempts"], 2);
    assert_eq!(chat_requests(&server).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_do_not_use_attempts_and_honour_retry_after() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("limited", "[[mock:status=429]]")]);
    let args = openai_args(&server);
    let started = std::time::Instant::now();
    let out = ws
        .run(
            &jobs,
            &[&strs(&args)[..], &FAST, &["--max-attempts", "1", "--max-rate-limit-retries", "1"]].concat(),
            &[("E2E_API_KEY", API_KEY)],
        )
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let r = out.result("limited");
    assert_eq!(r["error"]["code"], "rate_limited");
    assert_eq!(r["batchllm"]["attempts"], 2, "one try plus one rate-limit retry, despite --max-attempts 1");
    assert_eq!(r["batchllm"]["rate_limit_retries"], 2);
    // The mock answers `retry-after: 1`; the host waited it out.
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(chat_requests(&server).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_retryable_classes_are_tried_once() {
    let ws = Workspace::new();
    let jobs =
        ws.jobs(&[job("bad", "[[fail:client-error]]"), job("quota", "[[fail:quota-exhausted]]"), job("ok", "fine")]);
    // Fail-fast is off here: this test is about each item's own retries.
    let out = ws.run(&jobs, &[&["--plugin", "mock", "--fail-fast", "none"][..], &FAST].concat(), &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.result("bad")["error"]["code"], "client_error");
    assert_eq!(out.result("bad")["batchllm"]["attempts"], 1);
    assert_eq!(out.result("quota")["error"]["code"], "quota_exhausted");
    assert_eq!(out.result("quota")["batchllm"]["attempts"], 1);
    assert_eq!(out.result("ok")["batchllm"]["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_state_set_by_on_error_reaches_the_next_attempt() {
    let ws = Workspace::new();
    // The mock plugin fails while its per-item state `mock.failures` < 2 and
    // its on-error increments it: success on attempt 3 proves the state flows.
    let jobs =
        ws.jobs(&[job("adaptive", "[[fail-first:2:overloaded]] hi"), job("other", "[[fail-first:1:overloaded]] yo")]);
    let out = ws.run(&jobs, &[&["--plugin", "mock", "--concurrency", "1"][..], &FAST].concat(), &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result("adaptive")["batchllm"]["attempts"], 3);
    // Isolated per item: the second item's count starts at zero.
    assert_eq!(out.result("other")["batchllm"]["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_plugin_fails_that_item_and_the_run_goes_on() {
    let ws = Workspace::new();
    let mut lines = vec![job("boom", "[[panic]]")];
    lines.extend((0..20).map(|i| job(&format!("ok-{i}"), "fine")));
    let jobs = ws.jobs(&lines);
    let out = ws
        .run(&jobs, &[&["--plugin", "mock", "--concurrency", "2", "--max-attempts", "2"][..], &FAST].concat(), &[])
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let r = out.result("boom");
    assert_eq!(r["error"]["code"], "plugin_trap");
    assert_eq!(r["batchllm"]["attempts"], 2);
    assert!(r["error"]["message"].as_str().expect("msg").contains("panicked"), "{r}");
    assert_eq!(out.results.iter().filter(|r| r["batchllm"]["status"] == "succeeded").count(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_retry_raises_temperature_then_escalates_the_model_per_item() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    // The mock answers JSON only when asked by the named model; the
    // smart-retry plugin validates JSON and adapts through the retry state.
    let jobs = ws.jobs(&[
        job("needs-big", "[[mock:json-from-model=gpt-4o]] colours as JSON"),
        job("fine-small", "[[mock:json-from-model=gpt-4o-mini]] shapes as JSON"),
    ]);
    let args = [
        "--plugin",
        "smart-retry",
        "--allow-host",
        &grant(&server),
        "--plugin-config",
        &format!("base_url={}", server.base_url()),
        "--plugin-config",
        "escalate_to=gpt-4o",
        "--api-key-env",
        "E2E_API_KEY",
        "--concurrency",
        "1",
    ];
    let out = ws.run(&jobs, &args, &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let big = out.result("needs-big");
    assert_eq!(big["batchllm"]["attempts"], 3, "{big}");
    assert!(big["batchllm"]["output"].as_str().expect("output").starts_with("{\"answer\""), "{big}");
    // What the server saw for that item, attempt by attempt.
    let seen: Vec<(String, f64)> = chat_requests(&server)
        .iter()
        .filter(|r| r.prompt.as_deref().is_some_and(|p| p.contains("colours")))
        .map(|r| {
            (r.body["model"].as_str().expect("model").to_string(), r.body["temperature"].as_f64().expect("temperature"))
        })
        .collect();
    assert_eq!(
        seen,
        [("gpt-4o-mini".to_string(), 0.0), ("gpt-4o-mini".to_string(), 0.3), ("gpt-4o".to_string(), 0.6)],
        "progressive temperature, then the bigger model"
    );
    // The other item starts from scratch: retry state is per item.
    let small = out.result("fine-small");
    assert_eq!(small["batchllm"]["attempts"], 1);
    let first: Vec<_> = chat_requests(&server)
        .into_iter()
        .filter(|r| r.prompt.as_deref().is_some_and(|p| p.contains("shapes")))
        .map(|r| (r.body["model"].clone(), r.body["temperature"].clone()))
        .collect();
    assert_eq!(first, [(serde_json::json!("gpt-4o-mini"), serde_json::json!(0.0))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_failures_are_retried_at_once_and_reach_on_error() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let schema = ws.path("schema.json");
    // The mock answers {"answer": "echo: ..."} when asked by gpt-4o-mini.
    let wants_int = r#"{"type":"object","required":["answer"],"properties":{"answer":{"type":"integer"}}}"#;
    let wants_str = r#"{"type":"object","required":["answer"],"properties":{"answer":{"type":"string"}}}"#;
    let jobs = ws.jobs(&[job("q", "[[mock:json-from-model=gpt-4o-mini]] how many?")]);
    let args = openai_args(&server);
    let env = [("E2E_API_KEY", API_KEY)];
    let schema_arg = schema.to_str().expect("utf8");

    std::fs::write(&schema, wants_str).expect("write");
    let ok = ws.run(&jobs, &[&strs(&args)[..], &["--schema", schema_arg]].concat(), &env).await;
    assert_eq!(ok.code, 0, "a matching output passes:\n{}", ok.stderr);

    std::fs::write(&schema, wants_int).expect("write");
    let started = std::time::Instant::now();
    let slow_backoff = ["--schema", schema_arg, "--backoff-initial", "5", "--backoff-max", "5"];
    let bad = ws.run(&jobs, &[&strs(&args)[..], &slow_backoff].concat(), &env).await;
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    let r = bad.result("q");
    assert_eq!(r["error"]["code"], "invalid_response", "{r}");
    assert_eq!(r["batchllm"]["attempts"], 3, "retried up to --max-attempts");
    assert!(r["error"]["message"].as_str().expect("msg").contains("at /answer"), "{r}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "no backoff before a validation retry");

    // A strategy sees the host's validation message in on-error and can show
    // it to the model: smart-retry adds it to the next prompt.
    server.reset();
    let smart = [
        "--plugin",
        "smart-retry",
        "--allow-host",
        &grant(&server),
        "--plugin-config",
        &format!("base_url={}", server.base_url()),
        "--api-key-env",
        "E2E_API_KEY",
        "--schema",
        schema_arg,
        "--max-attempts",
        "2",
    ];
    let out = ws.run(&jobs, &smart, &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let prompts: Vec<String> = chat_requests(&server).into_iter().filter_map(|r| r.prompt).collect();
    assert_eq!(prompts.len(), 2);
    assert!(!prompts[0].contains("rejected"));
    assert!(
        prompts[1].contains("Your previous answer was rejected: the output does not match the schema: at /answer"),
        "{}",
        prompts[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_recovery_asks_only_for_missing_fields_and_merges() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    // The mock answers with just `title` first; asked for missing fields, it
    // answers with exactly those, as a model following the instruction would.
    let jobs = ws.jobs(&[job("film", "[[mock:json-fields=title]] describe the film")]);
    let args = [
        "--plugin",
        "smart-retry",
        "--allow-host",
        &grant(&server),
        "--plugin-config",
        &format!("base_url={}", server.base_url()),
        "--plugin-config",
        r#"required_fields=["title","year","genre"]"#,
        "--api-key-env",
        "E2E_API_KEY",
    ];
    let out = ws.run(&jobs, &args, &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.result("film");
    assert_eq!(r["batchllm"]["attempts"], 2, "{r}");
    let output: serde_json::Value =
        serde_json::from_str(r["batchllm"]["output"].as_str().expect("output")).expect("json");
    assert_eq!(output, serde_json::json!({"title": "title-value", "year": "year-value", "genre": "genre-value"}));
    let prompts: Vec<String> = chat_requests(&server).into_iter().filter_map(|r| r.prompt).collect();
    assert_eq!(prompts.len(), 2);
    assert!(prompts[1].ends_with("Return only these missing fields as a JSON object: year, genre."), "{}", prompts[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_mode_parameters_reach_the_provider_unchanged() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let format = serde_json::json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}});
    let line = serde_json::json!({"id": "j", "prompt": "hi", "params": {"response_format": format}}).to_string();
    let jobs = ws.jobs(&[line]);
    let args = openai_args(&server);
    let out = ws.run(&jobs, &strs(&args), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(chat_requests(&server)[0].body["response_format"], format, "structured-output settings pass through");
}
