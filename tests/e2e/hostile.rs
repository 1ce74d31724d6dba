//! Hostile plugins: each attack must be contained. The attacking plugins are
//! built from `tests/plugins/` once per test run; each test runs the real
//! binary on a batch mixing attacks with well-behaved items and asserts the
//! result class, that no request reached a server it must not reach, that the
//! batch completed, and that the host's peak RSS stayed bounded.
//!
//! `BATCHLLM_HOSTILE_BIN=/path/to/batchllm-host` runs the attacks against
//! another build of the host (e.g. an older release, to see them succeed).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{BIN, Workspace, cache_dir, job};

/// The `VmHWM` line of `/proc/<pid>/status`, if the process still has memory.
fn vm_hwm_kib(pid: libc::pid_t) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A component of the `tests/plugins` workspace, built once per test run.
fn plugin(name: &str) -> PathBuf {
    crate::fixtures::test_plugin(name)
}

/// The host under attack: this build, or `BATCHLLM_HOSTILE_BIN`.
fn host_bin() -> String {
    std::env::var("BATCHLLM_HOSTILE_BIN").unwrap_or_else(|_| BIN.to_string())
}

fn hostile() -> String {
    let plugin = plugin("batchllm_hostile.wasm").to_str().expect("utf-8 path").to_string();
    static WARM: OnceLock<()> = OnceLock::new();
    WARM.get_or_init(|| warm(&plugin));
    plugin
}

/// Compiles `plugin` into the shared compile cache once (a `--dry-run`
/// loads it and sends nothing), so the runs below measure the sandbox at
/// work, not Cranelift: compiling is measured by the benchmark's plugin
/// costs, and a cold compile of even a small plugin peaks well above what a
/// running host needs.
fn warm(plugin: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let jobs = dir.path().join("jobs.jsonl");
    std::fs::write(&jobs, job("warm", "ok") + "\n").expect("write jobs");
    let out = Command::new(host_bin())
        .arg(&jobs)
        .args(["--plugin", plugin, "--dry-run", "--cache-dir"])
        .arg(cache_dir())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "warming the compile cache failed: {}", String::from_utf8_lossy(&out.stderr));
}

// ---------------------------------------------------------------------------
// Running the binary with its peak RSS measured.

/// What one measured run produced.
#[derive(Debug)]
struct Run {
    code: i32,
    stderr: String,
    results: Vec<Value>,
    /// Peak resident set of the host process, KiB: the highest `VmHWM` of
    /// `/proc/<pid>/status` seen while it ran. Not `wait4`'s `ru_maxrss`:
    /// Linux carries the parent's resident size at the spawn into the
    /// child's, and this test process grows with the tests run before.
    max_rss_kib: i64,
    elapsed: Duration,
}

impl Run {
    fn result(&self, id: &str) -> &Value {
        let found: Vec<&Value> = self.results.iter().filter(|r| r["custom_id"] == id).collect();
        assert_eq!(found.len(), 1, "{id} must have exactly one result; stderr:\n{}", self.stderr);
        found[0]
    }

    fn code_of(&self, id: &str) -> &str {
        self.result(id)["error"]["code"].as_str().unwrap_or("succeeded")
    }

    fn message_of(&self, id: &str) -> &str {
        self.result(id)["error"]["message"].as_str().unwrap_or_default()
    }

    fn output_of(&self, id: &str) -> Value {
        let text = self.result(id)["batchllm"]["output"].as_str().unwrap_or_else(|| panic!("{id} has no output"));
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
    }

    fn max_rss_mib(&self) -> i64 {
        self.max_rss_kib / 1024
    }
}

/// Runs the binary on `lines`, sampling its peak RSS until it exits.
/// Killed after `limit` (a hang is a failure).
async fn run<S: AsRef<std::ffi::OsStr>>(
    ws: &Workspace,
    lines: &[String],
    args: &[S],
    env: &[(&str, &str)],
    limit: Duration,
) -> Run {
    run_with_cache(ws, lines, args, env, limit, &cache_dir()).await
}

/// [`run`] with the compile cache in `cache`.
async fn run_with_cache<S: AsRef<std::ffi::OsStr>>(
    ws: &Workspace,
    lines: &[String],
    args: &[S],
    env: &[(&str, &str)],
    limit: Duration,
    cache: &Path,
) -> Run {
    let jobs = ws.jobs(lines);
    let results = ws.path("results.jsonl");
    let _ = std::fs::remove_file(&results);
    let stderr_path = ws.path("stderr.txt");
    let mut cmd = Command::new(host_bin());
    cmd.arg(&jobs)
        .arg("--output")
        .arg(&results)
        .arg("--overwrite")
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"));
    let (status, peak_kib, elapsed) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let child = cmd.spawn().expect("binary starts");
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        let mut peak_kib = 0;
        let mut killed = false;
        let (status, rusage) = loop {
            if let Some(kib) = vm_hwm_kib(pid) {
                peak_kib = peak_kib.max(kib);
            }
            let mut status = 0;
            // SAFETY: an all-zero rusage is a valid value to be overwritten.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: `pid` is our child; `status` and `usage` are valid for writes.
            let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
            if reaped == pid {
                break (status, usage);
            }
            assert_eq!(reaped, 0, "wait4");
            if !killed && started.elapsed() > limit {
                // SAFETY: plain syscall; `pid` is our unreaped child (it
                // cannot be reused before `wait4` reaps it).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        assert!(!killed, "the host did not finish within {limit:?}: it hung");
        std::mem::forget(child); // already reaped
        // A run too short for one sample: wait4's figure, an upper bound
        // (it includes this process's size at the spawn).
        let peak_kib = if peak_kib == 0 { rusage.ru_maxrss } else { peak_kib };
        (status, peak_kib, started.elapsed())
    })
    .await
    .expect("join");
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -libc::WTERMSIG(status) };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let text = std::fs::read_to_string(&results).unwrap_or_default();
    let results = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("result line is not JSON ({e}): {l}")))
        .collect();
    eprintln!("host exit {code}, peak RSS {} MiB, {elapsed:.2?}", peak_kib / 1024);
    Run { code, stderr, results, max_rss_kib: peak_kib, elapsed }
}

/// A job line whose prompt names the attack and whose params describe it.
fn attack(id: &str, mode: &str, params: Value) -> String {
    json!({"id": id, "prompt": mode, "params": params}).to_string()
}

/// `--plugin PATH` plus `extra`.
fn with_plugin(plugin: &str, extra: &[&str]) -> Vec<String> {
    ["--plugin", plugin].iter().chain(extra).map(|s| s.to_string()).collect()
}

fn oks(n: usize) -> Vec<String> {
    (0..n).map(|i| job(&format!("ok-{i}"), "ok")).collect()
}

