//! Conformance: the openai plugin written in JavaScript (`plugins/openai-js`,
//! on the `http.send` import and, as `openai-js-fetch.wasm`, on `fetch` over
//! wasi:http), in Python (`plugins/openai-py`) and in Go (`plugins/openai-go`)
//! behave as the Rust one.
//!
//! One scenario table runs through the real binary against a fresh mock
//! provider for each plugin. Each run is checked on its own (classes,
//! attempts, exactly one provider request per `execute`), then the results
//! records must equal the Rust plugin's as parsed JSON once the fields that
//! legitimately differ between runs are removed (latency, the run's
//! fingerprint, the mock's clock), and so must the requests the mock received
//! (method, path, credentials, and the body as a JSON value: key order and
//! `1.0` against `1` may differ between languages, a digit may not). Every
//! port reads answers through the host's classifier (the Rust plugin's own
//! code), so statuses, classes, outputs, usage and messages agree. Denied
//! egress, bad configurations and timeouts are compared too.
//!
//! The JS, Python and Go components are built from source by their build
//! scripts (`plugins/openai-{js,py,go}/build.sh`), once per test run; the
//! scripts return at once when the components are up to date. A missing
//! toolchain fails these tests with the build script's message: they are
//! never skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use batchllm_mock::{LoggedRequest, MockServer};
use serde_json::{Value, json};

use crate::support::*;

/// A plugin under test: how it is named in messages and the `--plugin` value.
#[derive(Clone)]
pub(crate) struct Plugin {
    pub(crate) name: &'static str,
    pub(crate) arg: String,
}

/// The Rust plugin (the reference, first), the JS plugin on the `http.send`
/// import and on `fetch` (wasi:http), the Python plugin and the Go plugin.
pub(crate) fn plugins() -> Vec<Plugin> {
    let js = built("openai-js");
    let js_fetch = js.with_file_name("openai-js-fetch.wasm");
    assert!(js_fetch.is_file(), "plugins/openai-js/build.sh did not build {}", js_fetch.display());
    let plugins = vec![
        Plugin { name: "rust", arg: "openai".into() },
        Plugin { name: "js", arg: js.display().to_string() },
        Plugin { name: "js-fetch", arg: js_fetch.display().to_string() },
        Plugin { name: "python", arg: built("openai-py").display().to_string() },
        Plugin { name: "go", arg: built("openai-go").display().to_string() },
    ];
    WARM.get_or_init(|| plugins.iter().for_each(warm));
    plugins
}

static WARM: OnceLock<()> = OnceLock::new();

/// Compiles `plugin` into the shared compile cache, one component at a time,
/// before the tests run it: otherwise every concurrent run of a cold cache
/// compiles the same large component (6-13 s of Cranelift each).
fn warm(plugin: &Plugin) {
    let dir = tempfile::tempdir().expect("tempdir");
    let jobs = dir.path().join("jobs.jsonl");
    std::fs::write(&jobs, job("warm", "never sent") + "\n").expect("write jobs");
    // An unknown configuration key: the plugin is compiled, then `prepare`
    // refuses, so nothing is sent (no key is needed to get that far).
    let out = std::process::Command::new(BIN)
        .arg(&jobs)
        .args(["--plugin", &plugin.arg, "--plugin-config", "warm_up=1", "--plugin-config", "api_key_secret=null"])
        .arg("--output")
        .arg(dir.path().join("results.jsonl"))
        .arg("--cache-dir")
        .arg(cache_dir())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(3) && stderr.contains("unknown key \"warm_up\""),
        "{}: compiling and preparing {} failed ({}):\n{stderr}",
        plugin.name,
        plugin.arg,
        out.status
    );
}

/// The component built by `plugins/<dir>/build.sh` (once per test run).
fn built(dir: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins").join(dir).join("build.sh");
    let result = crate::fixtures::once(&format!("plugins/{dir}"), || crate::fixtures::build_script(&script, &[]));
    match result {
        Ok(path) => path.clone(),
        Err(e) => panic!(
            "the {dir} plugin could not be built, so its conformance tests cannot run.\n\
             {e}\n\
             plugins/openai-js needs node >= 18 and npm; plugins/openai-py needs python3 >= 3.10 with \
             venv and pip; plugins/openai-go needs the same python3 and cargo; the first build installs \
             the pinned toolchain from the npm registry, PyPI or crates.io (see plugins/README.md)."
        ),
    }
}

