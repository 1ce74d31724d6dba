//! Harness for the `serve` tests: the real binary as a server on a free
//! loopback port, a data directory and tenants file in a scratch folder,
//! tenants pointed at the in-process mock provider, and the official OpenAI
//! Python SDK (pinned, installed by `scripts/install-peers.sh openai-sdk`)
//! as the client.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use batchllm_mock::MockServer;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{API_KEY, BIN, cache_dir, grant};
use crate::templates::repo;

/// The variable the server reads the mock provider's key from (named by
/// each tenant's `api-key-env`).
pub(crate) const KEY_VAR: &str = "SERVE_E2E_PROVIDER_KEY";

/// A tenant's API key in these tests.
pub(crate) fn key(tenant: &str) -> String {
    format!("sk-batch-test-{tenant}-0123456789abcdef")
}

/// The tenants file entry for a key.
pub(crate) fn digest(key: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// A tenant that runs the openai plugin against `mock`, plus `extra` TOML lines.
pub(crate) fn tenant(name: &str, mock: &MockServer, extra: &str) -> String {
    format!(
        "[tenants.{name}]\napi-keys = [\"{}\"]\nplugin = \"openai\"\nallow-host = [\"{}\"]\napi-key-env = \"{KEY_VAR}\"\n\
         {extra}\n[tenants.{name}.plugin-config]\nbase_url = \"{}\"\n",
        digest(&key(name)),
        grant(mock),
        mock.base_url()
    )
}

/// The operator section, with key `operator`.
pub(crate) fn operator() -> String {
    format!("[operator]\napi-keys = [\"{}\"]\n", digest(&key("operator")))
}

/// One OpenAI Batch input line for the chat endpoint.
pub(crate) fn line(id: &str, prompt: &str) -> String {
    json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions",
           "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}})
    .to_string()
}

/// The server under test.
pub(crate) struct Server {
    child: tokio::process::Child,
    pub base: String,
    log: PathBuf,
}

impl Server {
    /// Starts `serve` on `dir/tenants.toml` (written from `tenants`) and
    /// `dir/data`, and waits for its "listening on" line.
    pub(crate) async fn start(dir: &Path, tenants: &str) -> Server {
        std::fs::write(dir.join("tenants.toml"), tenants).expect("write tenants");
        Self::restart(dir).await
    }

    /// Starts `serve` again on the same files (after a kill).
    pub(crate) async fn restart(dir: &Path) -> Server {
        Self::restart_with(dir, &[]).await
    }

    /// [`Server::start`] with more arguments (e.g. `--cluster URL`).
    pub(crate) async fn start_with(dir: &Path, tenants: &str, args: &[&str]) -> Server {
        std::fs::write(dir.join("tenants.toml"), tenants).expect("write tenants");
        Self::restart_with(dir, args).await
    }

    async fn restart_with(dir: &Path, args: &[&str]) -> Server {
        let log =
            dir.join(format!("serve-{}.log", std::time::SystemTime::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_nanos())));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = tokio::process::Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--tenants"])
            .arg(dir.join("tenants.toml"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--cache-dir")
            .arg(cache_dir())
            .args(args)
            .env(KEY_VAR, API_KEY)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("serve starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        let Ok(Ok(Some(line))) = line else {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("serve did not start listening: {line:?}\n{text}");
        };
        let addr = line.strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Server { child, base: addr.to_string(), log }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id().and_then(|p| i32::try_from(p).ok()).expect("running")
    }

    /// SIGKILL: no cleanup, no flush.
    pub(crate) async fn kill9(mut self) {
        self.child.kill().await.expect("kill -9");
    }

    /// SIGTERM and wait; returns the exit code.
    pub(crate) async fn stop(mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await;
        status.ok().and_then(Result::ok).and_then(|s| s.code())
    }

    /// SIGHUP: reload the tenants file.
    pub(crate) fn hup(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), libc::SIGHUP) };
    }

    /// An authenticated request.
    pub(crate) fn req(&self, method: reqwest::Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        http().request(method, self.url(path)).bearer_auth(key)
    }

    /// Uploads `text` as a batch input file; returns the file id.
    pub(crate) async fn upload(&self, key: &str, text: &str) -> String {
        let (status, body, _) = upload(self, key, text.as_bytes(), "batch").await;
        assert_eq!(status, 200, "upload: {body}");
        body["id"].as_str().expect("file id").to_string()
    }

    /// Creates a chat-completions batch; returns it.
    pub(crate) async fn create(&self, key: &str, file: &str) -> Value {
        let body = json!({"input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": "24h"});
        let r = self
            .req(reqwest::Method::POST, "/v1/batches", key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("create");
        let status = r.status();
        let body: Value = json_of(r).await;
        assert!(status.is_success(), "create: {status} {body}");
        body
    }

    pub(crate) async fn batch(&self, key: &str, id: &str) -> Value {
        let r = self.req(reqwest::Method::GET, &format!("/v1/batches/{id}"), key).send().await.expect("retrieve");
        json_of(r).await
    }

    /// Polls until the batch reaches an end state.
    pub(crate) async fn wait_end(&self, key: &str, id: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            let b = self.batch(key, id).await;
            if ["completed", "failed", "expired", "cancelled"].contains(&b["status"].as_str().unwrap_or("")) {
                return b;
            }
            assert!(started.elapsed() < timeout, "batch {id} did not end in {timeout:?}: {b}\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The lines of a file (empty for `null`).
    pub(crate) async fn lines(&self, key: &str, file: &Value) -> Vec<Value> {
        let Some(id) = file.as_str() else { return Vec::new() };
        let r = self.req(reqwest::Method::GET, &format!("/v1/files/{id}/content"), key).send().await.expect("content");
        assert!(r.status().is_success(), "content of {id}: {}", r.status());
        let text = r.text().await.expect("text");
        text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
    }
}

/// A response body as JSON.
pub(crate) async fn json_of(r: reqwest::Response) -> Value {
    let text = r.text().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client")
}

/// A multipart upload, built by hand (the host's reqwest has no multipart
/// feature); returns status, body and headers.
pub(crate) async fn upload(
    server: &Server,
    key: &str,
    bytes: &[u8],
    purpose: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let boundary = "batchllm-test-boundary-7f3a";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n").as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\
             Content-Type: application/jsonl\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = server
        .req(reqwest::Method::POST, "/v1/files", key)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
}

/// The Python of the pinned SDK venv; fails with the install command when
/// it is missing (these tests never skip).
pub(crate) fn sdk_python() -> PathBuf {
    let dir = repo().join("tests/peers");
    let venv = dir.join(".venv-openai-sdk");
    let want = hex::encode(Sha256::digest(std::fs::read(dir.join("openai-sdk.txt")).expect("openai-sdk.txt")));
    let stamp = std::fs::read_to_string(venv.join(".batchllm-req-hash")).unwrap_or_default();
    assert!(
        stamp.trim() == want,
        "the pinned OpenAI Python SDK is not installed ({}).\nInstall it with:\n\n    \
         scripts/install-peers.sh openai-sdk\n\n(scripts/test.sh does this)",
        venv.display()
    );
    venv.join("bin/python")
}

/// Runs `tests/serve/sdk_flow.py SCENARIO` and returns the facts it printed.
pub(crate) async fn sdk(server: &Server, scenario: &str, key: &str, jobs: &Path, other_key: Option<&str>) -> Value {
    let mut cmd = tokio::process::Command::new(sdk_python());
    cmd.arg(repo().join("tests/serve/sdk_flow.py"))
        .arg(server.url("/v1"))
        .arg(key)
        .arg(scenario)
        .arg(jobs)
        .args(other_key)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // The SDK must reach the loopback server directly.
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("sdk run in time")
        .expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sdk_flow.py {scenario} failed:\n{stderr}\nserver log:\n{}", server.log());
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("sdk_flow.py printed no JSON ({e}): {stderr}"))
}

/// Every custom_id of `lines`, counted.
pub(crate) fn id_counts(lines: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for l in lines {
        *counts.entry(l["custom_id"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    counts
}

/// Requests the mock provider saw, per prompt (the items' prompts are unique).
pub(crate) fn prompts_sent(mock: &MockServer) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in mock.requests() {
        if let Some(p) = r.prompt {
            *counts.entry(p).or_default() += 1;
        }
    }
    counts
}