fn assert_oks_succeeded(run: &Run, n: usize) {
    for i in 0..n {
        let id = format!("ok-{i}");
        assert_eq!(run.code_of(&id), "succeeded", "{id}: {}", run.result(&id));
        assert_eq!(run.result(&id)["batchllm"]["output"], format!("ok {id}"));
    }
}

// ---------------------------------------------------------------------------
// A tiny HTTP server over loopback that records what reached it.

/// What a [`TestServer`] does with a request, by path.
/// - `/echo`: 200 with the raw request (head and body) as the body, and the
///   `authorization` header copied into `x-echo-authorization`;
/// - `/redirect?to=URL`: 302 to URL;
/// - `/drip`: announces 1 MB, then sends one byte every 100 ms;
/// - `/huge`: a 100 MiB body;
/// - `/gzip-echo`: like `/echo`, gzip-compressed when the request accepts
///   gzip (as servers do); `/gzip-always`: gzip-compressed regardless;
/// - `/big?bytes=N`: N bytes;
/// - `/slow?ms=N&status=S`: status S (with `retry-after: 30`) after N ms;
/// - `/hangup?ms=N`: closes the connection without an answer after N ms;
/// - anything else: 200 `{"ok":true}`.
struct TestServer {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(socket, r.clone()));
            }
        });
        TestServer { port, connections, requests }
    }

    fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

