//! The plugin templates (`plugins/templates/<language>/`): each builds from its
//! own folder with one command (`./build.sh`), passes every row of
//! `batchllm-host plugin check`, and runs a small real batch through the real
//! binary against the mock provider with the records a plugin author would
//! expect (output, usage, retried 429 and 500, honest failure classes).
//!
//! Each template is built once per test run (its build script returns at once
//! when the component is up to date). To keep test time small, each reuses
//! what the repository's own plugins already installed or built, with the
//! same pinned versions: the Rust template the plugins workspace's target
//! folder, the JS and Python templates the toolchains of `plugins/openai-js`
//! and `plugins/openai-py` when those installs are complete (otherwise they
//! install their own); the Go template always uses the toolchain of its SDK,
//! `plugins/sdk-go`, which `plugins/openai-go` shares. A template that
//! cannot be built fails the test with its build script's message: templates
//! are never skipped.
//!
//! To add a template, add a row to [`templates`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use batchllm_mock::LoggedRequest;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::*;

/// A template under test.
#[derive(Clone, Copy)]
pub(crate) struct Template {
    /// Its folder under `plugins/templates/`, also its name in messages.
    pub(crate) dir: &'static str,
    /// Extra environment for its `build.sh`, e.g. a toolchain to reuse
    /// (`|| Vec::new()` for none).
    pub(crate) build_env: fn() -> Vec<(&'static str, PathBuf)>,
}

/// Every template. Rows run concurrently, each on its own mock provider.
pub(crate) fn templates() -> Vec<Template> {
    vec![
        Template { dir: "rust", build_env: rust_target_dir },
        Template { dir: "js", build_env: js_toolchain },
        Template { dir: "python", build_env: python_toolchain },
        Template { dir: "go", build_env: Vec::new },
    ]
}

/// The repository root.
pub(crate) fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent")
}

/// `(var, path)` when `plugins/<plugin>` holds a complete toolchain install:
/// its build script writes `stamp` (the SHA-256 of `manifest`) only after the
/// install finished, so a half-done or outdated install is never reused. A
/// variable the caller already set wins.
fn reuse(var: &'static str, plugin: &str, manifest: &str, stamp: &str, path: &str) -> Vec<(&'static str, PathBuf)> {
    if std::env::var_os(var).is_some() {
        return Vec::new();
    }
    let dir = repo().join("plugins").join(plugin);
    let (Ok(manifest), Ok(stamp)) = (std::fs::read(dir.join(manifest)), std::fs::read_to_string(dir.join(stamp)))
    else {
        return Vec::new();
    };
    if hex::encode(Sha256::digest(&manifest)) != stamp.trim() {
        return Vec::new();
    }
    vec![(var, dir.join(path))]
}

/// The plugins workspace's target folder (ignored by git): it already holds
/// wit-bindgen and serde_json built for `wasm32-wasip2` with the same
/// versions and release profile, so the template compiles only its own crate
/// (about 1 s instead of about a minute).
pub(crate) fn rust_target_dir() -> Vec<(&'static str, PathBuf)> {
    if std::env::var_os("CARGO_TARGET_DIR").is_some() {
        return Vec::new();
    }
    vec![("CARGO_TARGET_DIR", repo().join("plugins/target"))]
}

/// The componentize-js install of `plugins/openai-js` (same pinned version).
fn js_toolchain() -> Vec<(&'static str, PathBuf)> {
    reuse(
        "COMPONENTIZE_JS_NODE_MODULES",
        "openai-js",
        "package-lock.json",
        "node_modules/.batchllm-lock-hash",
        "node_modules",
    )
}

/// The componentize-py install of `plugins/openai-py` (same pinned version).
fn python_toolchain() -> Vec<(&'static str, PathBuf)> {
    reuse("COMPONENTIZE_PY", "openai-py", "requirements.txt", ".venv/.batchllm-req-hash", ".venv/bin/componentize-py")
}

/// The component `plugins/templates/<dir>/build.sh` builds, built once per
/// test run whatever the number of tests asking for it.
pub(crate) fn built(template: Template) -> Result<PathBuf, String> {
    crate::fixtures::once(&format!("plugins/templates/{}", template.dir), || build(template))
}

fn build(template: Template) -> Result<PathBuf, String> {
    let script = repo().join("plugins/templates").join(template.dir).join("build.sh");
    crate::fixtures::build_script(&script, &(template.build_env)())
}

