//! The input read once: jobs from stdin, a pipe or a gzip file; an empty
//! input; params and context as written; a resume that follows edits; the
//! dry run's prices. The real binary each time.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::support::*;

/// Runs the binary with `args` (after the workspace's output and cache
/// flags) and `stdin` as its standard input.
async fn run_with_stdin(ws: &Workspace, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Outcome {
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .arg("--output")
        .arg(ws.path("results.jsonl"))
        .arg("--cache-dir")
        .arg(cache_dir())
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary runs");
    let mut pipe = child.stdin.take().expect("stdin");
    // Written in pieces, as a slow producer upstream would.
    for chunk in stdin.chunks(4096) {
        pipe.write_all(chunk).await.expect("write stdin");
    }
    drop(pipe);
    let out = child.wait_with_output().await.expect("exits");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        results: ws.results(),
    }
}

fn lines(jobs: &[String]) -> Vec<u8> {
    (jobs.join("\n") + "\n").into_bytes()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

fn gunzip_lines(path: &Path) -> Vec<Value> {
    use std::io::Read as _;
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_string(&mut text)
        .expect("gunzip");
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_from_stdin_or_a_pipe_all_run_and_a_bad_last_line_still_sends_nothing() {
    let server = mock(|_| {}).await;
    let args = openai_args(&server);
    let env = [("E2E_API_KEY", API_KEY)];
    let jobs: Vec<String> = (0..200).map(|i| job(&format!("j{i}"), &format!("question {i}"))).collect();
    for source in ["-", "/dev/stdin"] {
        let ws = Workspace::new();
        let out = run_with_stdin(&ws, &[&[source, "--quiet"][..], &strs(&args)].concat(), &env, &lines(&jobs)).await;
        assert_eq!(out.code, 0, "{source}: {}", out.stderr);
        assert_eq!(out.results.len(), 200, "{source}");
        assert!(!ws.path("results.jsonl.spool").exists(), "the spool is removed at the end");
    }
    assert_eq!(chat_requests(&server).len(), 400);

    // Gzip on stdin is recognised by its magic bytes.
    let ws = Workspace::new();
    let out = run_with_stdin(&ws, &[&["-", "--quiet"][..], &strs(&args)].concat(), &env, &gzip(&lines(&jobs))).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.results.len(), 200);

    // The whole stream is validated before anything is sent.
    server.reset();
    let ws = Workspace::new();
    let mut bad = jobs.clone();
    bad.push(r#"{"id": "last", "promt": "typo"}"#.into());
    let out = run_with_stdin(&ws, &[&["-"][..], &strs(&args)].concat(), &env, &lines(&bad)).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("<stdin>:201: unknown field `promt`"), "{}", out.stderr);
    assert!(server.requests().is_empty(), "nothing was sent");
    assert!(out.results.is_empty());
    assert!(!ws.path("results.jsonl.spool").exists(), "no spool is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_stdin_is_still_open_ends_the_run_at_once() {
    // The run, and the dry run (which reads the input the same way).
    for dry in [false, true] {
        let ws = Workspace::new();
        let tmp = ws.path("tmp");
        std::fs::create_dir(&tmp).expect("tmp");
        let mut child = tokio::process::Command::new(BIN)
            .args(["-", "--plugin", "mock", "--output"])
            .arg(ws.path("results.jsonl"))
            .arg("--cache-dir")
            .arg(cache_dir())
            .args(if dry { &["--dry-run"][..] } else { &[][..] })
            .env_remove("RUST_LOG")
            // Where the dry run keeps its spool.
            .env("TMPDIR", &tmp)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary runs");
        // A producer that wrote one line and keeps the pipe open.
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all((job("a", "x") + "\n").as_bytes()).await.expect("write");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let pid = i32::try_from(child.id().expect("running")).expect("pid");
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .expect("exits without waiting for the pipe to close")
            .expect("exit status");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(143), "dry run: {dry}: {stderr}");
        assert!(stderr.contains("stopped while reading <stdin>; nothing was sent"), "dry run: {dry}: {stderr}");
        assert!(!ws.path("results.jsonl.spool").exists(), "no spool is left behind");
        let left: Vec<_> = std::fs::read_dir(&tmp).expect("tmp").collect();
        assert!(left.is_empty(), "the dry run's spool is removed: {left:?}");
        assert!(!ws.path("results.jsonl").exists() || !dry, "a dry run writes no results");
        drop(pipe);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_input_exits_0_with_an_empty_results_file() {
    for text in ["", "\n\n  \n"] {
        let ws = Workspace::new();
        let jobs = ws.path("jobs.jsonl");
        std::fs::write(&jobs, text).expect("write");
        let out = ws.run(&jobs, &["--plugin", "openai"], &[("OPENAI_API_KEY", "sk-unused")]).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stderr.contains("has no jobs: nothing to do"), "{}", out.stderr);
        assert_eq!(std::fs::read(ws.path("results.jsonl")).expect("the results file exists"), b"");
    }
    let ws = Workspace::new();
    let out = run_with_stdin(&ws, &["-", "--plugin", "mock"], &[], b"").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("<stdin> has no jobs"), "{}", out.stderr);
    assert!(ws.path("results.jsonl").exists());
    // An empty input does not wipe the results of another run: its records
    // are not in the input, as for any other input.
    std::fs::write(ws.path("jobs.jsonl"), job("a", "x") + "\n").expect("write");
    assert_eq!(ws.resume(&ws.path("jobs.jsonl"), &["--plugin", "mock"], &[]).await.code, 0);
    let out = run_with_stdin(&ws, &["-", "--plugin", "mock"], &[], b"").await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("not in the input"), "{}", out.stderr);
    assert_eq!(ws.results().len(), 1, "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_jobs_and_a_gzip_results_file_survive_kill_9_and_resume() {
    // 40-60 ms per request: a run of 200 items at concurrency 8 takes over
    // a second, so every kill below lands mid-run even on an idle machine.
    let server = mock(|c| {
        c.latency_ms = 40;
        c.jitter_ms = 20;
    })
    .await;
    let ws = Workspace::new();
    let n = 200;
    let jobs: Vec<String> = (0..n).map(|i| job(&format!("j{i}"), &format!("question {i}"))).collect();
    let input = ws.path("jobs.jsonl.gz");
    std::fs::write(&input, gzip(&lines(&jobs))).expect("write");
    let results = ws.path("results.jsonl.gz");
    let args = openai_args(&server);
    let env = [("E2E_API_KEY", API_KEY)];
    let run = |extra: &'static [&'static str]| {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg(&input)
            .arg("--output")
            .arg(&results)
            .arg("--cache-dir")
            .arg(cache_dir())
            .args(strs(&args))
            .args(["--concurrency", "8", "--quiet"])
            .args(extra)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    };
    let mut kills = 0;
    let mut finished = Vec::new();
    for delay_ms in [300u64, 500, 250] {
        let mut child = run(&[]).spawn().expect("spawn");
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        match child.try_wait().expect("status") {
            None => {
                child.start_kill().expect("SIGKILL");
                kills += 1;
            }
            Some(status) => finished.push((delay_ms, status)),
        }
        let _ = child.wait().await;
    }
    assert!(kills >= 2, "the test must kill runs mid-way; runs that ended before their kill: {finished:?}");
    let out = run(&["--retry-failed"]).output().await.expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let records = gunzip_lines(&results);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &records {
        assert_eq!(r["batchllm"]["status"], "succeeded");
        *seen.entry(r["custom_id"].as_str().expect("id").to_string()).or_default() += 1;
    }
    assert_eq!(seen.len(), n, "every job has a record");
    assert!(seen.values().all(|&c| c == 1), "none twice");
    let bytes = std::fs::read(&results).expect("read");
    assert_eq!(bytes[..2], [0x1f, 0x8b], "still gzip");
    // Plain `gzip -t` agrees that the repaired, appended file is valid.
    let gzip_t = std::process::Command::new("gzip").arg("-t").arg(&results).status().expect("gzip runs");
    assert!(gzip_t.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_and_context_reach_the_plugin_and_the_results_as_written() {
    let plugin = crate::fixtures::test_plugin("batchllm_hostile.wasm");
    let ws = Workspace::new();
    let params = r#"{"z": 1.10, "a": 123456789012345678901234567890, "m": {"y": 1, "x": 2}}"#;
    let context = r#"{"row_id": 123456789012345678901234567890, "b": [1.50, 2e3], "a": null}"#;
    let line = format!(r#"{{"id": "e", "prompt": "echo", "params": {params}, "context": {context}}}"#);
    let batch = format!(
        r#"{{"custom_id": "f", "method": "POST", "url": "/v1/chat/completions", "body": {params}, "metadata": {context}}}"#
    );
    let jobs = ws.jobs(&[line, batch]);
    let out = ws.run(&jobs, &["--plugin", plugin.to_str().expect("utf-8")], &[]).await;
    assert_eq!(out.code, 1, "the batch line has no `echo` prompt and fails, the simple one succeeds:\n{}", out.stderr);
    let echoed = out.result("e")["batchllm"]["output"].as_str().expect("output").to_string();
    assert_eq!(echoed, format!("{params}\n{context}"), "the plugin got the caller's text");
    // In the results file, byte for byte (a JSON parse would lose it).
    let text = std::fs::read_to_string(ws.path("results.jsonl")).expect("read");
    assert_eq!(text.matches(&format!("\"context\":{context}")).count(), 2, "{text}");
}

/// Prices per million tokens of the shipped table, for the dry run below.
fn price_of(model: &str) -> (f64, f64) {
    let table: toml::Table = toml::from_str(include_str!("../../host/src/prices.toml")).expect("prices");
    let row = table["models"][model].as_table().unwrap_or_else(|| panic!("no price for {model}: {table:?}"));
    (row["input"].as_float().expect("input"), row["output"].as_float().expect("output"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_prices_with_the_plugins_default_model() {
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("a", "12345678"), job("b", "12345678")]);
    let summary = ws.path("dry.json");
    let out = ws
        .run(
            &jobs,
            &["--plugin", "openai", "--dry-run", "--summary-json", summary.to_str().expect("utf-8")],
            &[("OPENAI_API_KEY", "sk-unused")],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("without a price"), "{}", out.stderr);
    let report: Value = serde_json::from_slice(&std::fs::read(&summary).expect("summary")).expect("json");
    assert_eq!(report["unpriced_jobs"], 0);
    let (input, output) = price_of("gpt-4o-mini");
    // Each job: 8 + 2 ("{}") characters = 3 tokens in, 1024 out by default.
    let expected = 2.0 * (3.0 * input + 1024.0 * output) / 1e6;
    let cost = report["estimated_max_cost_usd"].as_f64().expect("cost");
    assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}");
    // The dry run reads stdin too.
    let out = run_with_stdin(&ws, &["-", "--plugin", "mock", "--dry-run"], &[], &lines(&[job("a", "x")])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("dry run: 1 jobs valid"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_follows_edits_to_the_input() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let args = openai_args(&server);
    let env = [("E2E_API_KEY", API_KEY)];
    let original: Vec<String> = (0..6).map(|i| job(&format!("j{i}"), &format!("question {i}"))).collect();
    let jobs = ws.jobs(&original);
    assert_eq!(ws.resume(&jobs, &strs(&args), &env).await.code, 0);
    assert_eq!(chat_requests(&server).len(), 6);

    // Edit j2, delete j4, insert a new job first.
    let mut edited = vec![job("new", "a new question")];
    edited.extend(original.iter().cloned());
    edited[3] = job("j2", "question 2, reworded");
    edited.remove(5);
    let jobs = ws.jobs(&edited);
    let out = ws.resume(&jobs, &strs(&args), &env).await;
    assert_eq!(out.code, 2, "a record whose id left the input is refused:\n{}", out.stderr);
    assert!(out.stderr.contains("records for 1 ids that are not in the input (e.g. `j4`)"), "{}", out.stderr);
    assert_eq!(chat_requests(&server).len(), 6, "nothing sent");
    let out = ws.resume(&jobs, &[&strs(&args)[..], &["--strict-resume", "--prune"]].concat(), &env).await;
    assert_eq!(out.code, 2, "strict refuses the changed line:\n{}", out.stderr);
    assert!(out.stderr.contains("the input line of `j2` changed"), "{}", out.stderr);

    let out = ws.resume(&jobs, &[&strs(&args)[..], &["--prune"]].concat(), &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sent: Vec<String> = chat_requests(&server).into_iter().skip(6).filter_map(|r| r.prompt).collect();
    let mut sent_sorted = sent.clone();
    sent_sorted.sort();
    assert_eq!(sent_sorted, ["a new question", "question 2, reworded"], "exactly the new and the changed lines");
    assert!(out.stderr.contains("resumed: 4 items already had a record"), "{}", out.stderr);
    assert!(out.stderr.contains("1 items ran again because their input line changed"), "{}", out.stderr);
    assert!(out.stderr.contains("1 records of ids no longer in the input were dropped"), "{}", out.stderr);
    // One record per input line, each carrying its line in the edited file.
    assert_eq!(out.results.len(), edited.len());
    for (i, line) in edited.iter().enumerate() {
        let id = serde_json::from_str::<Value>(line).expect("json")["id"].as_str().expect("id").to_string();
        assert_eq!(out.result(&id)["batchllm"]["line"], i + 1, "{id}");
    }
    assert_eq!(out.result("j2")["batchllm"]["output"].as_str().map(|o| o.contains("reworded")), Some(true));
}
