//! The execution engine against the mock provider: coordinated cooldown,
//! proactive admission, deadlines, fail-fast, configuration files. Each test
//! asserts on what the server saw (request counts and arrival times) as well
//! as on the result records.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support::*;

const FAST_BACKOFF: [&str; 4] = ["--backoff-initial", "0.01", "--backoff-max", "0.05"];

fn arrivals(server: &batchllm_mock::MockServer) -> Vec<(u64, u16)> {
    chat_requests(server).iter().map(|r| (r.at_ms, r.status)).collect()
}

/// A number from the human summary, e.g. `cooldowns 3`.
fn summary_number(stderr: &str, label: &str) -> usize {
    let at = stderr.find(label).unwrap_or_else(|| panic!("`{label}` in summary:\n{stderr}"));
    stderr[at + label.len()..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().expect("number")
}

fn assert_each_id_once(out: &Outcome, n: usize) {
    let ids: HashSet<&str> = out.results.iter().map(|r| r["custom_id"].as_str().expect("id")).collect();
    assert_eq!(out.results.len(), n, "{}", out.stderr);
    assert_eq!(ids.len(), n, "every id exactly once");
}

/// 20 jobs, 8 workers, 5 requests per sliding second (the mock announces
/// the limit in headers): what the server saw, and the run.
async fn run_into_a_rate_limit(extra: &[&str]) -> (Vec<(u64, u16)>, Outcome) {
    let server = mock(|c| {
        c.rpm = Some(5);
        c.window_ms = 1000;
    })
    .await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&(0..20).map(|i| job(&format!("j{i}"), &format!("q{i}"))).collect::<Vec<_>>());
    let args = openai_args(&server);
    let flags = ["--concurrency", "8", "--cooldown", "1", "--slow-start-attempts", "0"];
    let out =
        ws.run(&jobs, &[&strs(&args)[..], &flags, &FAST_BACKOFF, extra].concat(), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_each_id_once(&out, 20);
    let seen = arrivals(&server);
    let ok = seen.iter().filter(|(_, s)| *s == 200).count();
    assert_eq!(ok, 20, "every item succeeded exactly once at the server");
    let limited = seen.iter().filter(|(_, s)| *s == 429).count();
    let report: u64 = out.results.iter().map(|r| r["batchllm"]["rate_limit_retries"].as_u64().expect("n")).sum();
    assert_eq!(report as usize, limited, "each 429 is one rate-limit retry of one item");
    (seen, out)
}

/// Nothing reaches the server in the second after the first 429 but the
/// requests that were in flight when it came back.
fn assert_quiet_after_the_first_429(seen: &[(u64, u16)]) -> u64 {
    let first_429 = seen.iter().find(|(_, s)| *s == 429).map(|(t, _)| *t).expect("the limit was hit");
    let quiet: Vec<_> = seen.iter().filter(|(t, _)| *t > first_429 + 150 && *t < first_429 + 900).collect();
    assert!(quiet.is_empty(), "requests during the pause: {quiet:?} (first 429 at {first_429} ms)");
    first_429
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_pauses_every_worker_until_the_cooldown_ends() {
    // The coordinated cooldown alone (no learned limit to take over).
    let (seen, out) = run_into_a_rate_limit(&["--adaptive-rate", "false"]).await;
    // Requests in flight when the cooldown began may still land in its first
    // moments; after that, nothing reaches the server until the cooldown
    // (max(1 s policy, server hint)) is over.
    assert_quiet_after_the_first_429(&seen);
    // No retry storm: each cooldown costs at most one wave of the requests
    // already in flight (one per worker).
    let limited = seen.iter().filter(|(_, s)| *s == 429).count();
    let cooldowns = summary_number(&out.stderr, "cooldowns ");
    assert!(cooldowns >= 1 && limited <= cooldowns * 8, "{limited} 429s, {cooldowns} cooldowns: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_the_limit_is_learned_it_paces_the_run_without_a_cooldown() {
    // The same provider at the defaults: its headers and first refusals
    // teach the limit, which then holds every worker as long as the window
    // is full, and nothing more is refused.
    let (seen, _) = run_into_a_rate_limit(&[]).await;
    let first_429 = assert_quiet_after_the_first_429(&seen);
    let limited = seen.iter().filter(|(_, s)| *s == 429).count();
    assert!(limited <= 8, "one wave of the requests in flight at most: {seen:?}");
    let late: Vec<_> = seen.iter().filter(|(t, s)| *s == 429 && *t > first_429 + 150).collect();
    assert!(late.is_empty(), "refused after the limit was learned: {late:?}");
    // 5 per second: 20 requests need the first second and three more.
    let last = seen.iter().map(|(t, _)| *t).max().unwrap_or(0);
    assert!(last < first_429 + 3_600, "paced at the limit, not slower: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_paces_requests_before_they_are_sent() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&(0..30).map(|i| job(&format!("j{i}"), &format!("q{i}"))).collect::<Vec<_>>());
    let args = openai_args(&server);
    let events = ws.path("events.jsonl");
    let started = Instant::now();
    // 600 rpm = 10 per second, burst of one second.
    let pacing = ["--concurrency", "16", "--rpm", "600", "--events", events.to_str().expect("utf-8")];
    let out = ws.run(&jobs, &[&strs(&args)[..], &pacing].concat(), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_each_id_once(&out, 30);
    assert!(started.elapsed() >= Duration::from_millis(1800), "30 requests at 10/s after a burst of 10 take >= 2 s");
    let mut times: Vec<u64> = arrivals(&server).iter().map(|(t, _)| *t).collect();
    times.sort_unstable();
    let busiest = times.iter().map(|&t| times.iter().filter(|&&u| u >= t && u < t + 1000).count()).max();
    assert!(busiest.expect("requests") <= 20, "at most burst (10) + rate (10) in any second: {times:?}");
    // After the burst, attempts start ~100 ms apart, not bunched. Start
    // times come from the run's own events (answer time less duration):
    // arrival times at the server also carry the first connections' setup.
    let text = std::fs::read_to_string(&events).expect("events");
    let mut starts: Vec<f64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "attempt")
        .map(|e| e["at"].as_f64().expect("at") - e["ms"].as_f64().expect("ms") / 1000.0)
        .collect();
    starts.sort_by(f64::total_cmp);
    assert_eq!(starts.len(), 30);
    let paced = &starts[10..];
    assert!(paced.windows(2).all(|w| w[1] - w[0] >= 0.08), "paced at 10/s: {starts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_larger_than_the_token_bucket_is_admitted_alone() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let big = serde_json::json!({"id": "big", "prompt": "hello", "params": {"max_tokens": 5000}}).to_string();
    let jobs = ws.jobs(&[big, job("small", "hi")]);
    let args = openai_args(&server);
    // 6000 tpm = 100 tokens/s: the 5000-token charge exceeds the bucket.
    let out = ws.run(&jobs, &[&strs(&args)[..], &["--tpm", "6000"]].concat(), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result("big")["batchllm"]["status"], "succeeded");
    assert_eq!(out.result("small")["batchllm"]["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_item_deadline_ends_an_item_and_no_attempt_starts_after_it() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("stuck", "[[mock:hang]]"), job("fine", "hello")]);
    let args = openai_args(&server);
    let started = Instant::now();
    let flags = ["--item-timeout", "0.6", "--attempt-timeout", "30", "--max-attempts", "5"];
    let out = ws.run(&jobs, &[&strs(&args)[..], &flags, &FAST_BACKOFF].concat(), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let stuck = out.result("stuck");
    assert_eq!(stuck["error"]["code"], "deadline_exceeded", "{stuck}");
    assert_eq!(stuck["batchllm"]["attempts"], 1, "no attempt after the deadline");
    assert_eq!(out.result("fine")["batchllm"]["status"], "succeeded");
    assert!(started.elapsed() < Duration::from_secs(5), "the deadline bounded the hang");
    assert_eq!(chat_requests(&server).iter().filter(|r| r.prompt.as_deref() == Some("[[mock:hang]]")).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_deadline_gives_every_unfinished_item_a_record() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs =
        ws.jobs(&(0..40).map(|i| job(&format!("j{i}"), &format!("[[mock:latency=300]] q{i}"))).collect::<Vec<_>>());
    let args = openai_args(&server);
    let started = Instant::now();
    let out = ws
        .run(
            &jobs,
            &[&strs(&args)[..], &["--concurrency", "2", "--batch-timeout", "1"]].concat(),
            &[("E2E_API_KEY", API_KEY)],
        )
        .await;
    assert_eq!(out.code, 3, "aborted:\n{}", out.stderr);
    assert_each_id_once(&out, 40);
    let expired: Vec<_> = out.results.iter().filter(|r| r["error"]["code"] == "batch_deadline_exceeded").collect();
    let succeeded = out.results.iter().filter(|r| r["batchllm"]["status"] == "succeeded").count();
    assert!(!expired.is_empty() && succeeded > 0, "{succeeded} succeeded, {} expired", expired.len());
    assert_eq!(expired.len() + succeeded, 40);
    let sent_then_cut = expired.iter().filter(|r| r["batchllm"]["attempts"].as_u64() > Some(0)).count();
    assert!(sent_then_cut <= 2, "at most the in-flight items (one per worker) were cut");
    assert_eq!(chat_requests(&server).len(), succeeded + sent_then_cut, "queued items were never sent");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(out.stderr.contains("the batch deadline passed"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_stops_the_run_and_queued_items_end_aborted_without_calls() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let mut lines: Vec<String> = (0..3).map(|i| job(&format!("ok{i}"), &format!("q{i}"))).collect();
    lines.push(job("denied", "[[mock:status=401]]"));
    lines.extend((0..16).map(|i| job(&format!("later{i}"), &format!("later {i}"))));
    let jobs = ws.jobs(&lines);
    let args = openai_args(&server);
    let out = ws.run(&jobs, &[&strs(&args)[..], &["--concurrency", "1"]].concat(), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_each_id_once(&out, 20);
    assert_eq!(out.result("denied")["error"]["code"], "auth");
    for i in 0..16 {
        let r = out.result(&format!("later{i}"));
        assert_eq!(r["error"]["code"], "aborted", "{r}");
        assert_eq!(r["batchllm"]["attempts"], 0, "no call for a queued item");
        assert!(r["error"]["message"].as_str().expect("msg").contains("item `denied`"), "{r}");
    }
    assert_eq!(chat_requests(&server).len(), 4, "nothing was sent after the abort");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mode_cuts_in_flight_attempts_on_abort() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let mut lines: Vec<String> =
        (0..3).map(|i| job(&format!("slow{i}"), &format!("[[mock:latency=8000]] s{i}"))).collect();
    lines.insert(1, job("quota", "[[mock:insufficient_quota]]"));
    let jobs = ws.jobs(&lines);
    let args = openai_args(&server);
    let started = Instant::now();
    let out = ws
        .run(
            &jobs,
            &[&strs(&args)[..], &["--concurrency", "4", "--abort-mode", "cancel"]].concat(),
            &[("E2E_API_KEY", API_KEY)],
        )
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_each_id_once(&out, 4);
    assert_eq!(out.result("quota")["error"]["code"], "quota_exhausted");
    for i in 0..3 {
        let r = out.result(&format!("slow{i}"));
        // A cancelled in-flight request may have been answered (and billed):
        // its item is not resent on resume. One never started is `aborted`.
        if r["batchllm"]["attempts"].as_u64() > Some(0) {
            assert_eq!(r["error"]["code"], "outcome_unknown", "{r}");
            assert!(r["error"]["message"].as_str().expect("msg").contains("cancelled"), "{r}");
        } else {
            assert_eq!(r["error"]["code"], "aborted", "{r}");
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5), "in-flight calls were not waited for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_can_be_turned_off() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("denied", "[[mock:status=401]]"), job("next", "hello")]);
    let args = openai_args(&server);
    let out = ws
        .run(
            &jobs,
            &[&strs(&args)[..], &["--concurrency", "1", "--fail-fast", "none"]].concat(),
            &[("E2E_API_KEY", API_KEY)],
        )
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.result("next")["batchllm"]["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_sets_options_and_flags_override_it() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let config = ws.path("run.toml");
    let toml = format!(
        "plugin = \"openai\"\nallow-host = [\"{}\"]\napi-key-env = \"E2E_API_KEY\"\nmax-attempts = 1\n\n[plugin-config]\nbase_url = \"{}\"\n",
        grant(&server),
        server.base_url()
    );
    std::fs::write(&config, toml).expect("write config");
    let jobs = ws.jobs(&[job("flaky", "[[mock:fail-first=1]] hi")]);
    let cfg = config.to_str().expect("utf8");
    let out = ws.run(&jobs, &["--config", cfg], &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 1, "max-attempts 1 from the file:\n{}", out.stderr);
    server.reset();
    let out = ws
        .run(
            &jobs,
            &[&["--config", cfg, "--max-attempts", "2"][..], &FAST_BACKOFF].concat(),
            &[("E2E_API_KEY", API_KEY)],
        )
        .await;
    assert_eq!(out.code, 0, "the flag overrides the file:\n{}", out.stderr);
    assert_eq!(out.result("flaky")["batchllm"]["attempts"], 2);

    std::fs::write(&config, "plugin = \"openai\"\nconcurency = 3\n").expect("write config");
    let out = ws.run(&jobs, &["--config", cfg], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("concurency"), "a typo in the file is named:\n{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_budget_stops_the_run() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(
        &(0..30).map(|i| job(&format!("j{i}"), &format!("a prompt of some length, number {i}"))).collect::<Vec<_>>(),
    );
    let args = openai_args(&server);
    let out = ws
        .run(
            &jobs,
            &[&strs(&args)[..], &["--concurrency", "1", "--max-total-tokens", "60"]].concat(),
            &[("E2E_API_KEY", API_KEY)],
        )
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_each_id_once(&out, 30);
    let used: u64 = out
        .results
        .iter()
        .map(|r| {
            r["batchllm"]["usage"]["input_tokens"].as_u64().expect("n")
                + r["batchllm"]["usage"]["output_tokens"].as_u64().expect("n")
        })
        .sum();
    let sent = chat_requests(&server).len();
    assert!(used >= 60, "the budget was reached: {used}");
    assert!(sent < 30, "the run stopped early: {sent} sent");
    let aborted = out.results.iter().filter(|r| r["error"]["code"] == "aborted").count();
    assert_eq!(aborted, 30 - sent);
    assert!(out.stderr.contains("--max-total-tokens 60"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_record_the_runs_lifecycle() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&[
        job("ok", "hello"),
        job("limited", "[[mock:fail-first=1]][[mock:status=429]] later"),
        job("denied", "[[mock:status=401]]"),
        job("never", "not sent"),
    ]);
    let events = ws.path("events.jsonl");
    let args = openai_args(&server);
    let flags = ["--concurrency", "1", "--cooldown", "0.05", "--events", events.to_str().expect("utf8")];
    let out = ws.run(&jobs, &[&strs(&args)[..], &flags].concat(), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    let text = std::fs::read_to_string(&events).expect("events written");
    assert!(!text.contains(API_KEY), "no secret in events");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let names: Vec<&str> = lines.iter().map(|e| e["event"].as_str().expect("event")).collect();
    assert_eq!(names.first(), Some(&"run_started"));
    assert_eq!(names.last(), Some(&"run_finished"));
    let count = |n: &str| names.iter().filter(|&&x| x == n).count();
    assert_eq!(count("attempt"), 4, "ok, 429, retry, 401: {names:?}");
    assert_eq!(count("rate_limited"), 1);
    assert_eq!(count("cooldown_started"), 1);
    assert_eq!(count("item_finished"), 4, "one per record, the aborted one included");
    assert_eq!(count("aborted"), 1);
    let attempts: Vec<_> = lines.iter().filter(|e| e["event"] == "attempt").collect();
    assert_eq!(attempts[1]["item"], "limited");
    assert_eq!(attempts[1]["class"], "rate_limited");
    assert_eq!(attempts[1]["http_status"], 429);
    assert!(lines.windows(2).all(|w| w[0]["at"].as_f64() <= w[1]["at"].as_f64()), "in time order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_agrees_with_the_providers_own_log() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let mut lines: Vec<String> = (0..12).map(|i| job(&format!("j{i}"), &format!("question {i}"))).collect();
    lines.push(job("flaky", "[[mock:fail-first=2]] flaky"));
    lines.push(job("limited", "[[mock:fail-first=1]][[mock:status=429]] limited"));
    lines.push(job("broken", "[[mock:status=400]] broken"));
    let jobs = ws.jobs(&lines);
    let summary = ws.path("summary.json");
    let args = openai_args(&server);
    let flags = ["--concurrency", "4", "--cooldown", "0.05", "--summary-json", summary.to_str().expect("utf8")];
    let out = ws.run(&jobs, &[&strs(&args)[..], &flags, &FAST_BACKOFF].concat(), &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    let log = chat_requests(&server);
    let ok: Vec<_> = log.iter().filter(|r| r.status == 200).collect();
    assert_eq!(s["http_requests"].as_u64(), Some(log.len() as u64), "every request the server saw");
    assert_eq!(s["attempts"].as_u64(), Some(log.len() as u64), "one request per attempt");
    assert_eq!(s["succeeded"].as_u64(), Some(ok.len() as u64));
    assert_eq!(s["failed"], 1);
    assert_eq!(s["cooldown"]["rate_limits"].as_u64(), Some(log.iter().filter(|r| r.status == 429).count() as u64));
    let sum =
        |field: &str| ok.iter().map(|r| r.usage.as_ref().expect("usage")[field].as_u64().expect("n")).sum::<u64>();
    assert_eq!(s["usage"]["input_tokens"].as_u64(), Some(sum("prompt_tokens")));
    assert_eq!(s["usage"]["output_tokens"].as_u64(), Some(sum("completion_tokens")));
}
