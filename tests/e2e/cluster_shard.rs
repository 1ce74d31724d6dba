//! `--shard I/N`: N hosts over one jobs file, no infrastructure. Every id
//! ends in exactly one shard's results file, each request is sent once, and
//! a bad line anywhere stops every shard before anything is sent.

use std::collections::HashMap;

use crate::support::*;

/// One shard's run, writing its own results file `out` in the workspace.
fn shard_run(ws: &Workspace, jobs: &std::path::Path, args: &[&str], shard: &str, out: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg(jobs)
        .arg("--output")
        .arg(ws.path(out))
        .arg("--cache-dir")
        .arg(cache_dir())
        .args(args)
        .args(["--quiet", "--shard", shard])
        .env_remove("RUST_LOG")
        .env("E2E_API_KEY", API_KEY)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_answer_every_id_exactly_once() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let lines: Vec<String> = (0..60).map(|i| job(&format!("id-{i}"), &format!("q{i}"))).collect();
    let jobs = ws.jobs(&lines);
    let args = openai_args(&server);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut sizes = Vec::new();
    for index in 0..3 {
        let out = format!("results-{index}.jsonl");
        // The last shard takes its index the way a Kubernetes Indexed Job gives it.
        let mut cmd = if index == 2 {
            let mut cmd = shard_run(&ws, &jobs, &strs(&args), "auto/3", &out);
            cmd.env("JOB_COMPLETION_INDEX", "2");
            cmd
        } else {
            shard_run(&ws, &jobs, &strs(&args), &format!("{index}/3"), &out)
        };
        let done = cmd.output().await.expect("runs");
        assert_eq!(done.status.code(), Some(0), "{}", String::from_utf8_lossy(&done.stderr));
        let text = std::fs::read_to_string(ws.path(&out)).expect("results");
        sizes.push(text.lines().count());
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            let id = v["custom_id"].as_str().expect("id").to_string();
            assert_eq!(v["batchllm"]["status"], "succeeded");
            *seen.entry(id).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 60, "every id answered: {seen:?}");
    assert!(seen.values().all(|&n| n == 1), "an id in two shards: {seen:?}");
    assert!(sizes.iter().all(|&n| n > 5), "the shards share the work: {sizes:?}");
    assert_eq!(chat_requests(&server).len(), 60, "each item sent once");

    // Resuming one shard sends nothing: its results file is its checkpoint.
    let done = shard_run(&ws, &jobs, &strs(&args), "1/3", "results-1.jsonl").output().await.expect("runs");
    assert_eq!(done.status.code(), Some(0), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(chat_requests(&server).len(), 60, "nothing sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_in_another_shard_stops_this_one_and_a_missing_index_is_named() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let mut lines: Vec<String> = (0..20).map(|i| job(&format!("id-{i}"), "q")).collect();
    lines.push("{\"id\": \"broken\"".into());
    let jobs = ws.jobs(&lines);
    let args = openai_args(&server);
    for shard in ["0/2", "1/2"] {
        let done = shard_run(&ws, &jobs, &strs(&args), shard, "r.jsonl").output().await.expect("runs");
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("jobs.jsonl:21: invalid JSON"), "{stderr}");
    }
    assert!(chat_requests(&server).is_empty());

    let jobs = ws.jobs(&lines[..20]);
    let mut cmd = shard_run(&ws, &jobs, &strs(&args), "auto/4", "r.jsonl");
    cmd.env_remove("JOB_COMPLETION_INDEX");
    let done = cmd.output().await.expect("runs");
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--shard auto/4: JOB_COMPLETION_INDEX is not set"), "{stderr}");
    let done = shard_run(&ws, &jobs, &strs(&args), "4/4", "r.jsonl").output().await.expect("runs");
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the index must be below the number of shards (0 to 3)"), "{stderr}");
}