async fn serve(mut socket: tokio::net::TcpStream, log: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0usize);
    while buf.len() < head_end + length {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let raw = String::from_utf8_lossy(&buf).to_string();
    log.lock().expect("lock").push(raw.clone());
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let reply = |status: &str, extra: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
            body.len()
        )
    };
    let query = |name: &str| -> u64 {
        target
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    if target.starts_with("/gzip-") {
        let accepts_gzip = head.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("accept-encoding:") && l.contains("gzip")
        });
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(raw.as_bytes()).expect("gzip");
        let (encoding, body) = if accepts_gzip || target.starts_with("/gzip-always") {
            ("content-encoding: gzip\r\n", encoder.finish().expect("gzip"))
        } else {
            ("", raw.clone().into_bytes())
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n{encoding}content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = socket.write_all(head.as_bytes()).await;
        let _ = socket.write_all(&body).await;
        let _ = socket.shutdown().await;
        return;
    }
    if target.starts_with("/big") {
        let bytes = usize::try_from(query("bytes")).expect("size");
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {bytes}\r\nconnection: close\r\n\r\n");
        let _ = socket.write_all(head.as_bytes()).await;
        let chunk = vec![b'B'; 64 << 10];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            if socket.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            left -= n;
        }
        let _ = socket.shutdown().await;
        return;
    }
    if target.starts_with("/slow") || target.starts_with("/hangup") {
        tokio::time::sleep(Duration::from_millis(query("ms"))).await;
        if target.starts_with("/hangup") {
            return;
        }
        let status = query("status");
        let reply =
            format!("HTTP/1.1 {status} X\r\nretry-after: 30\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}");
        let _ = socket.write_all(reply.as_bytes()).await;
        let _ = socket.shutdown().await;
        return;
    }
    let response = if target.starts_with("/echo") {
        let auth = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().starts_with("authorization:").then(|| l[14..].trim().to_string()))
            .unwrap_or_default();
        reply("200 OK", &format!("x-echo-authorization: {auth}\r\n"), &raw)
    } else if let Some(to) = target.strip_prefix("/redirect?to=") {
        reply("302 Found", &format!("location: {to}\r\n"), "")
    } else if target.starts_with("/huge") {
        // 100 MiB, as fast as the client reads.
        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 104857600\r\n\r\n").await;
        let chunk = vec![b'h'; 64 << 10];
        for _ in 0..1600 {
            if socket.write_all(&chunk).await.is_err() {
                return;
            }
        }
        return;
    } else if target.starts_with("/drip") {
        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n").await;
        for _ in 0..10_000 {
            if socket.write_all(b"d").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        return;
    } else {
        reply("200 OK", "", r#"{"ok":true}"#)
    };
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

// ---------------------------------------------------------------------------
// The attacks.

/// Peak RSS allowed for a host that ran small plugins: the wasmtime runtime,
/// the compiled plugin, a few instances and the HTTP client (31-50 MiB
/// measured for a debug build).
const BASE_RSS_MIB: i64 = 96;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_is_stopped_by_the_cpu_limit_and_the_batch_completes() {
    let ws = Workspace::new();
    let plugin = hostile();
    let mut lines = vec![job("loop-1", "loop"), job("loop-2", "loop")];
    lines.extend(oks(6));
    let args = with_plugin(&plugin, &["--max-cpu-per-call", "1", "--max-attempts", "1", "--concurrency", "3"]);
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 1, "some items failed:\n{}", out.stderr);
    for id in ["loop-1", "loop-2"] {
        assert_eq!(out.code_of(id), "plugin_timeout", "{}", out.result(id));
        assert!(out.message_of(id).contains("CPU budget"), "{}", out.message_of(id));
    }
    assert_oks_succeeded(&out, 6);
    assert!(out.elapsed < Duration::from_secs(20), "took {:?}", out.elapsed);
    assert!(out.max_rss_mib() < BASE_RSS_MIB, "host peak RSS {} MiB", out.max_rss_mib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_memory_limit_and_is_reported_as_out_of_memory() {
    let ws = Workspace::new();
    let plugin = hostile();
    let mut lines: Vec<String> = (0..4).map(|i| job(&format!("bomb-{i}"), "membomb")).collect();
    lines.extend(oks(6));
    let args = with_plugin(&plugin, &["--max-memory-mb", "64", "--max-attempts", "1", "--concurrency", "3"]);
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for i in 0..4 {
        let id = format!("bomb-{i}");
        assert_eq!(out.code_of(&id), "plugin_trap", "{}", out.result(&id));
        let message = out.message_of(&id);
        assert!(message.contains("out of memory") && message.contains("limit 64 MiB"), "{message}");
    }
    assert_oks_succeeded(&out, 6);
    // Three instances may each hold 64 MiB of linear memory at once.
    let bound = BASE_RSS_MIB + 3 * 64;
    assert!(out.max_rss_mib() < bound, "host peak RSS {} MiB >= {bound} MiB", out.max_rss_mib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_panics_on_every_call_neither_hangs_nor_crashes_the_host() {
    let ws = Workspace::new();
    let plugin = hostile();
    let lines: Vec<String> = (0..150).map(|i| job(&format!("p-{i}"), "panic")).collect();
    let args = with_plugin(
        &plugin,
        &["--max-attempts", "2", "--backoff-initial", "0", "--backoff-max", "0", "--concurrency", "4"],
    );
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(90)).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.results.len(), 150, "the batch completed");
    for i in 0..150 {
        let id = format!("p-{i}");
        assert_eq!(out.code_of(&id), "plugin_trap");
        assert_eq!(out.result(&id)["batchllm"]["attempts"], 2, "a fresh instance for the retry");
        assert!(out.message_of(&id).contains("panics on purpose"), "{}", out.message_of(&id));
    }
    assert!(out.max_rss_mib() < BASE_RSS_MIB, "host peak RSS {} MiB", out.max_rss_mib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_panics_in_prepare_aborts_the_run_cleanly() {
    let ws = Workspace::new();
    let plugin = hostile();
    let args = with_plugin(&plugin, &["--plugin-config", "panic_in_prepare=true"]);
    let out = run(&ws, &oks(3), &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("failed to prepare") && out.stderr.contains("panics in prepare"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_output_is_refused_before_the_host_copies_it() {
    let ws = Workspace::new();
    let plugin = hostile();
    let mut lines: Vec<String> = (0..3).map(|i| job(&format!("big-{i}"), "big-output")).collect();
    lines.extend(oks(3));
    let args = with_plugin(&plugin, &["--max-memory-mb", "160", "--max-attempts", "1", "--concurrency", "1"]);
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for i in 0..3 {
        let id = format!("big-{i}");
        assert_eq!(out.code_of(&id), "plugin_output_too_large", "{}", out.result(&id));
        assert!(out.message_of(&id).contains("more than 67108864 bytes"), "{}", out.message_of(&id));
        assert_eq!(out.result(&id)["batchllm"]["output"], Value::Null);
    }
    assert_oks_succeeded(&out, 3);
    // The plugin's own 100 MiB string lives in its linear memory (which is
    // mapped into the host process); the host must not hold a second copy
    // (measured: 131-148 MiB with the check, 231 MiB if the host copied it).
    let bound = 64 + 110;
    assert!(out.max_rss_mib() < bound, "host peak RSS {} MiB >= {bound} MiB", out.max_rss_mib());
    let results_size = std::fs::metadata(ws.path("results.jsonl")).expect("results").len();
    assert!(results_size < 64 << 10, "results file is {results_size} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_finds_no_environment_no_files_and_no_sockets() {
    let ws = Workspace::new();
    let plugin = hostile();
    let server = TestServer::start().await;
    let mut lines = vec![attack("snoop", "snoop", json!({"connect": server.authority()}))];
    lines.extend(oks(1));
    let canary = "canary-value-7f3e9a";
    let args = with_plugin(&plugin, &[]);
    let out = run(&ws, &lines, &args, &[("HOSTILE_CANARY", canary)], Duration::from_secs(60)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = out.output_of("snoop");
    assert_eq!(seen["env"], json!([]), "no environment: {seen}");
    assert!(seen["args"].as_array().is_none_or(|a| a.len() <= 1), "no arguments: {seen}");
    for (path, outcome) in seen["files"].as_object().expect("files") {
        assert!(outcome.as_str().expect("text").starts_with("error"), "{path}: {outcome}");
    }
    for listing in seen["dirs"].as_array().expect("dirs") {
        assert!(listing.as_str().expect("text").contains("error"), "{listing}");
    }
    for key in ["write", "tcp", "udp", "lookup"] {
        assert!(seen[key].as_str().expect("text").starts_with("error"), "{key}: {seen}");
    }
    assert!(!out.stderr.contains(canary) && !seen.to_string().contains(canary));
    assert_eq!(server.connections(), 0, "the socket never connected");
    assert!(out.max_rss_mib() < BASE_RSS_MIB, "host peak RSS {} MiB", out.max_rss_mib());
    assert!(!Path::new("/tmp/hostile-was-here").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_not_granted_is_denied_cleanly_even_when_hammered() {
    let ws = Workspace::new();
    let plugin = hostile();
    let granted = TestServer::start().await;
    let other = TestServer::start().await;
    let lines = vec![
        attack("deny", "fetch", json!({"url": other.url("/x"), "method": "POST", "body": "a".repeat(100_000)})),
        attack("catch", "fetch", json!({"url": other.url("/x"), "catch": true})),
        attack("hammer", "fetch", json!({"url": other.url("/x"), "repeat_until_trap": true})),
        attack("granted", "fetch", json!({"url": granted.url("/x")})),
    ];
    let args =
        with_plugin(&plugin, &["--allow-host", &granted.authority(), "--max-cpu-per-call", "1", "--max-attempts", "1"]);
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.code_of("deny"), "egress_denied", "{}", out.result("deny"));
    assert!(out.message_of("deny").contains("is not granted to this plugin"), "{}", out.message_of("deny"));
    // The denial is an ordinary error value the plugin can catch and go on from.
    let caught = out.output_of("catch");
    assert_eq!(caught["caught"], "caught denied", "{caught}");
    assert!(caught["message"].as_str().expect("message").contains("is not granted to this plugin"), "{caught}");
    // The plugin looping on denials is stopped; it is still reported as a denial.
    assert_eq!(out.code_of("hammer"), "egress_denied", "{}", out.result("hammer"));
    assert_eq!(out.output_of("granted")["status"], 200);
    assert_eq!(other.connections(), 0, "no request reached the server that was not granted");
    assert_eq!(granted.requests().len(), 1);
    // Counted and logged, but the log is not flooded by the loop.
    assert!(out.stderr.contains("request denied"), "{}", out.stderr);
    assert!(out.stderr.lines().filter(|l| l.contains("request denied")).count() <= 21, "{}", out.stderr);
    assert!(out.stderr.len() < 64 << 10, "{} bytes of stderr", out.stderr.len());
    assert!(out.max_rss_mib() < BASE_RSS_MIB, "host peak RSS {} MiB", out.max_rss_mib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolving_to_internal_addresses_need_an_explicit_grant() {
    let ws = Workspace::new();
    let plugin = hostile();
    let server = TestServer::start().await;
    let port = server.port;
    let lines = vec![
        // Granted by name without a port: `localhost` resolves to loopback, refused.
        attack("by-name", "fetch", json!({"url": "https://localhost/echo"})),
        // Granted by name with its port: a port alone is no decision about
        // internal addresses (34ee6db let this through unscreened).
        attack("by-name-and-port", "fetch", json!({"url": format!("http://localhost:{port}/echo")})),
    ];
    let args = with_plugin(
        &plugin,
        &["--allow-host", "localhost", "--allow-host", &format!("localhost:{port}"), "--max-attempts", "1"],
    );
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for id in ["by-name", "by-name-and-port"] {
        assert_eq!(out.code_of(id), "egress_denied", "{}", out.result(id));
        let message = out.message_of(id);
        assert!(
            message.contains("resolves only to blocked internal addresses") && message.contains("loopback"),
            "{message}"
        );
        assert!(message.contains("--allow-internal-host HOST[:PORT]"), "the hint names the internal grant: {message}");
    }
    assert!(server.requests().is_empty(), "nothing reached the loopback server");

    // Internal reach has its own spelling, for that port only.
    let lines = vec![
        attack("internal", "fetch", json!({"url": format!("http://localhost:{port}/echo")})),
        attack(
            "other-port",
            "fetch",
            json!({"url": format!("http://localhost:{}/echo", port.wrapping_add(1)), "catch": true}),
        ),
    ];
    let args = with_plugin(&plugin, &["--allow-internal-host", &format!("localhost:{port}"), "--max-attempts", "1"]);
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.output_of("internal")["status"], 200, "{}", out.result("internal"));
    assert_eq!(out.output_of("other-port")["caught"], "caught denied");
    assert_eq!(server.requests().len(), 1, "only the internal grant's request arrived");

    // The hint for an ungranted public host is the screened bare name, not HOST:443.
    let lines = vec![attack("hint", "fetch", json!({"url": "https://ungranted.example/v1", "catch": true}))];
    let out = run(&ws, &lines, &with_plugin(&plugin, &[]), &[], Duration::from_secs(60)).await;
    let message = out.output_of("hint")["message"].as_str().expect("message").to_string();
    assert!(message.ends_with("(grant it with --allow-host ungranted.example)"), "{message}");
    assert!(out.max_rss_mib() < BASE_RSS_MIB, "host peak RSS {} MiB", out.max_rss_mib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_exfiltrate_a_secret() {
    const KEY: &str = "sk-hostile-test-5b1c0d2e";
    let ws = Workspace::new();
    let plugin = hostile();
    // The provider (secret granted), a second granted host the secret is not
    // granted for, and a host not granted at all.
    let provider = TestServer::start().await;
    let logs = TestServer::start().await;
    let other = TestServer::start().await;
    let bearer = [["authorization", "Bearer {{secret:api-key}}"]];
    let lines = vec![
        attack("header-to-other", "fetch", json!({"url": other.url("/x"), "headers": bearer})),
        attack("header-to-logs", "fetch", json!({"url": logs.url("/x"), "headers": bearer})),
        attack("header-name", "fetch", json!({"url": logs.url("/x"), "headers": [["x-{{secret:api-key}}", "1"]]})),
        attack("url-to-logs", "fetch", json!({"url": logs.url("/x?k={{secret:api-key}}")})),
        attack("body-to-logs", "fetch", json!({"url": logs.url("/x"), "method": "POST", "body": "{{secret:api-key}}"})),
        attack("echo", "fetch", json!({"url": provider.url("/echo"), "headers": bearer})),
        attack(
            "redirect",
            "fetch",
            json!({"url": provider.url(&format!("/redirect?to={}", other.url("/x"))), "headers": bearer}),
        ),
        attack(
            "follow",
            "fetch",
            json!({"url": provider.url(&format!("/redirect?to={}", logs.url("/x"))), "headers": bearer, "follow": true}),
        ),
    ];
    let args = with_plugin(
        &plugin,
        &[
            "--allow-host",
            &provider.authority(),
            "--allow-host",
            &logs.authority(),
            "--secret",
            "api-key=env:HOSTILE_KEY",
            "--secret-host",
            &format!("api-key={}", provider.authority()),
            "--max-attempts",
            "1",
        ],
    );
    let out = run(&ws, &lines, &args, &[("HOSTILE_KEY", KEY)], Duration::from_secs(60)).await;
    assert_eq!(out.code, 1, "{}", out.stderr);

    assert_eq!(out.code_of("header-to-other"), "egress_denied");
    assert!(out.message_of("header-to-other").contains("not granted to this plugin"));
    for id in ["header-to-logs", "follow"] {
        assert_eq!(out.code_of(id), "egress_denied", "{}", out.result(id));
        let message = out.message_of(id);
        assert!(message.contains(&format!("secret `api-key` may not be sent to `{}`", logs.authority())), "{message}");
    }
    // A placeholder in a header name is not substituted (and is not a valid name).
    assert_eq!(out.code_of("header-name"), "client_error", "{}", out.result("header-name"));
    assert!(out.message_of("header-name").contains("caught invalid-request"), "{}", out.message_of("header-name"));
    // Placeholders in a URL or a body go out as inert text.
    for id in ["url-to-logs", "body-to-logs"] {
        assert_eq!(out.output_of(id)["status"], 200, "{}", out.result(id));
    }
    // The provider echoes the key back: the plugin sees it scrubbed.
    let echo = out.output_of("echo");
    assert_eq!(echo["status"], 200);
    assert!(echo["body"].as_str().expect("body").contains("Bearer [secret:api-key]"), "{echo}");
    assert!(echo["headers"].to_string().contains("Bearer [secret:api-key]"), "{echo}");
    // Redirects are not followed by the host: the plugin sees the 302.
    assert_eq!(out.output_of("redirect")["status"], 302);

    assert_eq!(other.connections(), 0, "the host that was not granted saw nothing");
    let logged = logs.requests();
    assert_eq!(logged.len(), 2, "only the two inert requests reached the logs host: {logged:?}");
    assert!(logged.iter().all(|r| !r.contains(KEY)), "{logged:?}");
    assert!(logged.iter().any(|r| r.contains("{{secret:api-key}}")), "the body kept the literal placeholder");
    assert!(provider.requests().iter().all(|r| r.contains(KEY)), "the provider got the key, as granted");
    let everything = format!("{}{:?}", out.stderr, out.results);
    assert!(!everything.contains(KEY), "the key leaked into results or logs");
    assert!(out.max_rss_mib() < BASE_RSS_MIB, "host peak RSS {} MiB", out.max_rss_mib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dripping_response_is_cut_by_the_attempt_deadline() {
    let ws = Workspace::new();
    let plugin = hostile();
    let server = TestServer::start().await;
    let mut lines = vec![
        // Asks for a 10-minute HTTP timeout; the host clamps it.
        attack("drip", "fetch", json!({"url": server.url("/drip"), "timeout_ms": 600_000})),
        // Keeps calling the host after the deadline: the call's wall clock
        // ends it (its requests past the call's budget are denied meanwhile).
        attack("drip-hammer", "fetch", json!({"url": server.url("/drip"), "repeat_until_trap": true})),
    ];
    lines.extend(oks(3));
    let args = with_plugin(
        &plugin,
        &[
            "--allow-host",
            &server.authority(),
            "--attempt-timeout",
            "2",
            "--max-attempts",
            "1",
            "--max-cpu-per-call",
            "30",
        ],
    );
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.code_of("drip"), "timeout", "{}", out.result("drip"));
    assert!(out.message_of("drip").contains("caught timeout"), "{}", out.message_of("drip"));
    assert_eq!(out.code_of("drip-hammer"), "egress_denied", "{}", out.result("drip-hammer"));
    assert!(out.message_of("drip-hammer").starts_with("call did not finish within"), "{}", out.result("drip-hammer"));
    assert_oks_succeeded(&out, 3);
    for id in ["drip", "drip-hammer"] {
        let latency = out.result(id)["batchllm"]["latency_ms"].as_f64().expect("latency");
        assert!((1900.0..4000.0).contains(&latency), "{id} took {latency} ms");
    }
    assert!(out.max_rss_mib() < BASE_RSS_MIB, "host peak RSS {} MiB", out.max_rss_mib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_and_stderr_reach_the_log_tagged_and_bounded() {
    let ws = Workspace::new();
    let plugin = hostile();
    let lines = vec![job("printer", "print"), job("ok-0", "ok")];
    let args = with_plugin(&plugin, &["--max-attempts", "1"]);
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 0, "a plugin printing 8 MiB does not trap:\n{}", out.stderr);
    assert!(out.result("printer")["batchllm"]["output"].as_str().expect("output").starts_with("printed"));
    let line = out.stderr.lines().find(|l| l.contains("hostile-stdout printer")).expect("stdout reached the log");
    assert!(line.contains("item=printer") && line.contains("stdout") && line.contains("plugin="), "{line}");
    assert!(out.stderr.contains("hostile-stderr printer"), "stderr reached the log too");
    assert!(out.stderr.contains("over the limit"), "the cut is announced");
    assert!(out.stderr.len() < 1 << 20, "{} bytes of host stderr for 8 MiB printed", out.stderr.len());
    assert!(out.max_rss_mib() < BASE_RSS_MIB, "host peak RSS {} MiB", out.max_rss_mib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_importing_something_not_offered_is_refused_at_load() {
    let ws = Workspace::new();
    let rogue = plugin("batchllm_rogue_import.wasm");
    let args = ["--plugin", rogue.to_str().expect("utf-8")];
    let out = run(&ws, &oks(1), &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("does not fit the `batchllm:strategy/strategy` world"), "{}", out.stderr);
    assert!(out.stderr.contains("hostile:rogue/raw-socket"), "names the missing import:\n{}", out.stderr);
    assert!(out.results.is_empty(), "refused before any call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_digest_refuses_a_different_plugin() {
    let ws = Workspace::new();
    let plugin = hostile();
    let mut bytes = Vec::new();
    std::fs::File::open(&plugin).expect("open").read_to_end(&mut bytes).expect("read");
    let digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let wrong = "0".repeat(64);
    let out =
        run(&ws, &oks(1), &with_plugin(&plugin, &["--plugin-sha256", &wrong]), &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("has SHA-256 {digest}, but {wrong} was required")), "{}", out.stderr);
    assert!(out.results.is_empty());
    let out =
        run(&ws, &oks(1), &with_plugin(&plugin, &["--plugin-sha256", &digest]), &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    // A tampered copy with the old digest pinned is refused as well.
    let tampered = ws.path("tampered.wasm");
    let mut file = std::fs::File::create(&tampered).expect("create");
    file.write_all(&bytes).expect("write");
    file.write_all(&[0]).expect("append");
    drop(file);
    let args = ["--plugin", tampered.to_str().expect("utf-8"), "--plugin-sha256", &digest];
    let out = run(&ws, &oks(1), &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.results.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasi_http_obeys_the_same_policy_and_a_denied_body_is_drained_not_buffered() {
    let ws = Workspace::new();
    let plugin = plugin("batchllm_hostile_wasi_http.wasm").to_str().expect("utf-8").to_string();
    let granted = TestServer::start().await;
    let other = TestServer::start().await;
    let post = |id: &str, server: &TestServer, bytes: u64| {
        attack(id, "post", json!({"authority": server.authority(), "path": "/x", "body_bytes": bytes}))
    };
    let lines = vec![
        post("granted", &granted, 100_000),
        post("denied", &other, 1 << 20),
        // More than the 32 MiB request limit, streamed after the request
        // was handed over: drained up to the limit, then denied.
        post("denied-huge", &other, 40 << 20),
        post("granted-huge", &granted, 40 << 20),
    ];
    let args =
        with_plugin(&plugin, &["--allow-host", &granted.authority(), "--max-attempts", "1", "--concurrency", "2"]);
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.output_of("granted")["status"], 200, "{}", out.result("granted"));
    for id in ["denied", "denied-huge"] {
        assert_eq!(out.code_of(id), "egress_denied", "{}", out.result(id));
        assert!(out.message_of(id).contains("is not granted to this plugin"), "{}", out.message_of(id));
    }
    assert_eq!(out.code_of("granted-huge"), "client_error", "{}", out.result("granted-huge"));
    assert!(out.message_of("granted-huge").starts_with("caught"), "{}", out.message_of("granted-huge"));
    assert_eq!(other.connections(), 0, "nothing reached the server that was not granted");
    let got = granted.requests();
    assert_eq!(got.len(), 1, "the oversized body was never sent");
    assert!(got[0].ends_with(&"b".repeat(100_000)), "the granted body arrived whole");
    // The oversized granted body is buffered up to the 32 MiB limit at most.
    let bound = BASE_RSS_MIB + 2 * 32;
    assert!(out.max_rss_mib() < bound, "host peak RSS {} MiB >= {bound} MiB", out.max_rss_mib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_code_is_cached_privately_and_never_loaded_from_a_shared_directory() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new();
    let plugin = hostile();
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    let entries = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir).map(|d| d.map(|e| e.expect("entry").path()).collect()).unwrap_or_default()
    };

    // A fresh cache is created private, and its entry too.
    let private = ws.path("cache/private");
    let out = run_with_cache(&ws, &oks(1), &with_plugin(&plugin, &[]), &[], Duration::from_secs(60), &private).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(mode(&private), 0o700);
    let cached = entries(&private);
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(mode(&cached[0]), 0o600);
    assert!(cached[0].file_name().expect("name").to_string_lossy().ends_with(".cwasm"));

    // A directory others can write to is not used at all: planted code is
    // never loaded, nothing is written, the plugin is compiled in memory.
    let shared = ws.path("cache/shared");
    std::fs::create_dir_all(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let planted = shared.join(cached[0].file_name().expect("name"));
    std::fs::write(&planted, b"not machine code").expect("plant");
    let out = run_with_cache(&ws, &oks(1), &with_plugin(&plugin, &[]), &[], Duration::from_secs(60), &shared).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("not using the compile cache") && out.stderr.contains("writable by group or others"));
    assert_eq!(std::fs::read(&planted).expect("read"), b"not machine code", "left alone");
    assert_eq!(entries(&shared).len(), 1, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_response_bodies_are_bounded() {
    let ws = Workspace::new();
    let plugin = hostile();
    let server = TestServer::start().await;
    let lines = vec![
        // Over the 32 MiB request limit: refused by the host, not sent.
        attack("request-40m", "big-request", json!({"url": server.url("/x"), "bytes": 40 << 20, "catch": true})),
        // Over the 64 MiB hostcall limit: refused before the host copies it.
        attack("request-80m", "big-request", json!({"url": server.url("/x"), "bytes": 80 << 20})),
        // A 100 MiB response: read up to the 32 MiB limit, then refused.
        attack("response-100m", "fetch", json!({"url": server.url("/huge"), "catch": true})),
    ];
    let args = with_plugin(
        &plugin,
        &["--allow-host", &server.authority(), "--max-memory-mb", "192", "--max-attempts", "1", "--concurrency", "1"],
    );
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let caught = out.output_of("request-40m");
    assert_eq!(caught["caught"], "caught too-large", "{caught}");
    assert_eq!(out.code_of("request-80m"), "plugin_output_too_large", "{}", out.result("request-80m"));
    assert!(out.message_of("request-80m").contains("host-call argument"), "{}", out.message_of("request-80m"));
    let caught = out.output_of("response-100m");
    assert_eq!(caught["caught"], "caught too-large", "{caught}");
    assert!(caught["message"].as_str().expect("message").contains("response body exceeds"), "{caught}");
    assert!(server.requests().iter().all(|r| !r.starts_with("POST")), "no oversized request was sent");
    // The plugin's own buffers (up to 80 MiB) live in its linear memory; the
    // host buffers at most 32 MiB of a response.
    let bound = BASE_RSS_MIB + 80 + 32;
    assert!(out.max_rss_mib() < bound, "host peak RSS {} MiB >= {bound} MiB", out.max_rss_mib());
}

// ---------------------------------------------------------------------------
// Round two (issue 13): each attack below got through 34ee6db.

const KEY: &str = "sk-hostile-round-two-7c4e19a0";

fn wasi_http_plugin() -> String {
    let plugin = plugin("batchllm_hostile_wasi_http.wasm").to_str().expect("utf-8").to_string();
    static WARM: OnceLock<()> = OnceLock::new();
    WARM.get_or_init(|| warm(&plugin));
    plugin
}

/// Peak RSS a run may reach: twice what the same run took with a
/// well-behaved plugin, plus what the configured per-instance limits let
/// each instance hold (`per_instance_mib`, times `instances`).
fn rss_bound(baseline: &Run, instances: i64, per_instance_mib: i64) -> i64 {
    2 * baseline.max_rss_mib() + instances * per_instance_mib
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_does_not_come_back_through_a_content_encoding() {
    let ws = Workspace::new();
    let plugin = hostile();
    let server = TestServer::start().await;
    let headers = json!([["authorization", "Bearer {{secret:api-key}}"], ["accept-encoding", "gzip"]]);
    let lines = vec![
        // The server compresses because the plugin asked for it.
        attack("asked", "fetch", json!({"url": server.url("/gzip-echo"), "headers": headers, "gunzip": true})),
        // The server compresses whatever it was asked.
        attack("forced", "fetch", json!({"url": server.url("/gzip-always"), "headers": headers, "gunzip": true})),
    ];
    let args = with_plugin(
        &plugin,
        &[
            "--allow-host",
            &server.authority(),
            "--secret",
            "api-key=env:HOSTILE_KEY",
            "--max-attempts",
            "1",
            "--events",
            ws.path("events.jsonl").to_str().expect("utf-8"),
        ],
    );
    let out = run(&ws, &lines, &args, &[("HOSTILE_KEY", KEY)], Duration::from_secs(60)).await;
    let results = std::fs::read_to_string(ws.path("results.jsonl")).expect("results");
    assert!(!results.contains(KEY) && !out.stderr.contains(KEY), "the key came back:\n{results}");
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The host asked for identity, so the echo came back plain and scrubbed.
    let asked = out.output_of("asked");
    assert_eq!(asked["gunzipped"], false, "{asked}");
    let body = asked["body"].as_str().expect("body");
    assert!(body.contains("Bearer [secret:api-key]") && body.contains("accept-encoding: identity"), "{body}");
    // Compressed anyway: withheld.
    let forced = out.output_of("forced");
    assert!(forced["body"].as_str().expect("body").starts_with("[response withheld"), "{forced}");
    let sent = server.requests();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|r| r.contains(KEY) && r.contains("accept-encoding: identity\r\n")), "{sent:?}");
    assert!(sent.iter().all(|r| !r.contains("accept-encoding: gzip")), "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_holding_prompts_and_outputs_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new();
    let plugin = hostile();
    let events = ws.path("events.jsonl");
    let args = with_plugin(&plugin, &["--events", events.to_str().expect("utf-8")]);
    // SAFETY: umask only sets this process's file-creation mask (inherited
    // by the child); 022 is the usual default, made explicit.
    unsafe { libc::umask(0o022) };
    let out = run(&ws, &oks(2), &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for file in [ws.path("results.jsonl"), events] {
        let mode = std::fs::metadata(&file).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_state_is_bounded() {
    let ws = Workspace::new();
    let plugin = hostile();
    let common = ["--max-memory-mb", "64", "--max-attempts", "1", "--concurrency", "4"];
    let args = with_plugin(&plugin, &common);
    // The baseline uses the run state too, within every limit.
    let mut lines = oks(8);
    lines.push(attack("modest", "run-state", json!({"value_bytes": 1000, "keys": 10, "prefix": "ok"})));
    let baseline = run(&ws, &lines, &args, &[], Duration::from_secs(60)).await;
    assert_eq!(baseline.code, 0, "{}", baseline.stderr);
    assert_eq!(baseline.result("modest")["batchllm"]["output"], "stored 10 values of 1000 bytes");
    let mib = 1u64 << 20;
    let mut lines: Vec<String> = (0..4)
        .map(|i| {
            // 64 values of 16 MiB each: 1 GiB per item, 4 GiB in all.
            attack(
                &format!("huge-{i}"),
                "run-state",
                json!({"value_bytes": 16 * mib, "keys": 64, "prefix": format!("h{i}")}),
            )
        })
        .collect();
    // Under the value limit, over the total: 64 x 1 MiB.
    lines.push(attack("many-values", "run-state", json!({"value_bytes": mib - 64, "keys": 64, "prefix": "m"})));
    lines.extend(oks(4));
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(120)).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for i in 0..4 {
        let id = format!("huge-{i}");
        assert_eq!(out.code_of(&id), "plugin_output_too_large", "{}", out.result(&id));
        assert!(out.message_of(&id).contains("more than 1048576 bytes per value"), "{}", out.message_of(&id));
    }
    assert!(out.message_of("many-values").contains("run state over its limit"), "{}", out.result("many-values"));
    assert_oks_succeeded(&out, 4);
    let attack_rss = out.max_rss_mib();
    // Tiny values, too many keys (a run of its own: the state is run-wide).
    let lines = vec![attack("many-keys", "run-state", json!({"value_bytes": 1, "keys": 100_000, "prefix": "k"}))];
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(60)).await;
    assert!(out.message_of("many-keys").contains("1025 keys, more than 1024"), "{}", out.result("many-keys"));
    // Each instance may hold its 64 MiB of linear memory and pass the host
    // up to 64 MiB in one call.
    let bound = rss_bound(&baseline, 4, 64 + 64);
    eprintln!("run state: baseline {} MiB, attack {attack_rss} MiB, bound {bound} MiB", baseline.max_rss_mib());
    assert!(attack_rss < bound, "host peak RSS {attack_rss} MiB >= {bound} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_state_is_bounded() {
    let ws = Workspace::new();
    let plugin = hostile();
    let common = ["--max-memory-mb", "128", "--max-attempts", "12", "--concurrency", "4"];
    let args = with_plugin(&plugin, &common);
    let baseline = run(&ws, &oks(8), &args, &[], Duration::from_secs(60)).await;
    assert_eq!(baseline.code, 0, "{}", baseline.stderr);
    let mib = 1u64 << 20;
    // Two 16 MiB values per on-error call, eleven calls, four items at once.
    let mut lines: Vec<String> = (0..4)
        .map(|i| attack(&format!("grow-{i}"), "retry-state", json!({"value_bytes": 16 * mib, "keys_per_call": 2})))
        .collect();
    // 100 KiB per call: fits ten times, then the 1 MiB total is reached.
    lines.push(attack("steady", "retry-state", json!({"value_bytes": 100 << 10, "keys_per_call": 1})));
    lines.extend(oks(4));
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(180)).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for i in 0..4 {
        let id = format!("grow-{i}");
        assert_eq!(out.code_of(&id), "invalid_response", "{}", out.result(&id));
        assert_eq!(out.result(&id)["batchllm"]["attempts"], 12);
        // Every change was refused whole: the last attempt saw no state.
        assert_eq!(out.message_of(&id), "retry state given: 0 keys, 0 bytes");
    }
    let steady = out.message_of("steady");
    let keys: usize = steady.split(' ').nth(3).and_then(|n| n.parse().ok()).expect("key count");
    assert_eq!(keys, 10, "{steady}");
    assert!(out.stderr.contains("retry state over its limit"), "the refusal is logged:\n{}", out.stderr);
    assert_oks_succeeded(&out, 4);
    let bound = rss_bound(&baseline, 4, 128 + 64);
    eprintln!(
        "retry state: baseline {} MiB, attack {} MiB, bound {bound} MiB",
        baseline.max_rss_mib(),
        out.max_rss_mib()
    );
    assert!(out.max_rss_mib() < bound, "host peak RSS {} MiB >= {bound} MiB", out.max_rss_mib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_cannot_hold_thousands_of_requests_or_their_bodies() {
    let ws = Workspace::new();
    let plugin = wasi_http_plugin();
    let server = TestServer::start().await;
    let flood = |id: &str, path: &str, count: u64| {
        attack(id, "flood", json!({"authority": server.authority(), "path": path, "count": count}))
    };
    let common = ["--allow-host", &server.authority(), "--max-memory-mb", "64", "--max-attempts", "1", "-j", "1"];
    let args = with_plugin(&plugin, &common);
    let eight_mib = format!("/big?bytes={}", 8 << 20);
    let baseline = run(&ws, &[flood("one", &eight_mib, 1)], &args, &[], Duration::from_secs(60)).await;
    assert_eq!(baseline.code, 0, "{}", baseline.stderr);
    assert_eq!(baseline.output_of("one")["ok"], 1, "{}", baseline.result("one"));
    let before = server.requests().len();

    let lines = vec![flood("many", "/x", 2000), flood("big", &eight_mib, 300)];
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(120)).await;
    let reached = server.requests().len() - before;
    assert!(reached <= 2 * 16, "{reached} requests reached the server from two calls");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let many = out.output_of("many");
    assert_eq!(many["ok"], 16, "{many}");
    assert_eq!(many["errors"]["ErrorCode::HttpRequestDenied"], 2000 - 16, "{many}");
    // At most 64 MiB of responses are held for the instance: 7 of 8 MiB
    // (with their headers), the rest refused as too large.
    let big = out.output_of("big");
    let held = big["ok"].as_u64().expect("ok");
    assert!((1..=8).contains(&held), "{big}");
    assert_eq!(big["errors"]["ErrorCode::HttpRequestDenied"], 300 - 16, "{big}");
    // Linear memory (64 MiB), responses held (64 MiB) and one call's data (64 MiB).
    let bound = rss_bound(&baseline, 1, 64 + 64 + 64);
    eprintln!(
        "wasi:http flood: baseline {} MiB, attack {} MiB, bound {bound} MiB",
        baseline.max_rss_mib(),
        out.max_rss_mib()
    );
    assert!(out.max_rss_mib() < bound, "host peak RSS {} MiB >= {bound} MiB", out.max_rss_mib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_send_has_the_same_per_call_budget() {
    let ws = Workspace::new();
    let plugin = hostile();
    let server = TestServer::start().await;
    let lines = [
        attack("many", "fetch", json!({"url": server.url("/x"), "times": 2000, "catch": true})),
        attack("raised", "fetch", json!({"url": server.url("/x"), "times": 20})),
    ];
    let args = with_plugin(&plugin, &["--allow-host", &server.authority(), "--max-attempts", "1", "-j", "1"]);
    let out = run(&ws, &lines[..1], &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.output_of("many")["caught"], "caught denied", "{}", out.result("many"));
    assert!(out.output_of("many")["message"].as_str().expect("message").contains("already made 16 requests"));
    assert_eq!(server.requests().len(), 16, "the budget reached the server, no more");
    let mut raised = args.clone();
    raised.extend(["--max-requests-per-call".to_string(), "20".to_string()]);
    let out = run(&ws, &lines[1..], &raised, &[], Duration::from_secs(60)).await;
    assert_eq!(out.output_of("raised")["status"], 200, "{}", out.result("raised"));
    assert_eq!(server.requests().len(), 16 + 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasi_http_request_does_not_outlive_its_call() {
    let ws = Workspace::new();
    let plugin = wasi_http_plugin();
    let server = TestServer::start().await;
    let lines = vec![
        // Starts a request answered 429 after 300 ms, and returns at once.
        attack("leak", "leak", json!({"authority": server.authority(), "path": "/slow?ms=300&status=429", "count": 1})),
        // The next item on the same instance: its own request fails without
        // an answer after 1 s. The leaked 429 must not become its answer.
        attack("victim", "post", json!({"authority": server.authority(), "path": "/hangup?ms=1000", "body_bytes": 0})),
    ];
    let args = with_plugin(
        &plugin,
        &["--allow-host", &server.authority(), "--max-attempts", "1", "--max-rate-limit-retries", "0", "-j", "1"],
    );
    let out = run(&ws, &lines, &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code_of("leak"), "succeeded", "{}", out.result("leak"));
    assert_eq!(out.code_of("victim"), "client_error", "{}", out.result("victim"));
    assert_eq!(out.result("victim")["batchllm"]["http_status"], Value::Null, "{}", out.result("victim"));
    assert_eq!(out.result("victim")["batchllm"]["rate_limit_retries"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_name_their_scheme_and_secrets_stay_off_plain_http() {
    let ws = Workspace::new();
    let plugin = hostile();
    let bearer = json!([["authorization", "Bearer {{secret:api-key}}"]]);
    let lines = vec![
        // A bare grant is https on 443, not http on 80.
        attack("plain-80", "fetch", json!({"url": "http://127.0.0.1/x", "catch": true})),
        // Granted with its port, restricted for the secret too: still no
        // key in clear text to an address off this machine.
        attack("clear-text", "fetch", json!({"url": "http://192.0.2.1:8080/x", "headers": bearer, "catch": true})),
    ];
    let args = with_plugin(
        &plugin,
        &[
            "--allow-host",
            "127.0.0.1",
            "--allow-host",
            "192.0.2.1:8080",
            "--secret",
            "api-key=env:HOSTILE_KEY",
            "--secret-host",
            "api-key=192.0.2.1:8080",
            "--attempt-timeout",
            "3",
            "--max-attempts",
            "1",
        ],
    );
    let out = run(&ws, &lines, &args, &[("HOSTILE_KEY", KEY)], Duration::from_secs(60)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plain = out.output_of("plain-80");
    assert_eq!(plain["caught"], "caught denied", "{plain}");
    assert!(plain["message"].as_str().expect("message").contains("--allow-host http://127.0.0.1"), "{plain}");
    let clear = out.output_of("clear-text");
    assert_eq!(clear["caught"], "caught denied", "{clear}");
    assert!(clear["message"].as_str().expect("message").contains("would travel in clear text"), "{clear}");

    // The built-in plugins' default grants are https only.
    let jobs = vec![job("a", "hi")];
    // (No key: the request itself is what must be refused.)
    let args = [
        "--plugin",
        "openai",
        "--plugin-config",
        "base_url=http://api.openai.com/v1",
        "--plugin-config",
        "api_key_secret=null",
        "--max-attempts",
        "1",
    ];
    let out = run(&ws, &jobs, &args, &[], Duration::from_secs(60)).await;
    assert_eq!(out.code_of("a"), "egress_denied", "{}", out.result("a"));
    assert!(out.message_of("a").contains("not granted to this plugin for http"), "{}", out.message_of("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_a_wildcard_grant_only_when_named_for_it() {
    let ws = Workspace::new();
    let plugin = hostile();
    let bearer = json!([["authorization", "Bearer {{secret:api-key}}"]]);
    let lines = vec![attack(
        "bucket",
        "fetch",
        json!({"url": "https://attacker.wild.test/x", "headers": bearer, "catch": true}),
    )];
    let base = ["--allow-host", "*.wild.test", "--secret", "api-key=env:HOSTILE_KEY", "--max-attempts", "1"];
    let out = run(&ws, &lines, &with_plugin(&plugin, &base), &[("HOSTILE_KEY", KEY)], Duration::from_secs(60)).await;
    let caught = out.output_of("bucket");
    assert_eq!(caught["caught"], "caught denied", "{caught}");
    assert!(caught["message"].as_str().expect("message").contains("granted only by the wildcard `*.wild.test`"));
    // Named for it: the secret is substituted (the name then fails to resolve).
    let mut named = base.to_vec();
    named.extend(["--secret-host", "api-key=*.wild.test"]);
    let out = run(&ws, &lines, &with_plugin(&plugin, &named), &[("HOSTILE_KEY", KEY)], Duration::from_secs(60)).await;
    assert_ne!(out.output_of("bucket")["caught"], "caught denied", "{}", out.result("bucket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_named_like_a_built_in_does_not_replace_it() {
    let ws = Workspace::new();
    let impostor = ws.path("openai");
    std::fs::copy(hostile(), &impostor).expect("copy");
    let jobs = ws.jobs(&[job("a", "ok")]);
    let run_in_ws = |plugin: &str| {
        let out = Command::new(host_bin())
            .current_dir(ws.dir.path())
            .args(["jobs.jsonl", "--overwrite", "--mock-provider", "--plugin", plugin, "--cache-dir"])
            .arg(cache_dir())
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("runs");
        let results = std::fs::read_to_string(ws.path("results.jsonl")).unwrap_or_default();
        (String::from_utf8_lossy(&out.stderr).to_string(), results)
    };
    assert!(jobs.exists());
    let (stderr, results) = run_in_ws("openai");
    assert!(!results.contains("\"ok a\""), "the file in the working directory ran:\n{results}");
    let line =
        stderr.lines().find(|l| l.contains("plugin loaded")).unwrap_or_else(|| panic!("no load line:\n{stderr}"));
    assert!(line.contains("plugin=openai") && line.contains("builtin=true") && line.contains("sha256="), "{line}");
    // With a path, the file is what runs, and the log says so.
    let (stderr, results) = run_in_ws("./openai");
    assert!(results.contains("\"ok a\""), "{results}\n{stderr}");
    let digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(std::fs::read(&impostor).expect("read")))
    };
    assert!(stderr.contains("builtin=false") && stderr.contains(&digest), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_cannot_forge_log_lines() {
    let ws = Workspace::new();
    let plugin = hostile();
    let out = run(&ws, &[job("forger", "log-forge")], &with_plugin(&plugin, &[]), &[], Duration::from_secs(60)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for line in out.stderr.lines() {
        assert!(!line.starts_with("2099-01-01"), "a forged line reached the log:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains('\r') && !out.stderr.contains('\u{1b}'), "raw control characters: {:?}", out.stderr);
    assert!(!out.stderr.contains('\u{2028}') && !out.stderr.contains('\u{202e}'), "{:?}", out.stderr);
    for tag in ["hostile-forge forger", "hostile-forge-stdout forger", "hostile-forge-stderr forger"] {
        let line =
            out.stderr.lines().find(|l| l.contains(tag)).unwrap_or_else(|| panic!("{tag} missing:\n{}", out.stderr));
        assert!(line.contains("FORGED-LINE"), "the forged text stays on the plugin's own, tagged line: {line}");
        assert!(line.contains("item=forger"), "{line}");
    }
}