const FAST: [&str; 4] = ["--backoff-initial", "0.01", "--backoff-max", "0.05"];

/// The arguments that point `plugin` at `server`, with or without the key.
fn plugin_args(plugin: &Plugin, server: &MockServer, with_key: bool) -> Vec<String> {
    let mut args = vec![
        "--plugin".to_string(),
        plugin.arg.clone(),
        "--allow-host".into(),
        grant(server),
        "--plugin-config".into(),
        format!("base_url={}", server.base_url()),
        // One item at a time: the mock numbers its answers (ids, request ids)
        // in arrival order, which must not depend on scheduling.
        "--concurrency".into(),
        "1".into(),
        "--max-attempts".into(),
        "3".into(),
        // Keep going after auth / quota failures: they are in the table.
        "--fail-fast".into(),
        "none".into(),
    ];
    args.extend(FAST.iter().map(|s| s.to_string()));
    if with_key {
        args.extend(["--api-key-env".to_string(), "E2E_API_KEY".into()]);
    }
    args
}

fn batch_line(id: &str, url: &str, body: Value) -> String {
    json!({"custom_id": id, "method": "POST", "url": url, "body": body}).to_string()
}

/// One row of the scenario table.
struct Scenario {
    id: &'static str,
    line: String,
    /// The prompt the mock logs for this item's requests: the last user
    /// message, or the embeddings inputs joined by a newline.
    logged: &'static str,
    /// `None` for success, else the results file's `error.code`.
    error: Option<&'static str>,
    attempts: u64,
    /// Requests the provider must have seen for this item.
    requests: usize,
    /// The HTTP status recorded in the result, when there was an answer.
    status: Option<u64>,
}

fn scenarios() -> Vec<Scenario> {
    let row = |id, line, logged, error, attempts, requests, status| Scenario {
        id,
        line,
        logged,
        error,
        attempts,
        requests,
        status,
    };
    // A simple line whose prompt is all the mock needs to see.
    let simple = |id: &'static str, prompt: &'static str, error, attempts, requests, status| {
        row(id, job(id, prompt), prompt, error, attempts, requests, status)
    };
    vec![
        row(
            "chat",
            r#"{"id":"chat","prompt":"hello there","context":{"row":1}}"#.into(),
            "hello there",
            None,
            1,
            1,
            Some(200),
        ),
        row(
            "chat-params",
            r#"{"id":"chat-params","prompt":"with params","params":{"temperature":0.2,"max_tokens":64,"top_p":1.0,"seed":12345678901234567}}"#
                .into(),
            "with params",
            None,
            1,
            1,
            Some(200),
        ),
        row(
            "batch-chat",
            batch_line(
                "batch-chat",
                "/v1/chat/completions",
                json!({"model": "gpt-4o", "messages": [
                    {"role": "system", "content": "Be brief. \"Quotes\", tabs\t and ünïcödé 😀"},
                    {"role": "user", "content": "What is 2+2?"}
                ], "temperature": 0.7, "metadata": {"b": 2, "a": 1}}),
            ),
            "What is 2+2?",
            None,
            1,
            1,
            Some(200),
        ),
        row(
            "embed",
            batch_line("embed", "/v1/embeddings", json!({"model": "text-embedding-3-small", "input": "embed me"})),
            "embed me",
            None,
            1,
            1,
            Some(200),
        ),
        row(
            "embed-list",
            batch_line("embed-list", "/v1/embeddings", json!({"input": ["first text", "second text"]})),
            "first text\nsecond text",
            None,
            1,
            1,
            Some(200),
        ),
        // A 429 with retry-after: rate_limited, retried after the wait.
        simple("limited", "[[mock:fail-first=1]] [[mock:status=429]] limited once", None, 2, 2, Some(200)),
        // Two 500s: overloaded, retried with backoff until success.
        simple("flaky-500", "[[mock:fail-first=2]] [[mock:status=500]] flaky", None, 3, 3, Some(200)),
        simple("down-503", "[[mock:status=503]] down", Some("overloaded"), 3, 3, Some(503)),
        simple("bad-400", "[[mock:status=400]] bad", Some("client_error"), 1, 1, Some(400)),
        simple("auth-401", "[[mock:status=401]] who", Some("auth"), 1, 1, Some(401)),
        simple("quota", "[[mock:insufficient_quota]] broke", Some("quota_exhausted"), 1, 1, Some(429)),
        // Invalid JSON: invalid_response, retried without backoff.
        simple("malformed", "[[mock:malformed]] garbled", Some("invalid_response"), 3, 3, Some(200)),
        // Answers with no content: no_content, billed and never retried.
        simple("spent", "[[mock:answer=empty]] think hard", Some("no_content"), 1, 1, Some(200)),
        simple("filtered", "[[mock:answer=filtered]] say it", Some("no_content"), 1, 1, Some(200)),
        simple("no-choices", "[[mock:answer=no-choices]] anyone", Some("no_content"), 1, 1, Some(200)),
        simple("null", "[[mock:answer=null]] nothing", Some("no_content"), 1, 1, Some(200)),
        // Refused by the plugin before any request. (Unsupported endpoints
        // are in `each_build_serves_its_endpoints`: the builds differ there.)
        row(
            "streaming",
            r#"{"id":"streaming","prompt":"x","params":{"stream":true}}"#.into(),
            "",
            Some("client_error"),
            1,
            0,
            None,
        ),
    ]
}

