//! The results file is the checkpoint: re-running resumes, never duplicates.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::*;

const FAST: [&str; 4] = ["--backoff-initial", "0.01", "--backoff-max", "0.05"];

/// The gemini plugin with a provider-side cache: `prepare` creates it and
/// `cleanup` deletes it, so the server's log shows the lifecycle.
fn gemini_with_cache(server: &batchllm_mock::MockServer) -> Vec<String> {
    let cache = serde_json::json!({"contents": "shared context ".repeat(100), "ttl_seconds": 3600});
    [
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
        "--quiet",
    ]
    .map(String::from)
    .to_vec()
}

fn ids_once(results: &[serde_json::Value], n: usize) {
    let mut seen = HashMap::new();
    for r in results {
        *seen.entry(r["custom_id"].as_str().expect("id").to_string()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), n, "ids: {seen:?}");
    assert!(seen.values().all(|&c| c == 1), "an id twice: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerunning_the_same_command_sends_nothing_twice() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let mut lines: Vec<String> = (0..8).map(|i| job(&format!("j{i}"), &format!("q{i}"))).collect();
    lines.push(job("bad", "[[mock:status=400]]"));
    let jobs = ws.jobs(&lines);
    let args = openai_args(&server);
    let env = [("E2E_API_KEY", API_KEY)];
    let first = ws.resume(&jobs, &strs(&args), &env).await;
    assert_eq!(first.code, 1, "{}", first.stderr);
    let sent = chat_requests(&server).len();
    assert_eq!(sent, 9);

    let again = ws.resume(&jobs, &strs(&args), &env).await;
    assert_eq!(again.code, 1, "the kept failure still counts:\n{}", again.stderr);
    assert_eq!(chat_requests(&server).len(), sent, "nothing was sent again");
    assert!(again.stderr.contains("resumed: 9 items already had a record (1 failed)"), "{}", again.stderr);
    ids_once(&again.results, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_reruns_only_the_failures() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let lines = vec![job("ok", "fine"), job("flaky", "[[mock:fail-first=1]] later")];
    let jobs = ws.jobs(&lines);
    let args = openai_args(&server);
    let env = [("E2E_API_KEY", API_KEY)];
    let first = ws.resume(&jobs, &[&strs(&args)[..], &["--max-attempts", "1"]].concat(), &env).await;
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert_eq!(first.result("flaky")["error"]["code"], "overloaded");

    let retry = ws.resume(&jobs, &[&strs(&args)[..], &["--retry-failed"]].concat(), &env).await;
    assert_eq!(retry.code, 0, "{}", retry.stderr);
    ids_once(&retry.results, 2);
    assert_eq!(retry.result("flaky")["batchllm"]["status"], "succeeded");
    let prompts: Vec<_> = chat_requests(&server).into_iter().filter_map(|r| r.prompt).collect();
    assert_eq!(prompts.iter().filter(|p| *p == "fine").count(), 1, "the success was not re-run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_line_runs_again_unless_strict_and_a_changed_configuration_is_refused_unless_forced() {
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("a", "one"), job("b", "two")]);
    assert_eq!(ws.resume(&jobs, &["--plugin", "mock"], &[]).await.code, 0);
    let jobs = ws.jobs(&[job("a", "one, edited"), job("b", "two")]);
    let out = ws.resume(&jobs, &["--plugin", "mock", "--strict-resume"], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("the input line of `a` changed"), "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    let out = ws.resume(&jobs, &["--plugin", "mock", "--plugin-config", "x=1"], &[]).await;
    assert_eq!(out.code, 2, "a different plugin configuration is refused:\n{}", out.stderr);
    assert!(out.stderr.contains("another plugin configuration"), "{}", out.stderr);
    let out = ws.resume(&jobs, &["--plugin", "mock", "--force"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result("a")["batchllm"]["output"], "mock: one", "forced: the old answer is kept");
    let out = ws.resume(&jobs, &["--plugin", "mock"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result("a")["batchllm"]["output"], "mock: one, edited", "the changed line ran again");
    assert!(out.stderr.contains("1 items ran again because their input line changed"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_line_is_repaired() {
    let ws = Workspace::new();
    let jobs = ws.jobs(&(0..5).map(|i| job(&format!("j{i}"), "x")).collect::<Vec<_>>());
    assert_eq!(ws.resume(&jobs, &["--plugin", "mock"], &[]).await.code, 0);
    // Simulate a crash mid-write: keep 3 records and half of the 4th.
    let text = std::fs::read_to_string(ws.path("results.jsonl")).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    let torn = format!("{}\n{}", lines[..3].join("\n"), &lines[3][..lines[3].len() / 2]);
    std::fs::write(ws.path("results.jsonl"), torn).expect("write");
    let out = ws.resume(&jobs, &["--plugin", "mock"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("torn last line"), "{}", out.stderr);
    ids_once(&out.results, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_cut_by_the_batch_deadline_run_on_resume() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs =
        ws.jobs(&(0..12).map(|i| job(&format!("j{i}"), &format!("[[mock:latency=200]] q{i}"))).collect::<Vec<_>>());
    let args = openai_args(&server);
    let env = [("E2E_API_KEY", API_KEY)];
    let first =
        ws.resume(&jobs, &[&strs(&args)[..], &["--concurrency", "2", "--batch-timeout", "0.5"]].concat(), &env).await;
    assert_eq!(first.code, 3, "{}", first.stderr);
    assert!(first.results.iter().any(|r| r["error"]["code"] == "batch_deadline_exceeded"));
    let second = ws.resume(&jobs, &[&strs(&args)[..], &["--concurrency", "6"]].concat(), &env).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    ids_once(&second.results, 12);
    assert!(second.results.iter().all(|r| r["batchllm"]["status"] == "succeeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_process_at_random_moments_loses_and_duplicates_nothing() {
    let server = mock(|c| {
        c.latency_ms = 10;
        c.jitter_ms = 20;
    })
    .await;
    let ws = Workspace::new();
    let n = 300;
    let jobs = ws.jobs(&(0..n).map(|i| job(&format!("j{i}"), &format!("question {i}"))).collect::<Vec<_>>());
    let args = openai_args(&server);
    let env = [("E2E_API_KEY", API_KEY)];
    let concurrency = 8;
    let flags = ["--concurrency", "8", "--quiet"];
    let mut kills = 0;
    for delay_ms in [150u64, 420, 90, 600, 260] {
        let mut child = ws.command(&jobs, &[&strs(&args)[..], &flags].concat(), &env).spawn().expect("spawn");
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        if child.try_wait().expect("status").is_none() {
            child.start_kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait().await;
        // Whatever was written parses, and no id appears twice.
        let partial = ws.results();
        let mut seen = std::collections::HashSet::new();
        assert!(partial.iter().all(|r| seen.insert(r["custom_id"].as_str().expect("id").to_string())));
    }
    assert!(kills >= 3, "the test must actually kill runs mid-way");
    let last = ws.resume(&jobs, &[&strs(&args)[..], &flags, &FAST].concat(), &env).await;
    assert_eq!(last.code, 1, "items in flight at a kill end as outcome_unknown:\n{}", last.stderr);
    ids_once(&last.results, n);
    // At most once: no item was ever answered twice by the provider. Items
    // whose request was in flight at a kill were not sent again.
    let answered = |server: &batchllm_mock::MockServer| {
        let mut count: HashMap<String, usize> = HashMap::new();
        for r in chat_requests(server).into_iter().filter(|r| r.status == 200) {
            *count.entry(r.prompt.expect("prompt")).or_insert(0) += 1;
        }
        count
    };
    let once = answered(&server);
    assert!(once.values().all(|&c| c == 1), "an item was answered twice: {once:?}");
    let unknown: Vec<_> = last.results.iter().filter(|r| r["error"]["code"] == "outcome_unknown").collect();
    assert!(unknown.len() <= kills * concurrency, "{} unknown after {kills} kills", unknown.len());
    assert_eq!(
        last.results.iter().filter(|r| r["batchllm"]["status"] == "succeeded").count() + unknown.len(),
        n,
        "everything else succeeded"
    );
    // The user decides to send the in-flight ones again.
    let retried = ws.resume(&jobs, &[&strs(&args)[..], &flags, &["--retry-failed"]].concat(), &env).await;
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    ids_once(&retried.results, n);
    assert!(retried.results.iter().all(|r| r["batchllm"]["status"] == "succeeded"));
    assert!(!ws.path("results.jsonl.inflight").exists(), "a finished run leaves no journal");
    eprintln!("sigkill test: {kills} kills, {} items in flight at a kill, none answered twice", unknown.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_drains_cleans_up_and_the_rerun_finishes_without_resending() {
    let server = mock(|c| c.latency_ms = 100).await;
    let ws = Workspace::new();
    let n = 60;
    let jobs = ws.jobs(&(0..n).map(|i| job(&format!("j{i}"), &format!("question {i}"))).collect::<Vec<_>>());
    let args = gemini_with_cache(&server);
    let args = strs(&args);
    let env = [("E2E_API_KEY", API_KEY)];
    let mut child = ws.command(&jobs, &args, &env).spawn().expect("spawn");
    // Running and writing records, however loaded the machine.
    let started = std::time::Instant::now();
    while ws.results().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "the run never wrote a record");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = i32::try_from(child.id().expect("running")).expect("pid");
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = child.wait().await.expect("exit");
    assert_eq!(status.code(), Some(130), "interrupted");

    let partial = ws.results();
    assert!(!partial.is_empty() && partial.len() < n, "{} of {n} done at the interrupt", partial.len());
    assert!(partial.iter().all(|r| r["batchllm"]["status"] == "succeeded"), "in-flight items drained, not cut");
    let ops = |method: &str| {
        server.requests().into_iter().filter(|r| r.path.contains("/cachedContents") && r.method == method).count()
    };
    assert_eq!((ops("POST"), ops("DELETE")), (1, 1), "prepare once, cleanup once, also on Ctrl-C");

    let rest = ws.resume(&jobs, &args, &env).await;
    assert_eq!(rest.code, 0, "{}", rest.stderr);
    ids_once(&rest.results, n);
    let generated: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains(":generateContent"))
        .map(|r| r.prompt.unwrap_or_default())
        .collect();
    let distinct: std::collections::HashSet<_> = generated.iter().collect();
    assert_eq!(generated.len(), n, "after a Ctrl-C nothing is sent twice");
    assert_eq!(distinct.len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_cancels_in_flight_calls_and_cleanup_still_runs() {
    let server = mock(|c| c.latency_ms = 3000).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&(0..8).map(|i| job(&format!("j{i}"), &format!("question {i}"))).collect::<Vec<_>>());
    let args = gemini_with_cache(&server);
    let args = strs(&args);
    let env = [("E2E_API_KEY", API_KEY)];
    let mut child = ws.command(&jobs, &args, &env).spawn().expect("spawn");
    // Four 3 s calls on the wire, however loaded the machine.
    let on_the_wire = std::time::Instant::now();
    while server.requests().iter().filter(|r| r.path.contains(":generateContent")).count() < 4 {
        assert!(on_the_wire.elapsed() < Duration::from_secs(60), "the run never sent its calls");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = i32::try_from(child.id().expect("running")).expect("pid");
    let started = std::time::Instant::now();
    for _ in 0..2 {
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = child.wait().await.expect("exit");
    assert_eq!(status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(2), "in-flight 3 s calls were not waited for");
    // The four items on the wire (concurrency 4) are recorded
    // `outcome_unknown` right away, since the provider may have answered;
    // the four never started keep no record.
    let results = ws.results();
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|r| r["error"]["code"] == "outcome_unknown"), "{results:?}");
    assert!(!ws.path("results.jsonl.inflight").exists(), "every sent item has its record: no journal left");
    let deletes =
        server.requests().into_iter().filter(|r| r.path.contains("/cachedContents") && r.method == "DELETE").count();
    assert_eq!(deletes, 1, "cleanup ran");
    // A resume runs the other four and sends none of the first four again.
    let generate = || {
        server
            .requests()
            .into_iter()
            .filter(|r| r.path.contains(":generateContent"))
            .map(|r| r.prompt)
            .collect::<Vec<_>>()
    };
    let before = generate().len();
    let rest = ws.resume(&jobs, &args, &env).await;
    assert_eq!(rest.code, 1, "outcome_unknown items count as failed: {}", rest.stderr);
    ids_once(&rest.results, 8);
    assert_eq!(generate().len(), before + 4, "{}", rest.stderr);
}
