//! The plugins against independent peers: servers this project did not
//! write, started on 127.0.0.1 from the pinned venvs that
//! `scripts/install-peers.sh` installs (`scripts/test.sh` runs it first).
//!
//! - **LLMock** (PyPI `llmock`), a fault-injecting mock of the OpenAI,
//!   Anthropic and Gemini APIs that grades the client: the anthropic and
//!   gemini plugins run against its gateway paths (`.../anthropic`,
//!   `.../gemini`, a base URL with a path, as their SDKs take it) and the
//!   openai plugin against `.../v1` (chat completions and the Responses API),
//!   with scripted 429s (with `Retry-After`), overloads and 400s; the records
//!   must be right and LLMock's verdict on the host's retries must pass with
//!   no finding.
//! - **llama.cpp's OpenAI-compatible server** (`llama-cpp-python[server]`)
//!   with a real model shipped as PyPI packages (Gemma 3 270M): chat
//!   completions and `/v1/completions`, non-empty outputs, usage equal to
//!   what the server reported.
//!
//! A peer that is not installed fails its test with the command that
//! installs it: these tests never skip.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::*;
use crate::templates::repo;

/// The venv `scripts/install-peers.sh <peer>` installs, when it is complete
/// and matches the pinned requirements (the script stamps it with the
/// SHA-256 of `files`, concatenated, only after the install finished).
fn venv(peer: &str, files: &[&str]) -> PathBuf {
    let dir = repo().join("tests/peers");
    let venv = dir.join(format!(".venv-{peer}"));
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("tests/peers/{file}: {e}")));
    }
    let want = hex::encode(hasher.finalize());
    let stamp = std::fs::read_to_string(venv.join(".batchllm-req-hash")).unwrap_or_default();
    assert!(
        stamp.trim() == want,
        "the test peer `{peer}` is not installed, or not at the pinned versions ({}).\n\
         Install it with:\n\n    scripts/install-peers.sh {peer}\n\n\
         (scripts/test.sh does this; `llama` compiles llama.cpp, about 6.5 minutes on 2 idle cores)",
        venv.display()
    );
    venv
}

/// A peer server: a child process of this test, listening on a port it
/// chose itself on 127.0.0.1; killed when dropped.
struct Peer {
    child: tokio::process::Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Peer {
    /// Starts `program args` (a uvicorn app asked for port 0) and waits for
    /// uvicorn's "Uvicorn running on http://127.0.0.1:PORT" line.
    async fn start(what: &str, program: PathBuf, args: &[&str]) -> Peer {
        let mut child = tokio::process::Command::new(&program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({}): {e}", program.display()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = tokio::sync::oneshot::channel();
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            const READY: &str = "Uvicorn running on http://127.0.0.1:";
            let mut lines = BufReader::new(stderr).lines();
            let mut port_tx = Some(port_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split_once(READY).map(|(_, rest)| rest) {
                    let port = rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|p| p.parse::<u16>().ok());
                    if let (Some(tx), Some(port)) = (port_tx.take(), port) {
                        let _ = tx.send(port);
                    }
                }
                let mut log = sink.lock().unwrap_or_else(PoisonError::into_inner);
                log.push_str(&line);
                log.push('\n');
            }
        });
        let started = Instant::now();
        let port = tokio::time::timeout(Duration::from_secs(300), port_rx).await;
        let log_text = || log.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match port {
            Ok(Ok(port)) => {
                eprintln!("{what} listening on 127.0.0.1:{port} after {:.1?}", started.elapsed());
                Peer { child, port, log }
            }
            _ => panic!("{what} did not start listening within 300 s; its stderr:\n{}", log_text()),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn grant(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

async fn get_json(url: &str) -> Value {
    let response = client().get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let text = response.text().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {text}"))
}

async fn post_json(url: &str, body: &Value) -> Value {
    let response = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "POST {url}: {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {url}: not JSON ({e}): {text}"))
}

/// One plugin's run against LLMock: the arguments, the jobs and, per job
/// id, `None` for success or the failure class.
struct LlmockRun {
    plugin: &'static str,
    /// Appended to LLMock's address as `base_url`.
    base_path: &'static str,
    lines: Vec<String>,
    expected: Vec<(&'static str, Option<&'static str>)>,
}

/// A job whose model is `model` (LLMock scripts faults by model).
fn model_job(id: &str, model: &str, prompt: &str) -> String {
    json!({"id": id, "prompt": prompt, "params": {"model": model}}).to_string()
}

fn llmock_runs() -> Vec<LlmockRun> {
    let outcomes = |prefix: &'static str| {
        vec![("ok", None), ("limited", None), ("busy", None), ("bad", Some("client_error"))]
            .into_iter()
            .map(move |(id, class)| (id, class, prefix))
            .collect::<Vec<_>>()
    };
    let mut runs = Vec::new();
    for (plugin, base_path, prefix) in [("anthropic", "/anthropic", "claude"), ("gemini", "/gemini", "gemini")] {
        let mut lines = Vec::new();
        let mut expected = Vec::new();
        for (id, class, prefix) in outcomes(prefix) {
            lines.push(model_job(id, &format!("{prefix}-{id}"), &format!("hello from {plugin} {id}")));
            expected.push((id, class));
        }
        runs.push(LlmockRun { plugin, base_path, lines, expected });
    }
    let mut lines = Vec::new();
    let mut expected = Vec::new();
    for (id, class, prefix) in outcomes("gpt") {
        lines.push(model_job(id, &format!("{prefix}-{id}"), &format!("hello from openai {id}")));
        expected.push((id, class));
    }
    // The Responses API, through the same plugin and the same faults.
    lines.push(
        json!({"custom_id": "resp", "method": "POST", "url": "/v1/responses",
               "body": {"model": "gpt-resp", "input": "hello from the responses api"}})
        .to_string(),
    );
    expected.push(("resp", None));
    runs.push(LlmockRun { plugin: "openai", base_path: "/v1", lines, expected });
    runs
}

