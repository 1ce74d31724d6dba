//! Isolation between tenants, measured: tenant B's throughput while tenant
//! A is in a 429 storm, and while A's plugin traps on every call, against
//! B running alone, in the same test run; and that a tenant's plugin cannot
//! reach another tenant's granted host or use its secret.
//!
//! The stated bound: B keeps at least 90% of its alone throughput. What a
//! tenant controls is its plugin and its input; the pacing is the host's
//! (A runs with the default retry policy, a million rate-limit retries and
//! B's concurrency): A's items in flight are capped by its own semaphore,
//! its cooldowns are its own gates (B's provider scope never pauses), each
//! trap costs one fresh instance from A's own pool and a backoff before
//! the next attempt. A tenant whose operator sets near-zero backoff and
//! cooldowns can take more CPU; its `rpm` quota caps that.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve_support::*;
use crate::support::{API_KEY, mock};

/// Items of B's batch per phase, and B's settings: provider latency 200 ms,
/// concurrency 4, so B alone is bounded by 4 / 200 ms = 20 items/s, as real
/// LLM traffic is bounded by its provider's latency, not by the host's CPU
/// (a CPU-bound B measures the machine's other load, not isolation).
const B_ITEMS: usize = 100;

/// Rounds of (storm, alone, traps, alone); the median ratio is kept.
const ROUNDS: usize = 5;

async fn run_b(server: &Server, phase: &str) -> f64 {
    let k = key("b");
    let lines: Vec<String> = (0..B_ITEMS).map(|i| line(&format!("{phase}-{i}"), &format!("b {phase} {i}"))).collect();
    let file = server.upload(&k, &lines.join("\n")).await;
    let started = Instant::now();
    let id = server.create(&k, &file).await["id"].as_str().expect("id").to_string();
    let batch = server.wait_end(&k, &id, Duration::from_secs(120)).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(batch["status"], "completed", "{batch}");
    assert_eq!(batch["request_counts"]["completed"].as_u64(), Some(B_ITEMS as u64), "{batch}");
    B_ITEMS as f64 / elapsed
}

