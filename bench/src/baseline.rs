//! The baseline the host's CPU cost is measured against: a minimal Rust
//! client with the same HTTP stack as the host's egress (reqwest on tokio,
//! rustls, a pooled client, `tcp_nodelay`), no WebAssembly and no policy.
//!
//! It does what any hand-written batch script must do and nothing more:
//! read the JSONL lazily, keep `concurrency` requests in flight, build the
//! same request the host's plugin builds (OpenAI chat by default; Anthropic
//! Messages or Gemini `generateContent` with `--api`), parse the answer,
//! and write one result line per item, flushed before it counts, in
//! batches of the lines that are ready together: exactly how the host's
//! results sink writes.
//!
//! With `--retry-429` it is the plain client of the rate-limit matrix: it
//! knows nothing of limits and sends as fast as its concurrency allows,
//! but retries a 429 after the wait the provider names (`retry-after-ms`,
//! `retry-after`, Gemini's `RetryInfo.retryDelay`), or one second when it
//! names none, holding its slot meanwhile, as a script with a semaphore
//! around a retrying call does. It shows how many 429s such a client
//! provokes.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use crate::host::Api;

/// `batchllm-bench baseline`: the arguments of the plain client.
#[derive(Debug, clap::Args)]
pub(crate) struct BaselineArgs {
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
    /// The provider API to speak (`--base-url` is then the bare origin for
    /// anthropic and gemini).
    #[arg(long, value_enum, default_value = "openai")]
    pub api: Api,
    /// Retry 429s after the provider's wait (one second without one),
    /// without limit.
    #[arg(long)]
    pub retry_429: bool,
}

/// How one provider request is made and read.
#[derive(Debug, Clone)]
struct Endpoint {
    api: Api,
    url: String,
    /// `(name, value)` of the credential header.
    auth: (&'static str, String),
    retry_429: bool,
}

/// The wait a client that ignores limits takes when a 429 names none.
const DEFAULT_429_WAIT: Duration = Duration::from_secs(1);

/// Runs the baseline client to completion on its own runtime (the same
/// multi-threaded tokio runtime the host uses).
pub(crate) fn main(args: BaselineArgs) -> anyhow::Result<()> {
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
    let base = args.base_url.trim_end_matches('/');
    let (url, auth) = match args.api {
        Api::OpenAi => (format!("{base}/chat/completions"), ("authorization", format!("Bearer {key}"))),
        Api::Anthropic => (format!("{base}/v1/messages"), ("x-api-key", key)),
        Api::Gemini => (format!("{base}/v1beta/models/{GEMINI_MODEL}:generateContent"), ("x-goog-api-key", key)),
    };
    let endpoint = Arc::new(Endpoint { api: args.api, url, auth, retry_429: args.retry_429 });
    let (tx, rx) = mpsc::channel::<Vec<u8>>(args.concurrency.max(1) * 2);
    let writer = tokio::spawn(write_results(args.output.clone(), rx));
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let file = std::fs::File::open(&args.jobs).with_context(|| format!("cannot read {}", args.jobs.display()))?;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let job: Value = serde_json::from_str(&line).with_context(|| format!("{}:{}", args.jobs.display(), n + 1))?;
        let permit = permits.clone().acquire_owned().await?;
        let (client, endpoint, tx) = (client.clone(), endpoint.clone(), tx.clone());
        tokio::spawn(async move {
            let record = one(&client, &endpoint, &job).await;
            let _ = tx.send(record).await;
            drop(permit);
        });
    }
    drop(tx);
    writer.await?
}

/// The models the host's plugins default to, so both send the same bodies.
const OPENAI_MODEL: &str = "gpt-4o-mini";
const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
const GEMINI_MODEL: &str = "gemini-2.5-flash";
/// The anthropic plugin's default `max_tokens`.
const ANTHROPIC_MAX_TOKENS: u64 = 1024;

