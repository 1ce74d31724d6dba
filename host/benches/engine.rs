//! Engine benchmarks against the mock provider, reported as ratios against
//! the ideal in the same run (never as absolute timings in tests).
//!
//! ```sh
//! cargo bench -p batchllm-host --bench engine            # both scenarios
//! cargo bench -p batchllm-host --bench engine -- quota   # one of them
//! ```
//!
//! - `quota`: the server allows R requests per window and answers 429 with
//!   `retry-after` beyond it. Target: throughput >= 95% of R and < 2% of
//!   requests answered 429 (async-batch-llm at its defaults: 5.5% of R).
//! - `latency`: 100 ms server latency, no limit, concurrency 1,000. Target:
//!   throughput >= 90% of concurrency / latency.

use std::path::Path;
use std::time::{Duration, Instant};

use batchllm_mock::{MockConfig, MockServer};

const BIN: &str = env!("CARGO_BIN_EXE_batchllm-host");
const KEY: &str = "sk-bench";

struct Measured {
    items: usize,
    elapsed: Duration,
    requests: usize,
    rate_limited: usize,
    ok: bool,
}

async fn run_host(server: &MockServer, items: usize, extra: &[&str]) -> Measured {
    let dir = tempfile::tempdir().expect("tempdir");
    let jobs = dir.path().join("jobs.jsonl");
    let text: String = (0..items).map(|i| format!("{{\"id\":\"j{i}\",\"prompt\":\"question {i}\"}}\n")).collect();
    std::fs::write(&jobs, text).expect("write jobs");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-cache");
    let started = Instant::now();
    let status = tokio::process::Command::new(BIN)
        .arg(&jobs)
        .args(["--plugin", "openai", "--quiet", "--overwrite"])
        .arg("--output")
        .arg(dir.path().join("results.jsonl"))
        .arg("--cache-dir")
        .arg(cache)
        .args(["--allow-host", &format!("127.0.0.1:{}", server.addr().port())])
        .args(["--plugin-config", &format!("base_url={}", server.base_url())])
        .args(["--api-key-env", "BENCH_KEY"])
        .args(extra)
        .env("BENCH_KEY", KEY)
        .status()
        .await
        .expect("run host");
    let elapsed = started.elapsed();
    let log = server.requests();
    Measured {
        items,
        elapsed,
        requests: log.len(),
        rate_limited: log.iter().filter(|r| r.status == 429).count(),
        ok: status.success(),
    }
}

async fn mock(tweak: impl FnOnce(&mut MockConfig)) -> MockServer {
    let mut config = MockConfig { api_key: Some(KEY.into()), ..MockConfig::default() };
    tweak(&mut config);
    MockServer::start(config).await.expect("mock starts")
}

async fn quota() {
    let (limit, window_ms, items, concurrency) = (600u32, 10_000u64, 1_000usize, 50);
    let server = mock(|c| {
        c.rpm = Some(limit);
        c.window_ms = window_ms;
    })
    .await;
    // Warm the compile cache so the timed run measures the engine.
    let _ = run_host(&server, 1, &[]).await;
    server.reset();
    let m = run_host(&server, items, &["--concurrency", &concurrency.to_string()]).await;
    let r_per_sec = f64::from(limit) / (window_ms as f64 / 1000.0);
    let throughput = m.items as f64 / m.elapsed.as_secs_f64();
    // The fastest schedule the server allows: `limit` at once, then one
    // window later the rest (for items <= 2 * limit).
    let ideal = if m.items as u32 <= limit { 0.0 } else { window_ms as f64 / 1000.0 };
    println!(
        "quota: {} items, limit {limit}/{}s, concurrency {concurrency}: {:.2}s (ideal {:.1}s), throughput {:.1}/s = {:.0}% of R, {} requests, {} answered 429 = {:.2}%{}",
        m.items,
        window_ms / 1000,
        m.elapsed.as_secs_f64(),
        ideal,
        throughput,
        100.0 * throughput / r_per_sec,
        m.requests,
        m.rate_limited,
        100.0 * m.rate_limited as f64 / m.requests.max(1) as f64,
        if m.ok { "" } else { " (run failed)" },
    );
}

async fn latency() {
    let (latency_ms, items, concurrency) = (100u64, 60_000usize, 1_000usize);
    let server = mock(|c| c.latency_ms = latency_ms).await;
    let _ = run_host(&server, 1, &[]).await;
    server.reset();
    let m = run_host(&server, items, &["--concurrency", &concurrency.to_string()]).await;
    let ideal_per_sec = concurrency as f64 / (latency_ms as f64 / 1000.0);
    let throughput = m.items as f64 / m.elapsed.as_secs_f64();
    println!(
        "latency: {} items, {latency_ms} ms latency, concurrency {concurrency}: {:.2}s, throughput {:.0}/s = {:.0}% of concurrency/latency ({ideal_per_sec:.0}/s){}",
        m.items,
        m.elapsed.as_secs_f64(),
        throughput,
        100.0 * throughput / ideal_per_sec,
        if m.ok { "" } else { " (run failed)" },
    );
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        if wants("quota") {
            quota().await;
        }
        if wants("latency") {
            latency().await;
        }
    });
}
