//! `--cluster`: several real host processes, one real `redis-server`, one
//! mock provider. Every id ends in exactly one record of the merged results
//! file and no item is answered twice, whichever host is killed (`kill -9`),
//! paused past its lease (`SIGSTOP`) or however long Redis is gone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use batchllm_host::cluster::local::LocalRedis;
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::support::*;

/// A redis-server on loopback; fails (never skips) when it is not installed.
async fn redis(dir: &Path) -> LocalRedis {
    LocalRedis::start(&dir.join("redis")).await.unwrap_or_else(|e| panic!("{e}"))
}

/// One host of the cluster (a 2 s lease), writing to the shared `results.jsonl`.
fn host(ws: &Workspace, jobs: &Path, server: &batchllm_mock::MockServer, redis: &str, extra: &[&str]) -> Child {
    host_with_lease(ws, jobs, server, redis, "2", extra)
}

fn host_with_lease(
    ws: &Workspace,
    jobs: &Path,
    server: &batchllm_mock::MockServer,
    redis: &str,
    lease: &str,
    extra: &[&str],
) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.arg(jobs)
        .arg("--output")
        .arg(ws.path("results.jsonl"))
        .arg("--cache-dir")
        .arg(cache_dir())
        .args(openai_args(server))
        .args(["--cluster", redis, "--cluster-chunk", "10", "--cluster-lease", lease, "--progress-interval", "60"])
        .args(["--backoff-initial", "0.05", "--backoff-max", "0.2"])
        .args(extra)
        .env_remove("RUST_LOG")
        .env("E2E_API_KEY", API_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.spawn().expect("host starts")
}

/// Waits for a host (bounded) and returns its exit code and stderr.
async fn finish(child: Child, limit: Duration) -> (Option<i32>, String) {
    let out =
        tokio::time::timeout(limit, child.wait_with_output()).await.expect("the host finishes in time").expect("wait");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id().expect("running")).expect("pid");
    // SAFETY: signalling our own child, which has not been reaped.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// Every id exactly once in the results; returns the records by id.
fn once_each(ws: &Workspace, n: usize) -> HashMap<String, Value> {
    let mut by_id = HashMap::new();
    for r in ws.results() {
        let id = r["custom_id"].as_str().expect("id").to_string();
        assert!(by_id.insert(id.clone(), r).is_none(), "{id} has two records");
    }
    assert_eq!(by_id.len(), n, "every id has a record");
    by_id
}

/// No item was answered twice (prompts are unique per item); returns how
/// many were answered.
fn sent_at_most_once(server: &batchllm_mock::MockServer) -> usize {
    let mut answered: HashMap<String, Vec<u16>> = HashMap::new();
    for r in chat_requests(server) {
        answered.entry(r.prompt.unwrap_or_default()).or_default().push(r.status);
    }
    let twice: Vec<_> = answered.iter().filter(|(_, s)| s.iter().filter(|s| **s == 200).count() > 1).collect();
    assert!(twice.is_empty(), "answered twice: {twice:?}");
    answered.values().filter(|s| s.contains(&200)).count()
}

fn jobs(ws: &Workspace, n: usize) -> PathBuf {
    ws.jobs(&(0..n).map(|i| job(&format!("id-{i}"), &format!("question {i}"))).collect::<Vec<_>>())
}

