//! The baseline the host's CPU cost is measured against: a minimal Rust
//! client with the same HTTP stack as the host's egress (reqwest on tokio,
//! rustls, a pooled client, `tcp_nodelay`), no WebAssembly and no policy.
//!
//! It does what any hand-written batch script must do and nothing more:
//! read the JSONL lazily, keep `concurrency` requests in flight, build the
//! same chat request the openai plugin builds, parse the answer, and write
//! one result line per item, flushed before it counts, in batches of the
//! lines that are ready together: exactly how the host's results sink
//! writes.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

/// `batchllm-bench baseline`: the arguments of the plain client.
#[derive(Debug, clap::Args)]
pub struct BaselineArgs {
    /// The jobs file (`{"id","prompt"}` lines).
    pub jobs: PathBuf,
    /// The provider's OpenAI-compatible base URL, e.g. `http://127.0.0.1:8080/v1`.
    #[arg(long)]
    pub base_url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// Where to write one result line per item.
    #[arg(long)]
    pub output: PathBuf,
    /// The environment variable holding the API key.
    #[arg(long, default_value = "BENCH_KEY")]
    pub api_key_env: String,
}

/// Runs the baseline client to completion on its own runtime (the same
/// multi-threaded tokio runtime the host uses).
pub fn main(args: BaselineArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: BaselineArgs) -> anyhow::Result<()> {
    let key = std::env::var(&args.api_key_env).with_context(|| format!("${} is not set", args.api_key_env))?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()?;
    let url = format!("{}/chat/completions", args.base_url.trim_end_matches('/'));
    let auth = format!("Bearer {key}");
    let (tx, rx) = mpsc::channel::<Vec<u8>>(args.concurrency.max(1) * 2);
    let writer = tokio::spawn(write_results(args.output.clone(), rx));
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let file = std::fs::File::open(&args.jobs).with_context(|| format!("cannot read {}", args.jobs.display()))?;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let job: Value = serde_json::from_str(&line).with_context(|| format!("{}:{}", args.jobs.display(), n + 1))?;
        let permit = permits.clone().acquire_owned().await?;
        let (client, url, auth, tx) = (client.clone(), url.clone(), auth.clone(), tx.clone());
        tokio::spawn(async move {
            let record = one(&client, &url, &auth, &job).await;
            let _ = tx.send(record).await;
            drop(permit);
        });
    }
    drop(tx);
    writer.await?
}

/// Sends one job and turns the answer into its result line.
async fn one(client: &reqwest::Client, url: &str, auth: &str, job: &Value) -> Vec<u8> {
    let id = job["id"].clone();
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": job["prompt"]}]});
    let answer = async {
        let response = client
            .post(url)
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body)?)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            bail!("HTTP {status}");
        }
        let parsed: Value = serde_json::from_slice(&bytes)?;
        let output = parsed["choices"][0]["message"]["content"].as_str().context("no content")?.to_owned();
        anyhow::Ok(json!({"id": id, "output": output, "usage": parsed["usage"]}))
    }
    .await;
    let record = answer.unwrap_or_else(|e| json!({"id": id, "error": e.to_string()}));
    let mut line = serde_json::to_vec(&record).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Writes the lines that are ready together with one write and one flush,
/// like the host's results sink (`host/src/run/sink.rs`).
async fn write_results(path: PathBuf, mut rx: mpsc::Receiver<Vec<u8>>) -> anyhow::Result<()> {
    let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let lines: Vec<u8> = batch.drain(..).flatten().collect();
        out.write_all(&lines)?;
        out.flush()?;
    }
    Ok(())
}

/// The host sink's batch size.
const BATCH: usize = 256;