/// Sends one job (retrying 429s when asked) and turns the answer into its
/// result line.
async fn one(client: &reqwest::Client, endpoint: &Endpoint, job: &Value) -> Vec<u8> {
    let id = job["id"].clone();
    let prompt = &job["prompt"];
    let body = match endpoint.api {
        Api::OpenAi => json!({"model": OPENAI_MODEL, "messages": [{"role": "user", "content": prompt}]}),
        Api::Anthropic => json!({"model": ANTHROPIC_MODEL, "max_tokens": ANTHROPIC_MAX_TOKENS,
            "messages": [{"role": "user", "content": prompt}]}),
        Api::Gemini => json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]}),
    };
    let answer = async {
        let body = serde_json::to_vec(&body)?;
        loop {
            let mut request = client
                .post(&endpoint.url)
                .header(endpoint.auth.0, &endpoint.auth.1)
                .header("content-type", "application/json");
            if endpoint.api == Api::Anthropic {
                request = request.header("anthropic-version", "2023-06-01");
            }
            let response = request.body(body.clone()).send().await?;
            let status = response.status();
            let wait = header_wait(response.headers());
            let bytes = response.bytes().await?;
            if status.as_u16() == 429 && endpoint.retry_429 {
                let wait = wait.or_else(|| retry_info(&bytes)).unwrap_or(DEFAULT_429_WAIT);
                tokio::time::sleep(wait).await;
                continue;
            }
            if !status.is_success() {
                bail!("HTTP {status}");
            }
            let parsed: Value = serde_json::from_slice(&bytes)?;
            let output = match endpoint.api {
                Api::OpenAi => &parsed["choices"][0]["message"]["content"],
                Api::Anthropic => &parsed["content"][0]["text"],
                Api::Gemini => &parsed["candidates"][0]["content"]["parts"][0]["text"],
            };
            let output = output.as_str().context("no content")?.to_owned();
            let usage = match endpoint.api {
                Api::Gemini => parsed["usageMetadata"].clone(),
                Api::OpenAi | Api::Anthropic => parsed["usage"].clone(),
            };
            return anyhow::Ok(json!({"id": id, "output": output, "usage": usage}));
        }
    }
    .await;
    let record = answer.unwrap_or_else(|e| json!({"id": id, "error": e.to_string()}));
    let mut line = serde_json::to_vec(&record).unwrap_or_default();
    line.push(b'\n');
    line
}

/// The wait a 429's headers name: `retry-after-ms`, else `retry-after` in
/// seconds (an HTTP date is not worth parsing here).
fn header_wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|n| *n >= 0.0);
    let wait = number("retry-after-ms").map(|ms| ms / 1000.0).or_else(|| number("retry-after"))?;
    Duration::try_from_secs_f64(wait).ok()
}

/// Gemini's `RetryInfo.retryDelay` (`"1.5s"`) in an error body.
fn retry_info(body: &[u8]) -> Option<Duration> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let delay = body["error"]["details"].as_array()?.iter().find_map(|d| d["retryDelay"].as_str())?;
    Duration::try_from_secs_f64(delay.strip_suffix('s')?.parse().ok()?).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_named_by_a_429() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = reqwest::header::HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, reqwest::header::HeaderValue::from_static(value));
            }
            map
        };
        assert_eq!(
            header_wait(&headers(&[("retry-after", "2"), ("retry-after-ms", "1500")])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(header_wait(&headers(&[("retry-after", "1")])), Some(Duration::from_secs(1)));
        assert_eq!(header_wait(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(header_wait(&headers(&[("retry-after", "-1")])), None);
        assert_eq!(header_wait(&headers(&[])), None);
        let gemini = br#"{"error":{"details":[{"@type":"q"},{"retryDelay":"1.5s"}]}}"#;
        assert_eq!(retry_info(gemini), Some(Duration::from_millis(1500)));
        assert_eq!(retry_info(b"{}"), None);
    }
}