/// Starts A's hostile batch and waits until it is at it.
async fn start_a(server: &Server, n: usize, prompt: &str, busy: impl Fn() -> usize) -> String {
    let k = key("a");
    let lines: Vec<String> = (0..n).map(|i| line(&format!("a{i}"), &format!("{prompt} {i}"))).collect();
    let file = server.upload(&k, &lines.join("\n")).await;
    let id = server.create(&k, &file).await["id"].as_str().expect("id").to_string();
    let started = Instant::now();
    while busy() < 3 {
        assert!(started.elapsed() < Duration::from_secs(60), "A never got going: {}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    id
}

/// Starts tenant `trap`'s batch, whose every call traps, and waits until it runs.
async fn start_trap(server: &Server, round: usize) -> String {
    let k = key("trap");
    let lines: Vec<String> =
        (0..2000).map(|i| line(&format!("t{round}-{i}"), &format!("boom {round} {i} [[panic]]"))).collect();
    let file = server.upload(&k, &lines.join("\n")).await;
    let trap = server.create(&k, &file).await["id"].as_str().expect("id").to_string();
    let started = Instant::now();
    while server.batch(&k, &trap).await["status"] != "in_progress" {
        assert!(started.elapsed() < Duration::from_secs(60), "the trapping batch never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its workers are trapping by now (the first calls come within milliseconds).
    tokio::time::sleep(Duration::from_millis(300)).await;
    trap
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

async fn stop_a(server: &Server, id: &str) -> Value {
    let k = key("a");
    let r = server.req(reqwest::Method::POST, &format!("/v1/batches/{id}/cancel"), &k).send().await.expect("cancel");
    assert!(r.status().is_success());
    server.wait_end(&k, id, Duration::from_secs(60)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_in_a_429_storm_or_with_a_trapping_plugin_leaves_the_others_throughput_within_10_percent() {
    let provider_b = mock(|c| c.latency_ms = 200).await;
    // A's provider answers every one of A's requests 429 (with retry-after).
    let provider_a = mock(|c| c.keep_requests = false).await;
    // A's retry policy is the host's default: what a tenant controls is its
    // plugin and its input, not the server's pacing.
    let hostile = "concurrency = 8\nmax-rate-limit-retries = 1000000";
    let dir = tempfile::tempdir().expect("tempdir");
    let tenants = operator()
        + &tenant("a", &provider_a, hostile)
        + &tenant("b", &provider_b, "concurrency = 4")
        // The same tenant A, with the network-free mock plugin, whose
        // `[[panic]]` marker traps on every call.
        + &format!(
            "[tenants.trap]\napi-keys = [\"{}\"]\nplugin = \"mock\"\n{hostile}\n",
            digest(&key("trap"))
        );
    let server = Server::start(dir.path(), &tenants).await;
    // Compile the plugins once before measuring.
    run_b(&server, "warm").await;

    // Phases interleaved with B alone, five rounds: each ratio is B's
    // throughput during the phase over the mean of the alone runs just
    // before and after it, and the median of the rounds is kept, so load
    // from outside this test (a shared machine) moves both sides alike.
    let mut alone = vec![run_b(&server, "alone0").await];
    let (mut storm_ratios, mut trap_ratios) = (Vec::new(), Vec::new());
    let mut trap_failures = 0;
    for round in 0..ROUNDS {
        let storm = start_a(&server, 2000, &format!("storm{round} [[mock:status=429]]"), || {
            provider_a.status_counts().get(&429).copied().unwrap_or(0) as usize
        })
        .await;
        let during = run_b(&server, &format!("storm{round}")).await;
        assert_eq!(stop_a(&server, &storm).await["status"], "cancelled");
        alone.push(run_b(&server, &format!("alone{}", alone.len())).await);
        storm_ratios.push(during / mean(&alone[alone.len() - 2..]));

        let trap = start_trap(&server, round).await;
        let during = run_b(&server, &format!("trap{round}")).await;
        let k = key("trap");
        let r =
            server.req(reqwest::Method::POST, &format!("/v1/batches/{trap}/cancel"), &k).send().await.expect("cancel");
        assert!(r.status().is_success());
        let trapped = server.wait_end(&k, &trap, Duration::from_secs(60)).await;
        trap_failures += trapped["batchllm"]["failures"]["plugin_trap"].as_u64().unwrap_or(0);
        alone.push(run_b(&server, &format!("alone{}", alone.len())).await);
        trap_ratios.push(during / mean(&alone[alone.len() - 2..]));
    }
    let counts = provider_a.status_counts();
    let (limited, answered) = (counts.get(&429).copied().unwrap_or(0), counts.get(&200).copied().unwrap_or(0));
    let (storm_ratio, trap_ratio) = (median(&storm_ratios), median(&trap_ratios));
    let pct = |v: &[f64]| v.iter().map(|r| format!("{:.1}%", r * 100.0)).collect::<Vec<_>>().join(", ");
    eprintln!(
        "isolation figures: B alone {} items/s; during A's 429 storm (A's provider: {limited} answers 429, {answered} 200) \
         {} of alone, median {:.1}%; during A's traps ({trap_failures} of A's items ended plugin_trap) {} of alone, \
         median {:.1}%",
        alone.iter().map(|a| format!("{a:.1}")).collect::<Vec<_>>().join(", "),
        pct(&storm_ratios),
        storm_ratio * 100.0,
        pct(&trap_ratios),
        trap_ratio * 100.0
    );
    assert!(limited >= 3 && answered == 0, "A was in a storm: {counts:?}");
    assert!(trap_failures > 0, "A's plugin trapped");
    assert!(storm_ratio >= 0.9, "B during A's 429 storm: {:.1}% of alone", storm_ratio * 100.0);
    assert!(trap_ratio >= 0.9, "B during A's traps: {:.1}% of alone", trap_ratio * 100.0);
    assert_eq!(server.stop().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_plugin_cannot_reach_another_tenants_host_nor_use_its_secret() {
    let provider_a = mock(|_| {}).await;
    let provider_b = mock(|c| c.api_key = Some("sk-b-own-key".into())).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // B points its plugin at A's provider, without A's grant; then names A's secret.
    let b_at_a = format!(
        "[tenants.b]\napi-keys = [\"{}\"]\nplugin = \"openai\"\nallow-host = [\"{}\"]\nsecret = [\"api-key=env:B_KEY\"]\n\
         [tenants.b.plugin-config]\nbase_url = \"{}\"\n",
        digest(&key("b")),
        crate::support::grant(&provider_b),
        provider_a.base_url()
    );
    std::fs::write(dir.path().join("b.key"), "sk-b-own-key").expect("key");
    let tenants = tenant("a", &provider_a, "") + &b_at_a;
    let tenants = tenants.replace("env:B_KEY", &format!("file:{}", dir.path().join("b.key").display()));
    let server = Server::start(dir.path(), &tenants).await;
    let k = key("b");
    let file = server.upload(&k, &(0..3).map(|i| line(&format!("x{i}"), "steal")).collect::<Vec<_>>().join("\n")).await;
    let id = server.create(&k, &file).await["id"].as_str().expect("id").to_string();
    let batch = server.wait_end(&k, &id, Duration::from_secs(60)).await;
    assert_eq!(batch["batchllm"]["failures"]["egress_denied"].as_u64(), Some(3), "{batch}");
    assert!(provider_a.requests().is_empty(), "A's provider saw nothing from B");
    assert_eq!(server.stop().await, Some(0));

    // B naming a secret only A has: refused when the tenants are loaded.
    let b_steals = tenant("a", &provider_a, "secret = [\"a-only=env:SERVE_E2E_PROVIDER_KEY\"]")
        + &tenant("b", &provider_b, "").replace(
            "[tenants.b.plugin-config]\n",
            "[tenants.b.plugin-config]\nextra_headers = { x = \"{{secret:a-only}}\" }\n",
        );
    std::fs::write(dir.path().join("tenants.toml"), b_steals).expect("write");
    let out = std::process::Command::new(crate::support::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--tenants"])
        .arg(dir.path().join("tenants.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("SERVE_E2E_PROVIDER_KEY", API_KEY)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tenant `b`") && stderr.contains("a-only"), "{stderr}");
}