/// Runs `plugin check` on `wasm`: every row must pass.
pub(crate) async fn plugin_check(wasm: &Path) -> Result<String, String> {
    let out = tokio::process::Command::new(BIN)
        .args(["plugin", "check"])
        .arg(wasm)
        .arg("--cache-dir")
        .arg(cache_dir())
        .env_remove("RUST_LOG")
        .output()
        .await
        .map_err(|e| format!("cannot run {BIN}: {e}"))?;
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let all_pass = table.lines().last().is_some_and(|l| l.ends_with(" passed, 0 failed"))
        && table.lines().filter(|l| !l.ends_with(" failed")).all(|l| l.starts_with("pass"));
    let rows = [
        "world",
        "prepare",
        "success with usage",
        "429 is rate-limited with the wait",
        "500 is overloaded (retryable)",
        "400 is a client error",
        "malformed body is an invalid response",
        "an empty answer is no-content (not retried)",
        "respects the time given",
        "cleanup",
    ];
    let missing: Vec<&str> =
        rows.into_iter().filter(|row| !table.lines().any(|l| l.starts_with("pass") && l.contains(row))).collect();
    if out.status.code() != Some(0) || !all_pass || !missing.is_empty() {
        return Err(format!(
            "plugin check failed ({}; rows not passed: {missing:?}):\n{table}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(table)
}

/// One job of the small batch and what its record must say.
struct Row {
    id: &'static str,
    line: String,
    /// The prompt the mock logs for this job's requests.
    logged: &'static str,
    /// `None` for success, else the record's `error.code`.
    error: Option<&'static str>,
    attempts: u64,
    requests: usize,
}

fn rows() -> Vec<Row> {
    let simple = |id: &'static str, prompt: &'static str, error, attempts, requests| Row {
        id,
        line: job(id, prompt),
        logged: prompt,
        error,
        attempts,
        requests,
    };
    let batch = |id, url, body: Value| json!({"custom_id": id, "method": "POST", "url": url, "body": body}).to_string();
    vec![
        Row {
            id: "hello",
            line:
                json!({"id": "hello", "prompt": "hello there", "params": {"temperature": 0.2}, "context": {"row": 1}})
                    .to_string(),
            logged: "hello there",
            error: None,
            attempts: 1,
            requests: 1,
        },
        Row {
            id: "batch",
            line: batch(
                "batch",
                "/v1/chat/completions",
                json!({"model": "gpt-4o", "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "What is 2+2?"}
                ]}),
            ),
            logged: "What is 2+2?",
            error: None,
            attempts: 1,
            requests: 1,
        },
        // A 429 with retry-after, then a success: the host retried, not the plugin.
        simple("limited", "[[mock:fail-first=1]] [[mock:status=429]] limited once", None, 2, 2),
        simple("flaky", "[[mock:fail-first=1]] [[mock:status=500]] flaky once", None, 2, 2),
        simple("bad", "[[mock:status=400]] bad", Some("client_error"), 1, 1),
        simple("broke", "[[mock:insufficient_quota]] broke", Some("quota_exhausted"), 1, 1),
        simple("garbled", "[[mock:malformed]] garbled", Some("invalid_response"), 3, 3),
        // No content (the budget spent on reasoning): billed, never retried.
        simple("spent", "[[mock:answer=empty]] think hard", Some("no_content"), 1, 1),
        // Refused by the plugin before any request.
        Row {
            id: "embed",
            line: batch("embed", "/v1/embeddings", json!({"input": "embed me"})),
            logged: "embed me",
            error: Some("client_error"),
            attempts: 1,
            requests: 0,
        },
    ]
}

/// Runs the small batch through `wasm` against a fresh mock provider and
/// checks every record.
pub(crate) async fn run_batch(wasm: &Path) -> Result<(), String> {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let table = rows();
    let jobs = ws.jobs(&table.iter().map(|r| r.line.clone()).collect::<Vec<_>>());
    let args = [
        "--plugin".to_string(),
        wasm.display().to_string(),
        "--allow-host".into(),
        grant(&server),
        "--plugin-config".into(),
        format!("base_url={}", server.base_url()),
        "--api-key-env".into(),
        "E2E_API_KEY".into(),
        // Keep going after the quota failure: it is in the table.
        "--fail-fast".into(),
        "none".into(),
        "--max-attempts".into(),
        "3".into(),
        "--backoff-initial".into(),
        "0.01".into(),
        "--backoff-max".into(),
        "0.05".into(),
    ];
    let out = ws.run(&jobs, &strs(&args), &[("E2E_API_KEY", API_KEY)]).await;
    let requests = server.requests();
    server.shutdown().await;
    check_batch(&table, &out, &requests).map_err(|e| format!("{e}\nstderr:\n{}", out.stderr))
}

fn check_batch(table: &[Row], out: &Outcome, requests: &[LoggedRequest]) -> Result<(), String> {
    let ensure = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
    ensure(out.code == 1, format!("exit code {} (1: some items failed)", out.code))?;
    ensure(out.results.len() == table.len(), format!("{} records for {} jobs", out.results.len(), table.len()))?;
    let record = |id: &str| {
        let mut found = out.results.iter().filter(|r| r["custom_id"] == id);
        match (found.next(), found.next()) {
            (Some(r), None) => Ok(r),
            _ => Err(format!("no single record for {id}")),
        }
    };
    for row in table {
        let r = record(row.id)?;
        let b = &r["batchllm"];
        match row.error {
            None => ensure(
                r["error"].is_null() && b["status"] == "succeeded",
                format!("{}: expected a success, got {r}", row.id),
            )?,
            Some(code) => ensure(r["error"]["code"] == code, format!("{}: expected {code}, got {r}", row.id))?,
        }
        ensure(b["attempts"] == row.attempts, format!("{}: expected {} attempts, got {r}", row.id, row.attempts))?;
        let seen = requests.iter().filter(|q| q.prompt.as_deref() == Some(row.logged)).count();
        ensure(
            seen == row.requests,
            format!("{}: the provider saw {seen} requests, expected {}", row.id, row.requests),
        )?;
    }

    // The success: the echo, the usage the mock billed, metadata, context.
    let hello = &record("hello")?["batchllm"];
    ensure(hello["output"] == "echo: hello there", format!("hello: output {}", hello["output"]))?;
    ensure(hello["context"] == json!({"row": 1}), format!("hello: context {}", hello["context"]))?;
    let served = requests.iter().find(|q| q.prompt.as_deref() == Some("hello there")).ok_or("hello was not logged")?;
    let billed = served.usage.as_ref().ok_or("the mock billed no usage for hello")?;
    ensure(
        hello["usage"]["input_tokens"] == billed["prompt_tokens"]
            && hello["usage"]["output_tokens"] == billed["completion_tokens"],
        format!("hello: usage {} but the mock billed {billed}", hello["usage"]),
    )?;
    ensure(hello["metadata"]["finish_reason"] == "stop", format!("hello: metadata {}", hello["metadata"]))?;
    ensure(
        served.body["temperature"] == json!(0.2) && served.body["model"] == "gpt-4o-mini",
        format!("hello: the job's params and the default model go into the request: {}", served.body),
    )?;
    // The OpenAI Batch line: its body is the request, its model wins.
    let batch = record("batch")?;
    ensure(batch["batchllm"]["output"] == "echo: What is 2+2?", format!("batch: {batch}"))?;
    ensure(batch["response"]["body"]["model"] == "gpt-4o", format!("batch: the job's model is used: {batch}"))?;
    // Rate limits and server errors were retried by the host.
    let limited = &record("limited")?["batchllm"];
    ensure(limited["rate_limit_retries"] == 1, format!("limited: {limited}"))?;
    ensure(record("bad")?["batchllm"]["http_status"] == 400, "bad: the HTTP status is recorded".into())?;
    let spent = record("spent")?;
    ensure(
        spent["batchllm"]["usage"]["output_tokens"].as_u64() > Some(0)
            && spent["error"]["message"].as_str().is_some_and(|m| m.contains("finish_reason \"length\"")),
        format!("spent: the reason and the billed tokens are recorded: {spent}"),
    )?;
    // Credentials reached the provider only through the host's substitution.
    for q in requests {
        ensure(
            q.headers.iter().any(|(k, v)| k == "authorization" && v == &format!("Bearer {API_KEY}")),
            format!("request {} carried no substituted key: {:?}", q.seq, q.headers),
        )?;
    }
    Ok(())
}

/// Builds `template`, checks it with `plugin check`, runs the small batch.
/// The check runs first: it also compiles the component into the shared
/// cache, so the batch does not compile it again.
async fn verify(template: Template) -> Result<String, String> {
    let wasm = tokio::task::spawn_blocking(move || built(template)).await.map_err(|e| e.to_string())??;
    let size = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
    let started = Instant::now();
    let table = plugin_check(&wasm).await?;
    let checked = started.elapsed();
    run_batch(&wasm).await?;
    Ok(format!(
        "{}: {size} bytes; plugin check {checked:.1?}, batch {:.1?}\n{table}",
        wasm.display(),
        started.elapsed() - checked
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_template_builds_passes_plugin_check_and_runs_a_batch() {
    let mut tasks = tokio::task::JoinSet::new();
    for template in templates() {
        tasks.spawn(async move { (template.dir, verify(template).await) });
    }
    let mut failures = Vec::new();
    for (dir, outcome) in tasks.join_all().await {
        match outcome {
            Ok(report) => eprintln!("template {dir}: {report}"),
            Err(e) => failures.push(format!("template {dir}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
