//! How a run stops: signals, host failures and setup errors, with the real
//! binary. Each case ends with the results file and the journal saying
//! exactly what happened, `cleanup` run whenever `prepare` ran, and the
//! exit code the README documents.

use std::time::{Duration, Instant};

use crate::support::{API_KEY, Workspace, grant, job, mock, strs};

/// The gemini plugin with a context cache, so `prepare` creates something
/// on the provider and `cleanup` must delete it.
fn gemini_with_cache(server: &batchllm_mock::MockServer, extra: &[&str]) -> Vec<String> {
    let cache = serde_json::json!({"contents": "shared context ".repeat(100), "ttl_seconds": 3600});
    let mut args: Vec<String> = [
        "--plugin",
        "gemini",
        "--allow-host",
        &grant(server),
        "--plugin-config",
        &format!("base_url={}", server.origin()),
        "--plugin-config",
        &format!("cache={cache}"),
        "--api-key-env",
        "E2E_API_KEY",
        "--concurrency",
        "4",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn cache_ops(server: &batchllm_mock::MockServer, method: &str) -> usize {
    server.requests().into_iter().filter(|r| r.path.contains("/cachedContents") && r.method == method).count()
}

/// Waits until the run has written `n` records (it is running, its signal
/// handlers are in place), however loaded the machine.
async fn wait_for_records(ws: &Workspace, n: usize) {
    let started = Instant::now();
    while ws.results().len() < n {
        assert!(started.elapsed() < Duration::from_secs(60), "the run never wrote {n} records");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn signal(child: &tokio::process::Child, sig: i32) {
    let pid = i32::try_from(child.id().expect("running")).expect("pid");
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sighup_stop_like_ctrl_c_with_cleanup_and_no_journal_left() {
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGHUP, 129)] {
        let server = mock(|c| c.latency_ms = 100).await;
        let ws = Workspace::new();
        let n = 60;
        let jobs = ws.jobs(&(0..n).map(|i| job(&format!("j{i}"), &format!("question {i}"))).collect::<Vec<_>>());
        let args = gemini_with_cache(&server, &["--quiet"]);
        let env = [("E2E_API_KEY", API_KEY)];
        let mut child = ws.command(&jobs, &strs(&args), &env).spawn().expect("spawn");
        wait_for_records(&ws, 1).await;
        signal(&child, sig);
        let status = child.wait().await.expect("exit");
        assert_eq!(status.code(), Some(code), "signal {sig}");
        let partial = ws.results();
        assert!(!partial.is_empty() && partial.len() < n, "{} of {n} done", partial.len());
        assert!(partial.iter().all(|r| r["batchllm"]["status"] == "succeeded"), "calls on the wire answered");
        assert_eq!((cache_ops(&server, "POST"), cache_ops(&server, "DELETE")), (1, 1), "cleanup ran");
        assert!(!ws.path("results.jsonl.inflight").exists(), "nothing left on the wire");
        let rest = ws.resume(&jobs, &strs(&args), &env).await;
        assert_eq!(rest.code, 0, "{}", rest.stderr);
        assert_eq!(rest.results.len(), n);
        let generated = server.requests().into_iter().filter(|r| r.path.contains(":generateContent")).count();
        assert_eq!(generated, n, "nothing sent twice");
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_signal_stops_a_run_that_waits_in_a_cooldown_at_once() {
    // Every request is refused: the run waits in 30 s cooldowns. One SIGINT
    // ends it within moments, runs cleanup, and leaves no record (every
    // item runs again on resume) and no journal.
    let server = mock(|c| c.latency_ms = 20).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&(0..20).map(|i| job(&format!("j{i}"), "[[mock:status=429]] hi")).collect::<Vec<_>>());
    let args = gemini_with_cache(&server, &["--cooldown", "30", "--quiet"]);
    let env = [("E2E_API_KEY", API_KEY)];
    let mut child = ws.command(&jobs, &strs(&args), &env).spawn().expect("spawn");
    // Wait until the run is in its cooldown: the cache, then one refused
    // request per worker.
    let started = Instant::now();
    while server.requests().len() < 1 + 4 {
        assert!(started.elapsed() < Duration::from_secs(60), "the run never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent_before = server.requests().len();
    let signalled = Instant::now();
    signal(&child, libc::SIGINT);
    let status = child.wait().await.expect("exit");
    assert_eq!(status.code(), Some(130));
    assert!(signalled.elapsed() < Duration::from_secs(2), "took {:?} after the signal", signalled.elapsed());
    assert!(ws.results().is_empty(), "{:?}", ws.results());
    assert!(!ws.path("results.jsonl.inflight").exists());
    assert_eq!(cache_ops(&server, "DELETE"), 1, "cleanup ran");
    assert_eq!(server.requests().len(), sent_before + 1, "only cleanup's DELETE after the signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_that_fails_fails_before_prepare_creates_anything() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("a", "hi")]);
    let env = [("E2E_API_KEY", API_KEY)];
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_addr = busy.local_addr().expect("addr").to_string();
    let events = ws.path("no/such/dir/events.jsonl");
    for extra in [vec!["--events", events.to_str().expect("utf8")], vec!["--metrics-addr", &busy_addr]] {
        let args = gemini_with_cache(&server, &extra);
        let out = ws.run(&jobs, &strs(&args), &env).await;
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert_eq!(cache_ops(&server, "POST"), 0, "prepare never ran: {}", out.stderr);
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_results_file_that_cannot_be_written_is_a_host_failure_not_a_usage_error() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&(0..20).map(|i| job(&format!("j{i}"), "hi")).collect::<Vec<_>>());
    let args = crate::support::openai_args(&server);
    let out = tokio::process::Command::new(crate::support::BIN)
        .arg(&jobs)
        .args(["--output", "/dev/full", "--overwrite", "--cache-dir"])
        .arg(crate::support::cache_dir())
        .args(strs(&args))
        .env("E2E_API_KEY", API_KEY)
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("/dev/full"), "{stderr}");
    let sent = crate::support::chat_requests(&server).len();
    assert!(sent <= 8, "the run stopped sending after the failure ({sent} sent)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_with_preserve_order_loses_at_most_the_calls_on_the_wire_and_the_end_is_in_order() {
    let server = mock(|c| c.latency_ms = 150).await;
    let ws = Workspace::new();
    let n = 40;
    // One slow item at the head: with records held for order, every later
    // answer would wait behind it, and a crash would lose all of them.
    let mut lines = vec![job("j0", "[[mock:latency=5000]] slow")];
    lines.extend((1..n).map(|i| job(&format!("j{i}"), &format!("question {i}"))));
    let jobs = ws.jobs(&lines);
    let mut args = crate::support::openai_args(&server);
    args.extend(["--preserve-order", "--concurrency", "4", "--quiet"].map(String::from));
    let env = [("E2E_API_KEY", API_KEY)];
    let mut child = ws.command(&jobs, &strs(&args), &env).spawn().expect("spawn");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&child, libc::SIGKILL);
    let _ = child.wait().await;
    let rest = ws.resume(&jobs, &strs(&args), &env).await;
    let unknown = rest.results.iter().filter(|r| r["error"]["code"] == "outcome_unknown").count();
    assert!(unknown <= 4, "{unknown} items came back outcome_unknown after a crash at concurrency 4");
    assert_eq!(rest.results.len(), n);
    let order: Vec<u64> = rest.results.iter().map(|r| r["batchllm"]["line"].as_u64().expect("line")).collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(order, sorted, "in input order at the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_numbers_in_a_job_neither_panic_nor_hang_the_run() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let huge = serde_json::json!({"id": "huge", "prompt": "hi", "params": {"max_tokens": u64::MAX}}).to_string();
    let jobs = ws.jobs(&[huge, job("a", "hi"), job("b", "hi")]);
    let mut args = crate::support::openai_args(&server);
    args.extend(["--tpm", "100000"].map(String::from));
    let started = Instant::now();
    let out = ws.run(&jobs, &strs(&args), &[("E2E_API_KEY", API_KEY)]).await;
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.results.len(), 3, "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}