/// The scripted faults: per provider, a 429 asking for a 1 s wait, an
/// overload (Anthropic 529, Gemini 503, OpenAI 500) and a 400, once each,
/// on the job of that name; and a 429 on the Responses API call.
fn llmock_scenario() -> Value {
    let mut behaviors = Vec::new();
    for (prefix, overloaded) in [("claude", 529), ("gemini", 503), ("gpt", 500)] {
        behaviors.push(json!({"type": "fail", "status": 429, "retry_after": 1, "times": 1,
                              "match": {"model": format!("{prefix}-limited")}}));
        behaviors.push(json!({"type": "fail", "status": overloaded, "times": 1,
                              "match": {"model": format!("{prefix}-busy")}}));
        behaviors.push(json!({"type": "fail", "status": 400, "times": 1, "match": {"model": format!("{prefix}-bad")}}));
    }
    behaviors
        .push(json!({"type": "fail", "status": 429, "retry_after": 1, "times": 1, "match": {"model": "gpt-resp"}}));
    json!({ "behaviors": behaviors })
}

/// The usage LLMock answered, in the record's terms: (input, output).
fn answered_usage(plugin: &str, body: &Value) -> (Value, Value) {
    match plugin {
        "anthropic" => (body["usage"]["input_tokens"].clone(), body["usage"]["output_tokens"].clone()),
        "gemini" => {
            (body["usageMetadata"]["promptTokenCount"].clone(), body["usageMetadata"]["candidatesTokenCount"].clone())
        }
        _ if body["object"] == "response" => {
            (body["usage"]["input_tokens"].clone(), body["usage"]["output_tokens"].clone())
        }
        _ => (body["usage"]["prompt_tokens"].clone(), body["usage"]["completion_tokens"].clone()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_gemini_and_openai_plugins_pass_llmock_verdict() {
    let venv = venv("llmock", &["llmock.txt"]);
    let peer = Peer::start(
        "LLMock",
        venv.join("bin/llmock"),
        &["serve", "--host", "127.0.0.1", "--port", "0", "--response-style", "echo", "--tool-mode", "off"],
    )
    .await;
    let queued = post_json(&peer.url("/_llmock/scenario"), &llmock_scenario()).await;
    assert_eq!(queued["queued"], 10, "{queued}");

    let runs = llmock_runs();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, run) in runs.iter().enumerate() {
        let (plugin, base, grant, lines) = (run.plugin, peer.url(run.base_path), peer.grant(), run.lines.clone());
        tasks.spawn(async move {
            let ws = Workspace::new();
            let jobs = ws.jobs(&lines);
            let args = [
                "--plugin",
                plugin,
                "--allow-host",
                &grant,
                "--plugin-config",
                &format!("base_url={base}"),
                "--api-key-env",
                "E2E_API_KEY",
                "--max-attempts",
                "3",
                "--backoff-initial",
                "0.2",
            ];
            let started = Instant::now();
            let out = ws.run(&jobs, &args, &[("E2E_API_KEY", API_KEY)]).await;
            (i, out, started.elapsed())
        });
    }
    let mut outs = tasks.join_all().await;
    outs.sort_by_key(|(i, _, _)| *i);

    for (run, (_, out, elapsed)) in runs.iter().zip(&outs) {
        let plugin = run.plugin;
        let ctx = format!("{plugin} (stderr:\n{})", out.stderr);
        assert_eq!(out.code, 1, "{plugin}: the 400 fails its item: {ctx}");
        assert_eq!(out.results.len(), run.expected.len(), "{ctx}");
        assert!(*elapsed >= Duration::from_secs(1), "{plugin}: the 1 s Retry-After was honoured ({elapsed:?})");
        for (id, class) in &run.expected {
            let r = out.result(id);
            let b = &r["batchllm"];
            match class {
                None => {
                    assert_eq!(b["status"], "succeeded", "{plugin} {id}: {r}");
                    let output = b["output"].as_str().unwrap_or_default();
                    assert!(output.starts_with("Hello! You said: hello from"), "{plugin} {id}: {r}");
                    let (input, output_tokens) = answered_usage(plugin, &r["response"]["body"]);
                    assert_eq!(b["usage"]["input_tokens"], input, "{plugin} {id}: {r}");
                    assert_eq!(b["usage"]["output_tokens"], output_tokens, "{plugin} {id}: {r}");
                    let attempts = if *id == "ok" { 1 } else { 2 };
                    assert_eq!(b["attempts"], attempts, "{plugin} {id}: {r}");
                }
                Some(class) => {
                    assert_eq!(r["error"]["code"], *class, "{plugin} {id}: {r}");
                    assert_eq!((b["attempts"].as_u64(), b["http_status"].as_u64()), (Some(1), Some(400)), "{r}");
                }
            }
        }
        assert_eq!(out.result("limited")["batchllm"]["rate_limit_retries"], 1, "{plugin}");
    }

    // What LLMock saw: the SDK paths under each gateway prefix, one attempt
    // per call plus one retry per retryable fault, and none for the 400s.
    let seen = get_json(&peer.url("/_llmock/requests")).await;
    let requests = seen["requests"].as_array().expect("requests");
    let paths: Vec<&str> = requests.iter().filter_map(|r| r["path"].as_str()).collect();
    for (prefix, path) in [
        ("claude", "/anthropic/v1/messages"),
        ("gemini", "/gemini/v1beta/models/gemini-ok:generateContent"),
        ("gpt", "/v1/chat/completions"),
    ] {
        assert!(paths.contains(&path), "{prefix}: {path} not requested: {paths:?}");
        let attempts = |model: &str| requests.iter().filter(|r| r["model"] == model).count();
        assert_eq!(attempts(&format!("{prefix}-bad")), 1, "{prefix}: a 400 is not retried");
        assert_eq!(attempts(&format!("{prefix}-limited")), 2, "{prefix}");
        assert_eq!(attempts(&format!("{prefix}-busy")), 2, "{prefix}");
    }
    assert!(paths.contains(&"/v1/responses"), "{paths:?}");
    // Per provider: ok 1, limited 2, busy 2, bad 1; the Responses call 2.
    assert_eq!(requests.len(), 3 * 6 + 2, "{paths:?}");

    let verdict = get_json(&peer.url("/_llmock/verdict")).await;
    let text = client()
        .get(peer.url("/_llmock/verdict?format=text"))
        .send()
        .await
        .expect("verdict")
        .text()
        .await
        .unwrap_or_default();
    eprintln!("{text}");
    assert_eq!(verdict["passed"], true, "{text}");
    assert_eq!((verdict["errors"].as_u64(), verdict["warnings"].as_u64()), (Some(0), Some(0)), "{text}");
    assert_eq!(verdict["faults_injected"], 10, "{text}");
    assert_eq!(verdict["calls"], 13, "13 jobs, each one call: {text}");
    peer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_plugin_runs_chat_and_completions_on_llama_cpp_with_a_real_model() {
    let venv = venv("llama", &["llama-build.txt", "llama.txt"]);
    let model = venv.join("gemma-3-270m-q4_k_m.gguf");
    assert!(model.is_file(), "{} is missing: run `scripts/install-peers.sh llama`", model.display());
    let model_arg = model.display().to_string();
    let peer = Peer::start(
        "llama.cpp server",
        venv.join("bin/python"),
        &[
            "-m",
            "llama_cpp.server",
            "--model",
            &model_arg,
            "--model_alias",
            "gemma3-270m",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--n_ctx",
            "1024",
            "--n_threads",
            "2",
            "--seed",
            "42",
        ],
    )
    .await;

    // A system message: a model this small sometimes answers a bare user
    // prompt with nothing.
    let system = json!({"role": "system", "content": "You are a helpful assistant. Answer in one short sentence."});
    let lines = vec![
        json!({"id": "chat-1", "prompt": "What is the capital of France?",
               "params": {"messages": [system], "max_tokens": 16, "temperature": 0}})
        .to_string(),
        json!({"custom_id": "chat-2", "method": "POST", "url": "/v1/chat/completions",
               "body": {"messages": [system, {"role": "user", "content": "Name a colour."}], "max_tokens": 16, "temperature": 0}})
        .to_string(),
        json!({"custom_id": "text-1", "method": "POST", "url": "/v1/completions",
               "body": {"prompt": "The capital of France is", "max_tokens": 16, "temperature": 0}})
        .to_string(),
        json!({"custom_id": "text-2", "method": "POST", "url": "/v1/completions",
               "body": {"prompt": "Once upon a time", "max_tokens": 16, "temperature": 0}})
        .to_string(),
    ];
    let ws = Workspace::new();
    let jobs = ws.jobs(&lines);
    let base = peer.url("/v1");
    let grant = peer.grant();
    let args = [
        "--plugin",
        "openai",
        "--allow-host",
        &grant,
        "--plugin-config",
        &format!("base_url={base}"),
        "--plugin-config",
        "model=gemma3-270m",
        "--plugin-config",
        "api_key_secret=null",
        "--concurrency",
        "2",
        // A busy 2-core machine generates slowly; a timeout is not what is tested.
        "--attempt-timeout",
        "300",
    ];
    let started = Instant::now();
    let out = ws.run(&jobs, &args, &[]).await;
    eprintln!("4 items through llama.cpp in {:.1?}", started.elapsed());
    let ctx = format!("stderr:\n{}\nserver log:\n{}", out.stderr, peer.log());
    assert_eq!(out.code, 0, "{ctx}");
    for id in ["chat-1", "chat-2", "text-1", "text-2"] {
        let r = out.result(id);
        let b = &r["batchllm"];
        assert_eq!(b["status"], "succeeded", "{id}: {r}\n{ctx}");
        let output = b["output"].as_str().unwrap_or_default();
        assert!(!output.trim().is_empty(), "{id}: the model's answer is empty: {r}");
        let body = &r["response"]["body"];
        let object = if id.starts_with("chat") { "chat.completion" } else { "text_completion" };
        assert_eq!(body["object"], object, "{id}: {r}");
        assert_eq!(body["model"], "gemma3-270m", "{id}: {r}");
        // The usage is what the server reported, nothing estimated.
        let reported = &body["usage"];
        assert!(
            reported["prompt_tokens"].as_u64() > Some(0) && reported["completion_tokens"].as_u64() > Some(0),
            "{r}"
        );
        assert_eq!(b["usage"]["input_tokens"], reported["prompt_tokens"], "{id}: {r}");
        assert_eq!(b["usage"]["output_tokens"], reported["completion_tokens"], "{id}: {r}");
        assert_eq!(b["attempts"], 1, "{id}: {r}");
        eprintln!("{id}: {output:?} ({} in / {} out)", reported["prompt_tokens"], reported["completion_tokens"]);
    }
    // The completions text is the continuation of the prompt, not a chat reply.
    assert!(out.result("text-1")["response"]["body"]["choices"][0]["text"].is_string());
    peer.stop().await;
}
