//! `batchllm-host plugin check`: every openai plugin passes, whatever its
//! language and whichever contract version it was built against; plugins
//! that break the contract fail with the reason.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::*;

/// A copy of the openai plugin as built against contract 0.1, before 0.2
/// existed (see tests/plugins/fixtures/README.md).
fn openai_0_1() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/plugins/fixtures/openai-0.1.wasm")
}

async fn check(plugin: &str) -> (i32, String) {
    let out = tokio::process::Command::new(BIN)
        .args(["plugin", "check", plugin, "--cache-dir"])
        .arg(cache_dir())
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_plugins_in_every_language_pass() {
    for plugin in crate::conformance::plugins() {
        let (code, table) = check(&plugin.arg).await;
        assert_eq!(code, 0, "{}:\n{table}", plugin.name);
        assert!(table.ends_with("10 passed, 0 failed\n"), "{}:\n{table}", plugin.name);
        assert!(table.contains("llm-strategy@0.2.0"), "{}:\n{table}", plugin.name);
        for row in [
            "world",
            "success with usage",
            "429 is rate-limited with the wait",
            "an empty answer is no-content (not retried)",
            "respects the time given",
        ] {
            assert!(
                table.lines().any(|l| l.starts_with("pass") && l.contains(row)),
                "{}: `{row}`:\n{table}",
                plugin.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_retries_inside_execute_fails_with_the_reason() {
    let broken = crate::fixtures::test_plugin("batchllm_broken_openai.wasm");
    let (code, table) = check(broken.to_str().expect("utf8")).await;
    assert_eq!(code, 1, "{table}");
    let row = table.lines().find(|l| l.contains("429 is rate-limited")).expect("row");
    assert!(
        row.starts_with("FAIL") && row.contains("sent 2 requests for one execute: plugins must not retry"),
        "{row}"
    );
    // It also retries the empty answer: the no-content row fails too.
    assert!(table.contains("5 failed"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_never_calls_the_provider_fails_and_a_bad_path_is_explained() {
    let (code, table) = check("mock").await;
    assert_eq!(code, 1, "{table}");
    assert!(table.lines().any(|l| l.starts_with("FAIL") && l.contains("sent no request")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("pass") && l.contains("world")), "{table}");
    let (code, table) = check("no-such-plugin.wasm").await;
    assert_eq!(code, 1);
    assert!(table.starts_with("FAIL  load") && table.contains("not found"), "{table}");
}

/// A plugin built against contract 0.1 keeps loading and passes every row
/// its version can meet; the no-content row, which 0.1 cannot express, is
/// not asked of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_against_contract_0_1_still_passes() {
    let (code, table) = check(openai_0_1().to_str().expect("utf8")).await;
    assert_eq!(code, 0, "{table}");
    assert!(table.ends_with("9 passed, 0 failed\n"), "{table}");
    let world = table.lines().find(|l| l.contains("world")).expect("world row");
    assert!(world.starts_with("pass") && world.contains("llm-strategy@0.1.0"), "{world}");
    assert!(!table.contains("no-content"), "{table}");
}

/// A 0.1 plugin runs a batch as it always did: successes with usage, the
/// host's retries on a 429 and a 500, classes as it reports them. (An empty
/// answer stays what that plugin made of it: a success with empty output.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_against_contract_0_1_runs_a_batch() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&[
        job("ok", "hello there"),
        job("limited", "[[mock:fail-first=1]] [[mock:status=429]] limited once"),
        job("flaky", "[[mock:fail-first=1]] [[mock:status=500]] flaky once"),
        job("bad", "[[mock:status=400]] bad"),
        job("spent", "[[mock:answer=empty]] think hard"),
    ]);
    let plugin = openai_0_1();
    let args = [
        "--plugin".to_string(),
        plugin.display().to_string(),
        "--allow-host".into(),
        grant(&server),
        "--plugin-config".into(),
        format!("base_url={}", server.base_url()),
        "--api-key-env".into(),
        "E2E_API_KEY".into(),
        "--backoff-initial".into(),
        "0.01".into(),
    ];
    let out = ws.run(&jobs, &strs(&args), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let ok = out.result("ok");
    assert_eq!(ok["batchllm"]["output"], "echo: hello there", "{ok}");
    assert!(ok["batchllm"]["usage"]["input_tokens"].as_u64() > Some(0), "{ok}");
    for (id, attempts) in [("limited", 2), ("flaky", 2)] {
        let r = out.result(id);
        assert_eq!(
            (r["batchllm"]["status"].as_str(), r["batchllm"]["attempts"].as_u64()),
            (Some("succeeded"), Some(attempts)),
            "{r}"
        );
    }
    assert_eq!(out.result("bad")["error"]["code"], "client_error");
    let spent = out.result("spent");
    assert_eq!(
        (&spent["batchllm"]["status"], &spent["batchllm"]["output"]),
        (&Value::from("succeeded"), &Value::from("")),
        "{spent}"
    );
    server.shutdown().await;
}
