//! Shared harness: run the real `batchllm-host` binary against the real mock
//! provider over loopback, and read back what both sides saw.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use batchllm_mock::{LoggedRequest, MockConfig, MockServer};
use serde_json::Value;

/// The binary under test, built by cargo for this test target.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_batchllm-host");

/// The API key the mock providers in tests demand.
pub(crate) const API_KEY: &str = "sk-test-e2e-0123456789";

/// A compile cache shared by every test (and every test run), so each plugin
/// is compiled once.
pub(crate) fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

/// A mock provider demanding [`API_KEY`], plus `tweak`.
pub(crate) async fn mock(tweak: impl FnOnce(&mut MockConfig)) -> MockServer {
    let mut config = MockConfig { api_key: Some(API_KEY.into()), ..MockConfig::default() };
    tweak(&mut config);
    MockServer::start(config).await.expect("mock provider starts")
}

/// The `--allow-host` grant for a mock.
pub(crate) fn grant(server: &MockServer) -> String {
    format!("127.0.0.1:{}", server.addr().port())
}

/// What one run of the binary produced.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub code: i32,
    pub stderr: String,
    pub results: Vec<Value>,
}

impl Outcome {
    /// The results line for `id`; panics when it is not there exactly once.
    pub(crate) fn result(&self, id: &str) -> &Value {
        let mut matches = self.results.iter().filter(|r| r["custom_id"] == id);
        let first = matches.next().unwrap_or_else(|| panic!("no result for {id}; stderr:\n{}", self.stderr));
        assert!(matches.next().is_none(), "{id} has more than one result");
        first
    }
}

/// A scratch directory with a jobs file.
pub(crate) struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub(crate) fn new() -> Self {
        Workspace { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `lines` as the jobs file and returns its path.
    pub(crate) fn jobs(&self, lines: &[String]) -> PathBuf {
        let path = self.path("jobs.jsonl");
        std::fs::write(&path, lines.join("\n") + "\n").expect("write jobs");
        path
    }

    /// Runs the binary on `jobs` with `args`, `OPENAI_API_KEY`-style secrets
    /// coming from `env`. Results go to `results.jsonl` in the workspace,
    /// replacing earlier ones.
    pub(crate) async fn run(&self, jobs: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        self.run_inner(jobs, &[&["--overwrite"][..], args].concat(), env).await
    }

    /// Like [`Workspace::run`], but resuming from earlier results.
    pub(crate) async fn resume(&self, jobs: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        self.run_inner(jobs, args, env).await
    }

    /// The command `run` and `resume` execute, for tests that manage the process.
    pub(crate) fn command(&self, jobs: &Path, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg(jobs)
            .arg("--output")
            .arg(self.path("results.jsonl"))
            .arg("--cache-dir")
            .arg(cache_dir())
            .args(args)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// The records in the results file.
    pub(crate) fn results(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.path("results.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("result line is not JSON ({e}): {l}")))
            .collect()
    }

    async fn run_inner(&self, jobs: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let results = self.path("results.jsonl");
        let cache = cache_dir();
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg(jobs)
            .arg("--output")
            .arg(&results)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = cmd.output().await.expect("binary runs");
        let text = std::fs::read_to_string(&results).unwrap_or_default();
        let results = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("result line is not JSON ({e}): {l}")))
            .collect();
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            results,
        }
    }
}

/// A simple job line.
pub(crate) fn job(id: &str, prompt: &str) -> String {
    serde_json::json!({ "id": id, "prompt": prompt }).to_string()
}

/// The arguments that point the openai plugin at `server` with its key.
pub(crate) fn openai_args(server: &MockServer) -> Vec<String> {
    vec![
        "--plugin".into(),
        "openai".into(),
        "--allow-host".into(),
        grant(server),
        "--plugin-config".into(),
        format!("base_url={}", server.base_url()),
        "--api-key-env".into(),
        "E2E_API_KEY".into(),
    ]
}

/// Requests the mock saw on its chat endpoint.
pub(crate) fn chat_requests(server: &MockServer) -> Vec<LoggedRequest> {
    server.requests().into_iter().filter(|r| r.path.ends_with("/chat/completions")).collect()
}

/// `&[String]` as `&[&str]`.
pub(crate) fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
