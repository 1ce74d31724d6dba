//! `batchllm-host plugin check`: every openai plugin passes, whatever its
//! language; plugins that break the contract fail with the reason.

use crate::support::{BIN, cache_dir};

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
        assert!(table.ends_with("9 passed, 0 failed\n"), "{}:\n{table}", plugin.name);
        for row in ["world", "success with usage", "429 is rate-limited with the wait", "respects the time given"] {
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
    let broken = crate::hostile::plugins_dir().join("batchllm_broken_openai.wasm");
    let (code, table) = check(broken.to_str().expect("utf8")).await;
    assert_eq!(code, 1, "{table}");
    let row = table.lines().find(|l| l.contains("429 is rate-limited")).expect("row");
    assert!(
        row.starts_with("FAIL") && row.contains("sent 2 requests for one execute: plugins must not retry"),
        "{row}"
    );
    assert!(table.contains("4 failed"), "{table}");
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