/// The key the mock log uses for an item's requests (its prompt text).
fn logged_prompt(r: &LoggedRequest) -> String {
    r.prompt.clone().unwrap_or_default()
}

/// Runs `lines` through `plugin` against a fresh mock provider.
async fn run(plugin: &Plugin, lines: &[String], with_key: bool, extra: &[&str]) -> (Outcome, Vec<LoggedRequest>) {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(lines);
    let args = plugin_args(plugin, &server, with_key);
    let out = ws.run(&jobs, &[&strs(&args)[..], extra].concat(), &[("E2E_API_KEY", API_KEY)]).await;
    let mut requests = server.requests();
    requests.sort_by_key(|r| r.seq);
    (out, requests)
}

/// [`run`] for every plugin at once, results in the order of `plugins`.
async fn run_all(
    plugins: &[Plugin],
    lines: &[String],
    with_key: bool,
    extra: &[&'static str],
) -> Vec<(Outcome, Vec<LoggedRequest>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, plugin) in plugins.iter().cloned().enumerate() {
        let (lines, extra) = (lines.to_vec(), extra.to_vec());
        tasks.spawn(async move { (i, run(&plugin, &lines, with_key, &extra).await) });
    }
    let mut runs: Vec<_> = tasks.join_all().await;
    runs.sort_by_key(|(i, _)| *i);
    runs.into_iter().map(|(_, run)| run).collect()
}

/// What the three plugins must agree on in a results record: everything but
/// the latency, the run's fingerprint and the mock's clock (`created`, also
/// quoted inside the malformed body's excerpt).
fn normalized(record: &Value) -> Value {
    let mut r = record.clone();
    if let Some(b) = r.get_mut("batchllm").and_then(Value::as_object_mut) {
        b.remove("latency_ms");
        // When the record was written: a clock, not the plugin's answer.
        b.remove("finished_at");
        // Identifies the run (plugin digest, configuration), different by design.
        b.remove("fingerprint");
    }
    scrub_created(&mut r);
    r
}

fn scrub_created(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "created" && child.is_number() {
                    *child = json!(0);
                } else {
                    scrub_created(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_created),
        Value::String(s) => *s = scrub_created_text(s),
        _ => {}
    }
}

/// `"created":1795942041` → `"created":0` inside text.
fn scrub_created_text(s: &str) -> String {
    const KEY: &str = "\"created\":";
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(KEY) {
        out.push_str(&rest[..i + KEY.len()]);
        rest = &rest[i + KEY.len()..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push('0');
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// `value` with every integral float below 2^53 written as an integer: `1.0`
/// and `1` are the same JSON number to a provider (JavaScript prints one as
/// the other), while integers, exact in every port, stay as sent.
fn canonical_numbers(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => json!(f as i64),
            _ => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(canonical_numbers).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), canonical_numbers(v))).collect()),
        _ => value.clone(),
    }
}

