//! Runs the real `batchllm-host` binary against the mock provider and checks
//! that every item succeeded (a benchmark of a run that lost items measures
//! nothing).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use batchllm_mock::MockServer;

use crate::process::{Usage, measure_until};

/// The API key the mock requires and both clients send.
pub(crate) const KEY: &str = "sk-bench";

/// Where to find the binaries and keep the files of a benchmark session.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    /// The release-built `batchllm-host`.
    pub host: PathBuf,
    /// This benchmark's own executable (the baseline client is a subcommand).
    pub bench: PathBuf,
    /// Scratch space: job files, results, the compile cache.
    pub work: PathBuf,
}

impl Setup {
    /// The host binary next to this executable (both come from
    /// `cargo build --release`), or `host` when given.
    pub(crate) fn locate(host: Option<PathBuf>, work: PathBuf) -> anyhow::Result<Self> {
        let bench = std::env::current_exe().context("cannot find this executable")?;
        let host = match host {
            Some(path) => path,
            None => bench.with_file_name("batchllm-host"),
        };
        if !host.is_file() {
            bail!(
                "{} not found: build it first with `cargo build --release -p batchllm-host` \
                 (scripts/bench.sh does), or pass --host PATH",
                host.display()
            );
        }
        Ok(Setup { host, bench, work })
    }

    /// The compile cache every host run shares, so runs measure the engine.
    pub(crate) fn cache_dir(&self) -> PathBuf {
        self.work.join("compile-cache")
    }
}

/// The provider API a run speaks: the plugin the host loads, the requests
/// the baseline client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Api {
    /// Chat completions (`--plugin openai`).
    #[value(name = "openai")]
    OpenAi,
    /// Anthropic Messages (`--plugin anthropic`).
    Anthropic,
    /// Gemini `generateContent` (`--plugin gemini`).
    Gemini,
}

impl Api {
    /// The built-in plugin that speaks it.
    pub(crate) fn plugin(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
            Api::Gemini => "gemini",
        }
    }

    /// The base URL its clients are given: `/v1` for OpenAI, the bare
    /// origin for the others (their paths carry the version).
    pub(crate) fn base_url(self, server: &MockServer) -> String {
        match self {
            Api::OpenAi => server.base_url(),
            Api::Anthropic | Api::Gemini => server.origin(),
        }
    }
}

/// How a run ended: what it cost and how many records succeeded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub usage: Usage,
    /// Records without an error in the results file.
    pub succeeded: usize,
}

/// Runs the host on `jobs` with `concurrency` against `server`, plus `extra`
/// arguments, and returns its usage once every record has been checked.
pub(crate) async fn run(
    setup: &Setup,
    server: &MockServer,
    jobs: &Path,
    items: usize,
    concurrency: usize,
    extra: &[&str],
) -> anyhow::Result<Usage> {
    let results = setup.work.join("host.results.jsonl");
    let outcome = run_with(setup, server, jobs, concurrency, Api::OpenAi, &results, extra, None).await?;
    if outcome.usage.exit_code != Some(0) {
        bail!("batchllm-host exited with {:?} on {}", outcome.usage.exit_code, jobs.display());
    }
    if outcome.succeeded != items {
        bail!("batchllm-host: {} of {items} records succeeded on {}", outcome.succeeded, jobs.display());
    }
    Ok(outcome.usage)
}

/// Runs the host with the plugin of `api`, writing `results`, killed after
/// `deadline`, and counts the records that succeeded, whatever the exit
/// code: for scenarios that report a failing run instead of stopping on it.
#[allow(clippy::too_many_arguments)] // one call site per scenario; a struct would only rename them
pub(crate) async fn run_with(
    setup: &Setup,
    server: &MockServer,
    jobs: &Path,
    concurrency: usize,
    api: Api,
    results: &Path,
    extra: &[&str],
    deadline: Option<Duration>,
) -> anyhow::Result<Outcome> {
    // A killed run must not leave an old file to be counted.
    let _ = std::fs::remove_file(results);
    let mut command = Command::new(&setup.host);
    command
        .arg(jobs)
        .args(["--plugin", api.plugin(), "--quiet", "--overwrite", "--concurrency", &concurrency.to_string()])
        .arg("--output")
        .arg(results)
        .arg("--cache-dir")
        .arg(setup.cache_dir())
        .args(["--allow-host", &format!("127.0.0.1:{}", server.addr().port())])
        .args(["--plugin-config", &format!("base_url={}", api.base_url(server))])
        .args(["--api-key-env", "BENCH_KEY"])
        .args(extra)
        .env("BENCH_KEY", KEY)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let usage = measure_until(command, deadline).await?;
    let succeeded = if results.is_file() { count_succeeded(results, |v| v["error"].is_null())? } else { 0 };
    Ok(Outcome { usage, succeeded })
}

/// Counts the records of a results file that satisfy `succeeded`; fails on
/// a line that is not JSON.
pub(crate) fn count_succeeded(path: &Path, succeeded: impl Fn(&serde_json::Value) -> bool) -> anyhow::Result<usize> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut ok = 0;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let record: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
        ok += usize::from(succeeded(&record));
    }
    Ok(ok)
}

/// Runs this executable's `baseline` subcommand under the same conditions.
pub(crate) async fn run_baseline(
    setup: &Setup,
    server: &MockServer,
    jobs: &Path,
    items: usize,
    concurrency: usize,
) -> anyhow::Result<Usage> {
    let results = setup.work.join("baseline.results.jsonl");
    let outcome = run_baseline_with(setup, server, jobs, concurrency, Api::OpenAi, &results, false, None).await?;
    if outcome.usage.exit_code != Some(0) {
        bail!("the baseline client exited with {:?}", outcome.usage.exit_code);
    }
    if outcome.succeeded != items {
        bail!("baseline: {} of {items} records succeeded on {}", outcome.succeeded, jobs.display());
    }
    Ok(outcome.usage)
}

/// Runs the baseline client speaking `api`, writing `results`, retrying
/// 429s when `retry_429` (see `crate::baseline`), killed after `deadline`.
#[allow(clippy::too_many_arguments)] // as `run_with`
pub(crate) async fn run_baseline_with(
    setup: &Setup,
    server: &MockServer,
    jobs: &Path,
    concurrency: usize,
    api: Api,
    results: &Path,
    retry_429: bool,
    deadline: Option<Duration>,
) -> anyhow::Result<Outcome> {
    let _ = std::fs::remove_file(results);
    let mut command = Command::new(&setup.bench);
    command
        .arg("baseline")
        .arg(jobs)
        .args(["--base-url", &api.base_url(server), "--concurrency", &concurrency.to_string()])
        .args(["--api", api.plugin()])
        .arg("--output")
        .arg(results)
        .env("BENCH_KEY", KEY)
        .stdin(Stdio::null());
    if retry_429 {
        command.arg("--retry-429");
    }
    let usage = measure_until(command, deadline).await?;
    let succeeded = if results.is_file() { count_succeeded(results, |v| v["output"].is_string())? } else { 0 };
    Ok(Outcome { usage, succeeded })
}
