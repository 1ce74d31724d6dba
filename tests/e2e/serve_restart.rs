//! Durability: the server is killed with SIGKILL three times at random
//! moments of a batch (no cleanup, no flush) and started again on the same
//! data directory. The batch resumes and completes; every `custom_id` is in
//! the output or the error file exactly once, and the mock provider's log
//! shows no request answered twice.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::serve_support::*;
use crate::support::mock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_three_times_mid_batch_then_every_line_ends_exactly_once() {
    let seed: u64 = std::env::var("SERVE_RESTART_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("SERVE_RESTART_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let provider = mock(|c| {
        c.latency_ms = 20;
        c.jitter_ms = 20;
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &tenant("acme", &provider, "concurrency = 8")).await;
    let k = key("acme");
    let n = 600;
    let lines: Vec<String> = (0..n).map(|i| line(&format!("k{i}"), &format!("durable {i}"))).collect();
    let file = server.upload(&k, &lines.join("\n")).await;
    let id = server.create(&k, &file).await["id"].as_str().expect("id").to_string();

    let mut server = server;
    let mut kills = Vec::new();
    for round in 0..3 {
        // A random moment: from right after (re)start, possibly still
        // validating or compiling, to well into the run.
        let wait = Duration::from_millis(rng.random_range(50..1500));
        tokio::time::sleep(wait).await;
        let b = server.batch(&k, &id).await;
        let done = b["request_counts"]["completed"].as_u64().unwrap_or(0);
        kills.push(format!("round {round}: after {wait:?}, status {}, {done} done", b["status"]));
        server.kill9().await;
        server = Server::restart(dir.path()).await;
    }
    let started = Instant::now();
    let batch = server.wait_end(&k, &id, Duration::from_secs(180)).await;
    eprintln!("kills: {kills:#?}\nresumed to the end in {:?}", started.elapsed());
    assert_eq!(batch["status"], "completed", "{batch}");
    let output = server.lines(&k, &batch["output_file_id"]).await;
    let errors = server.lines(&k, &batch["error_file_id"]).await;
    let all: Vec<_> = output.iter().chain(&errors).cloned().collect();
    let counts = id_counts(&all);
    assert_eq!(counts.len(), n, "every custom_id has a line");
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "lines in the files more than once: {twice:?}");
    let unknown = errors.iter().filter(|e| e["error"]["code"] == "outcome_unknown").count();
    let other_errors: Vec<_> = errors.iter().filter(|e| e["error"]["code"] != "outcome_unknown").collect();
    assert!(other_errors.is_empty(), "only requests on the wire at a kill fail: {other_errors:?}");
    let sent = prompts_sent(&provider);
    let dup: Vec<_> = sent.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dup.is_empty(), "the provider answered these more than once: {dup:?}");
    assert_eq!(batch["request_counts"]["completed"].as_u64(), Some(output.len() as u64));
    assert_eq!(batch["request_counts"]["total"].as_u64(), Some(n as u64));
    eprintln!(
        "restart figures: {n} lines, 3 kills: {} succeeded, {unknown} outcome_unknown (on the wire at a kill, not resent), \
         {} requests reached the provider, 0 twice",
        output.len(),
        sent.len()
    );
    assert_eq!(server.stop().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_resumes_its_batches_and_a_cancel_survives_a_kill() {
    let provider = mock(|c| c.latency_ms = 50).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &tenant("acme", &provider, "concurrency = 4")).await;
    let k = key("acme");
    let lines: Vec<String> = (0..200).map(|i| line(&format!("s{i}"), &format!("stop {i}"))).collect();
    let file = server.upload(&k, &lines.join("\n")).await;
    let id = server.create(&k, &file).await["id"].as_str().expect("id").to_string();
    tokio::time::sleep(Duration::from_millis(700)).await;
    // SIGTERM: the batch keeps its state (in_progress) and resumes.
    assert_eq!(server.stop().await, Some(0));
    let server = Server::restart(dir.path()).await;
    let b = server.batch(&k, &id).await;
    assert!(["in_progress", "completed"].contains(&b["status"].as_str().unwrap_or("")), "{b}");
    // A cancel, then a kill before it ends: the restart finishes the cancel.
    let r = server.req(reqwest::Method::POST, &format!("/v1/batches/{id}/cancel"), &k).send().await.expect("cancel");
    let cancelled = json_of(r).await;
    server.kill9().await;
    let server = Server::restart(dir.path()).await;
    let batch = server.wait_end(&k, &id, Duration::from_secs(60)).await;
    let want = if cancelled["status"] == "completed" { "completed" } else { "cancelled" };
    assert_eq!(batch["status"], want, "{batch}");
    let output = server.lines(&k, &batch["output_file_id"]).await;
    let errors = server.lines(&k, &batch["error_file_id"]).await;
    let counts = id_counts(&output.iter().chain(&errors).cloned().collect::<Vec<_>>());
    assert_eq!(counts.len(), 200);
    assert!(counts.values().all(|&c| c == 1));
    assert!(prompts_sent(&provider).values().all(|&c| c == 1), "nothing sent twice");
    assert_eq!(server.stop().await, Some(0));
}