/// What the plugins must agree on in a provider request.
fn request_view(r: &LoggedRequest) -> Value {
    let header = |name: &str| {
        r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    json!({
        "seq": r.seq,
        "method": r.method,
        "path": r.path,
        "body": canonical_numbers(&r.body),
        "authorization": header("authorization"),
        "content-type": header("content-type"),
        "status": r.status,
    })
}

/// Results records by custom_id, normalised.
fn by_id(out: &Outcome) -> BTreeMap<String, Value> {
    out.results.iter().map(|r| (r["custom_id"].as_str().expect("custom_id").to_string(), normalized(r))).collect()
}

/// Panics with the first difference between the Rust plugin's `reference` and `other`.
fn assert_same(what: &str, name: &str, reference: &BTreeMap<String, Value>, other: &BTreeMap<String, Value>) {
    assert_same_as("rust", what, name, reference, other);
}

/// Panics with the first difference between `reference` (of the plugin
/// `reference_name`) and `other`.
fn assert_same_as(
    reference_name: &str,
    what: &str,
    name: &str,
    reference: &BTreeMap<String, Value>,
    other: &BTreeMap<String, Value>,
) {
    let ids: Vec<&String> = reference.keys().chain(other.keys()).collect();
    for id in ids {
        let (a, b) = (reference.get(id), other.get(id));
        if a != b {
            let pretty = |v: Option<&Value>| {
                v.map_or("(missing)".to_string(), |v| serde_json::to_string_pretty(v).unwrap_or_default())
            };
            panic!(
                "{what} of the {name} plugin differs from the {reference_name} plugin's for `{id}`\n--- {reference_name}\n{}\n--- {name}\n{}",
                pretty(a),
                pretty(b)
            );
        }
    }
}

/// Checks one plugin's run of the table on its own terms.
fn check_run(plugin: &Plugin, table: &[Scenario], out: &Outcome, requests: &[LoggedRequest]) {
    let name = plugin.name;
    assert_eq!(out.code, 1, "{name}: some items fail by design; stderr:\n{}", out.stderr);
    assert_eq!(out.results.len(), table.len(), "{name}: one result per job; stderr:\n{}", out.stderr);
    let attempts: u64 = out.results.iter().map(|r| r["batchllm"]["attempts"].as_u64().expect("attempts")).sum();
    let plugin_side: u64 = table.iter().filter(|s| s.requests == 0).map(|s| s.attempts).sum();
    assert_eq!(
        requests.len() as u64,
        attempts - plugin_side,
        "{name}: exactly one provider request per execute that sends one"
    );
    for s in table {
        let r = out.result(s.id);
        let ctx = format!("{name} plugin, `{}`: {r}", s.id);
        assert_eq!(r["batchllm"]["attempts"], s.attempts, "{ctx}");
        match s.error {
            None => {
                assert_eq!(r["error"], Value::Null, "{ctx}");
                assert_eq!(r["batchllm"]["status"], "succeeded", "{ctx}");
            }
            Some(code) => {
                assert_eq!(r["error"]["code"], code, "{ctx}");
                assert_eq!(r["batchllm"]["status"], "failed", "{ctx}");
            }
        }
        match s.status {
            Some(status) => assert_eq!(r["response"]["status_code"], status, "{ctx}"),
            None => assert_eq!(r["batchllm"]["http_status"], Value::Null, "{ctx}"),
        }
    }
    // Requests per item, from the mock's own log.
    for s in table {
        let seen = requests.iter().filter(|r| logged_prompt(r) == s.logged).count();
        assert_eq!(seen, s.requests, "{name} plugin: provider requests for `{}`", s.id);
    }

    // Success: the output and usage are what the server answered.
    let chat = out.result("chat");
    assert_eq!(chat["batchllm"]["output"], "echo: hello there", "{name}");
    assert_eq!(chat["batchllm"]["context"], json!({"row": 1}), "{name}");
    let served = requests.iter().find(|r| logged_prompt(r) == "hello there").expect("chat logged");
    let usage = served.usage.as_ref().expect("usage logged");
    assert_eq!(chat["batchllm"]["usage"]["input_tokens"], usage["prompt_tokens"], "{name}");
    assert_eq!(chat["batchllm"]["usage"]["output_tokens"], usage["completion_tokens"], "{name}");
    assert_eq!(chat["batchllm"]["metadata"]["finish_reason"], "stop", "{name}");
    let embed = out.result("embed");
    let output: Value = serde_json::from_str(embed["batchllm"]["output"].as_str().expect("output")).expect("JSON");
    assert_eq!(output, embed["response"]["body"]["data"], "{name}: embeddings output is the data array");
    assert_eq!(out.result("embed-list")["batchllm"]["usage"]["output_tokens"], 0, "{name}");
    assert!(out.result("limited")["batchllm"]["rate_limit_retries"].as_u64() >= Some(1), "{name}");
    let malformed = out.result("malformed")["error"]["message"].as_str().expect("message").to_string();
    assert!(malformed.starts_with("HTTP 200 response is not valid JSON (EOF while parsing"), "{name}: {malformed}");
    // No content: the reason in the record, the billed tokens kept.
    let spent = out.result("spent");
    let message = spent["error"]["message"].as_str().expect("message");
    assert!(message.starts_with("no content: finish_reason \"length\""), "{name}: {message}");
    assert!(spent["batchllm"]["usage"]["output_tokens"].as_u64() > Some(0), "{name}: {spent}");
    assert_eq!(spent["response"]["body"]["choices"][0]["finish_reason"], "length", "{name}");
    let filtered = out.result("filtered")["error"]["message"].as_str().expect("message").to_string();
    assert!(filtered.contains("\"content_filter\""), "{name}: {filtered}");
    // Credentials reached the provider only through the host's substitution.
    for r in requests {
        assert!(
            r.headers.iter().any(|(k, v)| k == "authorization" && v == &format!("Bearer {API_KEY}")),
            "{name}: {:?}",
            r.headers
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_python_and_go_openai_plugins_match_the_rust_plugin() {
    let plugins = plugins();
    let table = scenarios();
    let lines: Vec<String> = table.iter().map(|s| s.line.clone()).collect();
    let runs = run_all(&plugins, &lines, true, &[]).await;
    for (plugin, (out, requests)) in plugins.iter().zip(&runs) {
        check_run(plugin, &table, out, requests);
    }
    let reference = by_id(&runs[0].0);
    let reference_requests: BTreeMap<String, Value> =
        runs[0].1.iter().map(|r| (format!("{:03}", r.seq), request_view(r))).collect();
    for (plugin, (out, requests)) in plugins.iter().zip(&runs).skip(1) {
        assert_same("the results record", plugin.name, &reference, &by_id(out));
        let requests: BTreeMap<String, Value> =
            requests.iter().map(|r| (format!("{:03}", r.seq), request_view(r))).collect();
        assert_same("the provider request", plugin.name, &reference_requests, &requests);
    }
}

/// The endpoints beyond chat completions and embeddings (the Responses API
/// and legacy text completions) are served by the Rust build only; the JS,
/// Python and Go ports refuse them before any request, all three with the
/// same record, and every build refuses an endpoint none of them speaks.
/// (The Rust build's answers on these endpoints are checked in detail by
/// `openai_endpoints`; plugins/README.md has the table.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_build_serves_its_endpoints() {
    let plugins = plugins();
    let lines = vec![
        batch_line("responses", "/v1/responses", json!({"input": "via responses"})),
        batch_line("completions", "/v1/completions", json!({"prompt": "via completions"})),
        batch_line("images", "/v1/images/generations", json!({"prompt": "a cat"})),
    ];
    let runs = run_all(&plugins, &lines, true, &[]).await;
    for (plugin, (out, requests)) in plugins.iter().zip(&runs) {
        let name = plugin.name;
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        let rust = name == "rust";
        for (id, path) in [("responses", "/v1/responses"), ("completions", "/v1/completions")] {
            let r = out.result(id);
            if rust {
                assert_eq!(r["batchllm"]["status"], "succeeded", "{name}: {r}");
                assert_eq!(r["batchllm"]["output"], format!("echo: via {id}"), "{name}: {r}");
                assert!(requests.iter().any(|q| q.path == path), "{name}: {path} was not requested");
            } else {
                assert_eq!(r["error"]["code"], "client_error", "{name}: {r}");
                let message = r["error"]["message"].as_str().expect("message");
                assert!(message.starts_with(&format!("unsupported endpoint \"{path}\"")), "{name}: {message}");
            }
        }
        let images = out.result("images");
        assert_eq!(images["error"]["code"], "client_error", "{name}: {images}");
        assert_eq!(images["batchllm"]["http_status"], Value::Null, "{name}: refused before any request");
        let sent = if rust { 2 } else { 0 };
        assert_eq!(requests.len(), sent, "{name}: requests sent");
    }
    // The ports agree among themselves.
    let reference = by_id(&runs[1].0);
    for (plugin, (out, _)) in plugins.iter().zip(&runs).skip(2) {
        assert_same_as(plugins[1].name, "the results record", plugin.name, &reference, &by_id(out));
    }
}

/// Without a key, the built-in plugin is stopped at start: the host knows
/// the secret its configuration names. A plugin from a file may name its
/// secrets as it likes, so the host learns of a missing one only from the
/// request: the ports are denied per item, all the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_every_plugin_is_denied_the_same_way() {
    let plugins = plugins();
    let lines = vec![job("a", "no key"), batch_line("b", "/v1/embeddings", json!({"input": "no key"}))];
    let runs = run_all(&plugins, &lines, false, &[]).await;
    let ((builtin, sent), ports) = runs.split_first().expect("the Rust plugin runs first");
    assert_eq!(builtin.code, 2, "{}", builtin.stderr);
    assert!(builtin.stderr.contains("the openai plugin sends secret `api-key`, and none is configured"));
    assert!(builtin.results.is_empty() && sent.is_empty(), "nothing is sent or written");
    let plugins = &plugins[1..];
    for (plugin, (out, requests)) in plugins.iter().zip(ports) {
        let name = plugin.name;
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        for id in ["a", "b"] {
            let r = out.result(id);
            assert_eq!(r["error"]["code"], "egress_denied", "{name}: {r}");
            let message = r["error"]["message"].as_str().expect("message");
            assert!(message.contains("secret `api-key` is not configured"), "{name}: {message}");
            assert_eq!(r["batchllm"]["attempts"], 1, "{name}: a denial is not retried");
        }
        assert!(requests.is_empty(), "{name}: no request leaves with a literal placeholder");
    }
    let reference = by_id(&ports[0].0);
    for (plugin, (out, _)) in plugins.iter().zip(ports).skip(1) {
        assert_same("the results record", plugin.name, &reference, &by_id(out));
    }
}

/// The reason `prepare` gave, from the host's one-line error.
fn prepare_error(plugin: &Plugin, out: &Outcome) -> String {
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("failed to prepare: "))
        .unwrap_or_else(|| panic!("{}: no prepare error in:\n{}", plugin.name, out.stderr));
    line.split_once("failed to prepare: ").map(|(_, reason)| reason.to_string()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_is_refused_the_same_way() {
    let plugins = plugins();
    // A few of the configuration errors (the plugins' unit tests have more);
    // each run loads the large JS and Python components, so keep it short.
    for config in ["base_ulr=http://127.0.0.1:9/v1", "base_url=ftp://h/v1", r#"extra_headers={"bad header":"x"}"#] {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, plugin) in plugins.iter().cloned().enumerate() {
            tasks.spawn(async move {
                let ws = Workspace::new();
                let jobs = ws.jobs(&[job("a", "never sent")]);
                // No key is needed: the configuration is refused by `prepare`.
                let no_key = "api_key_secret=null";
                let args = ["--plugin", plugin.arg.as_str(), "--plugin-config", config, "--plugin-config", no_key];
                (i, ws.run(&jobs, &args, &[]).await)
            });
        }
        let mut outs = tasks.join_all().await;
        outs.sort_by_key(|(i, _)| *i);
        let mut reasons = Vec::new();
        for (plugin, (_, out)) in plugins.iter().zip(&outs) {
            assert_eq!(out.code, 3, "{}: `{config}` stops the run before any item:\n{}", plugin.name, out.stderr);
            assert!(out.results.is_empty(), "{}: `{config}`", plugin.name);
            reasons.push(prepare_error(plugin, out));
        }
        assert!(reasons[0].contains("invalid openai plugin configuration: "), "{config}: {}", reasons[0]);
        for (plugin, reason) in plugins.iter().zip(&reasons).skip(1) {
            assert_eq!(reason, &reasons[0], "`{config}`: the {} plugin's prepare error differs", plugin.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_never_answers_is_a_timeout() {
    let plugins = plugins();
    let lines = vec![job("hang", "[[mock:hang]] wait")];
    let runs = run_all(&plugins, &lines, true, &["--attempt-timeout", "0.5"]).await;
    for (plugin, (out, requests)) in plugins.iter().zip(&runs) {
        let name = plugin.name;
        let r = out.result("hang");
        assert_eq!(r["batchllm"]["attempts"], 3, "{name}: {r}");
        assert_eq!(requests.len(), 3, "{name}: one request per attempt");
        let message = r["error"]["message"].as_str().expect("message");
        // A failed `fetch` is a bare "NetworkError" whatever the cause (see
        // strategy-fetch.js); the host reclassifies it from its own record
        // of the exchange, so every plugin ends with `timeout`.
        assert_eq!(r["error"]["code"], "timeout", "{name}: {r}");
        if name == "js-fetch" {
            assert!(message.starts_with("network error: "), "{name}: the plugin's own message stays: {message}");
        } else {
            assert!(message.starts_with("request timed out: "), "{name}: {message}");
        }
    }
}