/// When the first takeover happened: a part file of a second epoch appears.
async fn first_takeover(parts: &Path, since: Instant, limit: Duration) -> Option<Duration> {
    while since.elapsed() < limit {
        let found = std::fs::read_dir(parts)
            .map(|d| d.flatten().any(|e| !e.file_name().to_string_lossy().ends_with(".e1.jsonl")))
            .unwrap_or(false);
        if found {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_share_one_batch_and_merge_one_results_file() {
    let server = mock(|c| c.latency_ms = 20).await;
    let ws = Workspace::new();
    let redis = redis(ws.dir.path()).await;
    let jobs = jobs(&ws, 150);
    let hosts: Vec<Child> = (0..3).map(|_| host(&ws, &jobs, &server, &redis.url(), &["-j", "4"])).collect();
    for child in hosts {
        let (code, stderr) = finish(child, Duration::from_secs(60)).await;
        assert_eq!(code, Some(0), "{stderr}");
    }
    let records = once_each(&ws, 150);
    assert!(records.values().all(|r| r["batchllm"]["status"] == "succeeded"));
    assert_eq!(sent_at_most_once(&server), 150);
    // Running the same command again finds the batch done and sends nothing.
    let (code, stderr) = finish(host(&ws, &jobs, &server, &redis.url(), &[]), Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(chat_requests(&server).len(), 150);
    once_each(&ws, 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_at_a_random_moment_loses_nothing_and_resends_nothing() {
    for seed in [1u64, 2, 3] {
        let server = mock(|c| c.latency_ms = 150).await;
        let ws = Workspace::new();
        let redis = redis(ws.dir.path()).await;
        let jobs = jobs(&ws, 200);
        let mut hosts: Vec<Child> = (0..3).map(|_| host(&ws, &jobs, &server, &redis.url(), &["-j", "6"])).collect();
        // A moment, from the seed, after the victim claimed its first chunk
        // (on a loaded machine a host may take seconds to start).
        let victim = hosts.remove(0);
        holds_a_chunk(&redis.url(), victim.id().expect("running"), Duration::from_secs(30)).await;
        let delay = Duration::from_millis((seed * 7919) % 700);
        tokio::time::sleep(delay).await;
        signal(&victim, libc::SIGKILL);
        let killed = Instant::now();
        let takeover = first_takeover(&parts_of(&ws), killed, Duration::from_secs(10)).await;
        for child in hosts {
            let (code, stderr) = finish(child, Duration::from_secs(90)).await;
            assert!(matches!(code, Some(0 | 1)), "seed {seed}: {stderr}");
        }
        let _ = finish(victim, Duration::from_secs(5)).await;
        let records = once_each(&ws, 200);
        sent_at_most_once(&server);
        let unknown = records.values().filter(|r| r["error"]["code"] == "outcome_unknown").count();
        assert!(unknown <= 6, "seed {seed}: {unknown} outcome_unknown, more than the dead host had in flight (6)");
        let succeeded = records.values().filter(|r| r["batchllm"]["status"] == "succeeded").count();
        assert_eq!(succeeded + unknown, 200, "seed {seed}");
        let takeover = takeover.expect("the dead host's chunk was taken over");
        assert!(takeover <= Duration::from_secs(3), "seed {seed}: takeover after {takeover:?} (lease 2 s)");
    }
}

/// Waits (bounded) until the host of `pid` owns a chunk of the batch (the
/// consumer names carry the process id).
async fn holds_a_chunk(url: &str, pid: u32, limit: Duration) {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis answers");
    let mark = format!("-{pid}-");
    let since = Instant::now();
    while since.elapsed() < limit {
        let keys: Vec<String> =
            redis::cmd("KEYS").arg("batchllm:batch:*:owner").query_async(&mut conn).await.expect("keys");
        for key in keys {
            let owners: HashMap<String, String> =
                redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await.expect("owners");
            if owners.values().any(|o| o.contains(&mark)) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("host {pid} claimed no chunk within {limit:?}");
}

fn parts_of(ws: &Workspace) -> PathBuf {
    ws.path("results.jsonl.parts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_paused_past_its_lease_cannot_commit_or_start_anything_when_it_wakes() {
    let server = mock(|c| c.latency_ms = 300).await;
    let ws = Workspace::new();
    let redis = redis(ws.dir.path()).await;
    let jobs = jobs(&ws, 120);
    let sleeper = host(&ws, &jobs, &server, &redis.url(), &["-j", "4"]);
    holds_a_chunk(&redis.url(), sleeper.id().expect("running"), Duration::from_secs(30)).await;
    // Mid-chunk: some of its items answered, some on the wire.
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&sleeper, libc::SIGSTOP);
    let other = host(&ws, &jobs, &server, &redis.url(), &["-j", "4"]);
    let paused = Instant::now();
    first_takeover(&parts_of(&ws), paused, Duration::from_secs(10)).await.expect("taken over");
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&sleeper, libc::SIGCONT);
    let (code, stderr) = finish(sleeper, Duration::from_secs(90)).await;
    assert!(matches!(code, Some(0 | 1)), "{stderr}");
    assert!(
        stderr.contains("commit refused") || stderr.contains("no longer holds the chunk"),
        "the woken host was not fenced:\n{stderr}"
    );
    let (code, stderr) = finish(other, Duration::from_secs(90)).await;
    assert!(matches!(code, Some(0 | 1)), "{stderr}");
    let records = once_each(&ws, 120);
    sent_at_most_once(&server);
    let unknown = records.values().filter(|r| r["error"]["code"] == "outcome_unknown").count();
    assert!(unknown <= 4, "{unknown} outcome_unknown, more than the paused host had in flight (4)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_gone_for_five_seconds_pauses_every_host_and_the_batch_completes_after() {
    // The provider allows 100 requests per 10 s window (600 a minute); the
    // hosts share --rpm 600 between them.
    let server = mock(|c| {
        c.latency_ms = 20;
        c.rpm = Some(100);
        c.window_ms = 10_000;
    })
    .await;
    let ws = Workspace::new();
    let mut redis = redis(ws.dir.path()).await;
    let jobs = jobs(&ws, 120);
    let limits = ["-j", "4", "--rpm", "600", "--burst", "0.1"];
    let hosts: Vec<Child> = (0..2).map(|_| host_with_lease(&ws, &jobs, &server, &redis.url(), "10", &limits)).collect();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = chat_requests(&server).len();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let during = chat_requests(&server).len() - before;
    redis.restart().await.expect("redis restarts");
    for child in hosts {
        let (code, stderr) = finish(child, Duration::from_secs(90)).await;
        assert_eq!(code, Some(0), "{stderr}");
    }
    assert_eq!(during, 0, "requests were sent while Redis was down");
    assert!(before > 10 && before < 120, "the outage came mid-run ({before} sent before)");
    once_each(&ws, 120);
    assert_eq!(sent_at_most_once(&server), 120);
    let refused = chat_requests(&server).iter().filter(|r| r.status == 429).count();
    assert_eq!(refused, 0, "the shared limit was exceeded");
}
