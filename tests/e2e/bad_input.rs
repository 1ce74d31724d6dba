//! Bad input is refused up front: exit code 2, a one-line error naming the
//! file, the line and the fix, and no request sent.

use crate::support::*;

async fn refused(lines: &[String], expect: &[&str]) {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(lines);
    let args = openai_args(&server);
    let out = ws.run(&jobs, &strs(&args), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 2, "stderr:\n{}", out.stderr);
    for needle in expect {
        assert!(out.stderr.contains(needle), "expected `{needle}` in:\n{}", out.stderr);
    }
    assert!(out.stderr.contains("jobs.jsonl"), "names the file:\n{}", out.stderr);
    assert!(server.requests().is_empty(), "no request may be sent");
    assert!(out.results.is_empty(), "no results are written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_line() {
    refused(
        &[job("a", "x"), "{\"id\": \"b\", \"prompt\": ".into()],
        &["jobs.jsonl:2: invalid JSON", "each line must be exactly one JSON object"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_id() {
    refused(&[job("a", "x"), r#"{"prompt": "no id here"}"#.into()], &["jobs.jsonl:2: missing id", "custom_id"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_id() {
    refused(&[job("a", "x"), job("b", "y"), job("a", "z")], &["jobs.jsonl:3: duplicate id `a` (first used on line 1)"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misspelt_field() {
    refused(&[r#"{"id": "a", "promt": "x"}"#.into()], &["jobs.jsonl:1: unknown field `promt`"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_plugin() {
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("a", "x")]);
    let out = ws.run(&jobs, &["--plugin", "antropic"], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("plugin `antropic` not found"), "{}", out.stderr);
    assert!(out.stderr.contains("built-ins: openai, anthropic, gemini, mock, smart-retry"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_that_is_not_a_component() {
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("a", "x")]);
    let text = ws.path("notes.wasm");
    std::fs::write(&text, "definitely not wasm").expect("write");
    let out = ws.run(&jobs, &["--plugin", text.to_str().expect("utf8")], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("notes.wasm` is not a WebAssembly file"), "{}", out.stderr);

    let core = ws.path("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    let out = ws.run(&jobs, &["--plugin", core.to_str().expect("utf8")], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is a core WebAssembly module, not a component"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_that_does_not_implement_the_world() {
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("a", "x")]);
    // The smallest valid component: it exports nothing.
    let empty = ws.path("empty-component.wasm");
    std::fs::write(&empty, b"\0asm\x0d\0\x01\0").expect("write");
    let out = ws.run(&jobs, &["--plugin", empty.to_str().expect("utf8")], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("does not fit the `batchllm:strategy/strategy` world"), "{}", out.stderr);
    assert!(out.stderr.contains("llm-strategy"), "names what is missing:\n{}", out.stderr);
    assert!(out.results.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_are_usage_errors() {
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("a", "x")]);
    let out = ws.run(&jobs, &["--plugin", "mock", "--allow-host", "https://x.com/v1"], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("give a host, not a URL"), "{}", out.stderr);
    let out = ws.run(&jobs, &["--plugin", "openai", "--api-key-env", "E2E_UNSET_VARIABLE_X"], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("E2E_UNSET_VARIABLE_X"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_documents_exit_codes() {
    let out = tokio::process::Command::new(BIN).arg("--help").output().await.expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["--plugin", "--concurrency", "--allow-host", "Exit codes", "130 interrupted"] {
        assert!(text.contains(needle), "`{needle}` missing from --help:\n{text}");
    }
}
