//! Runs the real `batchllm-host` binary against the mock provider and checks
//! that every item succeeded (a benchmark of a run that lost items measures
//! nothing).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use batchllm_mock::MockServer;

use crate::process::{Usage, measure};

/// The API key the mock requires and both clients send.
pub const KEY: &str = "sk-bench";

/// Where to find the binaries and keep the files of a benchmark session.
#[derive(Debug, Clone)]
pub struct Setup {
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
    pub fn locate(host: Option<PathBuf>, work: PathBuf) -> anyhow::Result<Self> {
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
    pub fn cache_dir(&self) -> PathBuf {
        self.work.join("compile-cache")
    }
}

/// Runs the host on `jobs` with `concurrency` against `server`, plus `extra`
/// arguments, and returns its usage once every record has been checked.
pub async fn run(
    setup: &Setup,
    server: &MockServer,
    jobs: &Path,
    items: usize,
    concurrency: usize,
    extra: &[&str],
) -> anyhow::Result<Usage> {
    let results = setup.work.join("host.results.jsonl");
    let mut command = Command::new(&setup.host);
    command
        .arg(jobs)
        .args(["--plugin", "openai", "--quiet", "--overwrite", "--concurrency", &concurrency.to_string()])
        .arg("--output")
        .arg(&results)
        .arg("--cache-dir")
        .arg(setup.cache_dir())
        .args(["--allow-host", &format!("127.0.0.1:{}", server.addr().port())])
        .args(["--plugin-config", &format!("base_url={}", server.base_url())])
        .args(["--api-key-env", "BENCH_KEY"])
        .args(extra)
        .env("BENCH_KEY", KEY)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let usage = measure(command).await?;
    if usage.exit_code != Some(0) {
        bail!("batchllm-host exited with {:?} on {}", usage.exit_code, jobs.display());
    }
    let ok = count_succeeded(&results, |v| v["error"].is_null())?;
    if ok != items {
        bail!("batchllm-host: {ok} of {items} records succeeded in {}", results.display());
    }
    Ok(usage)
}

/// Counts the records of a results file that satisfy `succeeded`; fails on
/// a line that is not JSON.
pub fn count_succeeded(path: &Path, succeeded: impl Fn(&serde_json::Value) -> bool) -> anyhow::Result<usize> {
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
pub async fn run_baseline(
    setup: &Setup,
    server: &MockServer,
    jobs: &Path,
    items: usize,
    concurrency: usize,
) -> anyhow::Result<Usage> {
    let results = setup.work.join("baseline.results.jsonl");
    let mut command = Command::new(&setup.bench);
    command
        .arg("baseline")
        .arg(jobs)
        .args(["--base-url", &server.base_url(), "--concurrency", &concurrency.to_string()])
        .arg("--output")
        .arg(&results)
        .env("BENCH_KEY", KEY)
        .stdin(Stdio::null());
    let usage = measure(command).await?;
    if usage.exit_code != Some(0) {
        bail!("the baseline client exited with {:?}", usage.exit_code);
    }
    let ok = count_succeeded(&results, |v| v["output"].is_string())?;
    if ok != items {
        bail!("baseline: {ok} of {items} records succeeded in {}", results.display());
    }
    Ok(usage)
}
