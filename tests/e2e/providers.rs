//! The Anthropic and Gemini plugins end to end: the real binary and the real
//! plugins against the mock provider's Anthropic Messages and Gemini
//! `generateContent` endpoints. Both providers run the same table of
//! scenarios (success and usage, each error class, rate-limit signals); the
//! Gemini context-cache lifecycle has its own tests.

use std::time::{Duration, Instant};

use batchllm_mock::{LoggedRequest, MockServer};
use serde_json::json;

use crate::support::*;

const FAST: [&str; 4] = ["--backoff-initial", "0.01", "--backoff-max", "0.05"];

/// The provider under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Anthropic,
    Gemini,
}

impl Provider {
    fn plugin(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
        }
    }

    /// The status each provider signals overload with.
    fn overloaded_status(self) -> u16 {
        match self {
            Provider::Anthropic => 529,
            Provider::Gemini => 503,
        }
    }

    /// The status of each provider's out-of-quota answer (Anthropic: 400
    /// "credit balance is too low"; Gemini: per-day RESOURCE_EXHAUSTED).
    fn quota_status(self) -> u16 {
        match self {
            Provider::Anthropic => 400,
            Provider::Gemini => 429,
        }
    }

    /// The status of each provider's answer to a wrong API key.
    fn wrong_key_status(self) -> u16 {
        match self {
            Provider::Anthropic => 401,
            Provider::Gemini => 400,
        }
    }

    /// `--plugin`, the grant, the mock's origin as `base_url`, the key.
    fn args(self, server: &MockServer) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--plugin".into(),
            self.plugin().into(),
            "--allow-host".into(),
            grant(server),
            "--plugin-config".into(),
            format!("base_url={}", server.origin()),
            "--api-key-env".into(),
            "E2E_API_KEY".into(),
        ];
        args.extend(FAST.iter().map(|s| (*s).to_owned()));
        args
    }

    /// What the mock saw on this provider's generation endpoint.
    fn requests(self, server: &MockServer) -> Vec<LoggedRequest> {
        let path = match self {
            Provider::Anthropic => "/v1/messages",
            Provider::Gemini => ":generateContent",
        };
        server.requests().into_iter().filter(|r| r.path.contains(path)).collect()
    }

    /// The header that carries the API key.
    fn key_header(self) -> &'static str {
        match self {
            Provider::Anthropic => "x-api-key",
            Provider::Gemini => "x-goog-api-key",
        }
    }
}

/// Runs `lines` through `provider`'s plugin against `server` with `extra`
/// arguments and the right key (or `key`).
async fn run(
    provider: Provider,
    server: &MockServer,
    lines: &[String],
    extra: &[&str],
    key: &str,
) -> (Outcome, Duration) {
    let ws = Workspace::new();
    let jobs = ws.jobs(lines);
    let args = provider.args(server);
    let started = Instant::now();
    let out = ws.run(&jobs, &[&strs(&args)[..], extra].concat(), &[("E2E_API_KEY", key)]).await;
    (out, started.elapsed())
}

/// One row of the shared table: a prompt, extra arguments, what must come
/// out.
struct Scenario {
    name: &'static str,
    /// The prompt, given the provider (markers differ in status only).
    prompt: fn(Provider) -> String,
    extra: &'static [&'static str],
    /// `None` for success, else the `error.code`.
    code: Option<&'static str>,
    /// The exit code: 0, 1 (the item failed) or 3 (a fail-fast class
    /// aborted the run).
    exit: i32,
    /// The final HTTP status, given the provider.
    http_status: fn(Provider) -> u16,
    attempts: u32,
    rate_limit_retries: u32,
    /// The least the run must take (a honoured server wait).
    min_elapsed: Duration,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "overloaded",
        prompt: |p| format!("[[mock:status={}]] busy", p.overloaded_status()),
        extra: &["--max-attempts", "2"],
        code: Some("overloaded"),
        exit: 1,
        http_status: Provider::overloaded_status,
        attempts: 2,
        rate_limit_retries: 0,
        min_elapsed: Duration::ZERO,
    },
    Scenario {
        name: "overloaded_then_success",
        prompt: |p| format!("[[mock:fail-first=1]][[mock:status={}]] flaky", p.overloaded_status()),
        extra: &[],
        code: None,
        exit: 0,
        http_status: |_| 200,
        attempts: 2,
        rate_limit_retries: 0,
        min_elapsed: Duration::ZERO,
    },
    Scenario {
        name: "rate_limited_then_success",
        // Anthropic answers `retry-after: 1`, Gemini `RetryInfo.retryDelay: "1s"`
        // (and no header): either way the host must wait a second, far
        // longer than --backoff-max.
        prompt: |_| "[[mock:fail-first=1]][[mock:status=429]] throttled".into(),
        extra: &[],
        code: None,
        exit: 0,
        http_status: |_| 200,
        attempts: 2,
        rate_limit_retries: 1,
        min_elapsed: Duration::from_millis(1000),
    },
    Scenario {
        name: "too_large",
        prompt: |_| "[[mock:status=413]] huge".into(),
        extra: &[],
        code: Some("too_large"),
        exit: 1,
        http_status: |_| 413,
        attempts: 1,
        rate_limit_retries: 0,
        min_elapsed: Duration::ZERO,
    },
    Scenario {
        name: "quota_exhausted",
        prompt: |_| "[[mock:quota-per-day]] broke".into(),
        extra: &[],
        code: Some("quota_exhausted"),
        exit: 3,
        http_status: Provider::quota_status,
        attempts: 1,
        rate_limit_retries: 0,
        min_elapsed: Duration::ZERO,
    },
    Scenario {
        name: "auth",
        prompt: |_| "[[mock:status=401]] who".into(),
        extra: &[],
        code: Some("auth"),
        exit: 3,
        http_status: |_| 401,
        attempts: 1,
        rate_limit_retries: 0,
        min_elapsed: Duration::ZERO,
    },
    Scenario {
        name: "client_error",
        prompt: |_| "[[mock:status=400]] bad".into(),
        extra: &[],
        code: Some("client_error"),
        exit: 1,
        http_status: |_| 400,
        attempts: 1,
        rate_limit_retries: 0,
        min_elapsed: Duration::ZERO,
    },
];

/// Runs the scenario `name` of [`SCENARIOS`] for `provider`: one job, one run.
async fn scenario(provider: Provider, name: &str) {
    let s = SCENARIOS.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no scenario {name}"));
    let server = mock(|_| {}).await;
    let prompt = (s.prompt)(provider);
    let (out, elapsed) = run(provider, &server, &[job("item", &prompt)], s.extra, API_KEY).await;
    let r = out.result("item");
    let b = &r["batchllm"];
    let context = format!("{provider:?} {name}: {r}\nstderr:\n{}", out.stderr);
    assert_eq!(out.code, s.exit, "{context}");
    match s.code {
        None => {
            assert_eq!(b["status"], "succeeded", "{context}");
            assert_eq!(b["output"], format!("echo: {prompt}"), "{context}");
        }
        Some(code) => {
            assert_eq!(r["error"]["code"], code, "{context}");
        }
    }
    assert_eq!(r["response"]["status_code"], (s.http_status)(provider), "{context}");
    assert_eq!(b["attempts"], s.attempts, "{context}");
    assert_eq!(b["rate_limit_retries"], s.rate_limit_retries, "{context}");
    assert!(elapsed >= s.min_elapsed, "{context}: took {elapsed:?}, the server asked for {:?}", s.min_elapsed);
    let requests = provider.requests(&server);
    assert_eq!(requests.len(), s.attempts as usize, "{context}: one request per attempt");
    assert!(
        requests.iter().all(|q| q.headers.contains(&(provider.key_header().to_owned(), API_KEY.to_owned()))),
        "{context}: the host substituted the key into {}",
        provider.key_header()
    );
    server.shutdown().await;
}

/// Success: output, usage equal to what the mock billed, metadata, request
/// shapes (prompt-only and full-body jobs).
async fn success_and_usage(provider: Provider) {
    let server = mock(|c| c.rpm = Some(1000)).await;
    let full = match provider {
        Provider::Anthropic => json!({"id": "full", "prompt": "", "params": {"model": "claude-e2e", "max_tokens": 50,
            "system": "Be brief.", "messages": [{"role": "user", "content": "What is 2+2?"}]}}),
        Provider::Gemini => json!({"id": "full", "prompt": "", "params": {"model": "gemini-e2e",
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "generationConfig": {"maxOutputTokens": 50},
            "contents": [{"role": "user", "parts": [{"text": "What is 2+2?"}]}]}}),
    };
    let lines = [job("plain", "hello there"), full.to_string()];
    let (out, _) = run(provider, &server, &lines, &[], API_KEY).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let requests = provider.requests(&server);
    assert_eq!(requests.len(), 2);
    for (id, prompt) in [("plain", "hello there"), ("full", "What is 2+2?")] {
        let r = out.result(id);
        let b = &r["batchllm"];
        assert_eq!(b["status"], "succeeded", "{r}");
        assert_eq!(b["output"], format!("echo: {prompt}"), "{r}");
        let logged = requests.iter().find(|q| q.prompt.as_deref() == Some(prompt)).expect("logged");
        let billed = logged.usage.as_ref().expect("usage logged");
        let (input, output) = match provider {
            Provider::Anthropic => (&billed["input_tokens"], &billed["output_tokens"]),
            Provider::Gemini => (&billed["promptTokenCount"], &billed["candidatesTokenCount"]),
        };
        assert_eq!(&b["usage"]["input_tokens"], input, "{r}");
        assert_eq!(&b["usage"]["output_tokens"], output, "{r}");
        assert_eq!(r["response"]["body"], logged.response_body, "{r}");
        match provider {
            Provider::Anthropic => {
                assert_eq!(r["response"]["request_id"], logged.request_id, "{r}");
                assert_eq!(b["metadata"]["stop_reason"], "end_turn", "{r}");
                // The anthropic-ratelimit-* headers reach the results.
                assert_eq!(b["metadata"]["rate_limits"]["requests-limit"], 1000, "{r}");
                assert!(b["metadata"]["rate_limits"]["requests-reset"].as_str().is_some_and(|t| t.ends_with('Z')));
                assert_eq!(logged.body["max_tokens"], if id == "full" { 50 } else { 1024 });
            }
            Provider::Gemini => {
                assert_eq!(b["metadata"]["finish_reason"], "STOP", "{r}");
                assert!(logged.headers.iter().any(|(k, _)| k == "x-goog-api-key"));
            }
        }
    }
    // The job's own model reaches the provider.
    let full_request = requests.iter().find(|q| q.prompt.as_deref() == Some("What is 2+2?")).expect("logged");
    match provider {
        Provider::Anthropic => assert_eq!(full_request.body["model"], "claude-e2e"),
        Provider::Gemini => assert_eq!(full_request.path, "/v1beta/models/gemini-e2e:generateContent"),
    }
    server.shutdown().await;
}

/// A wrong API key is the provider's own auth answer (Anthropic 401,
/// Gemini 400 `API_KEY_INVALID`): classified `auth`, tried once, and the
/// run is aborted (auth is a fail-fast class).
async fn wrong_key_is_auth(provider: Provider) {
    let server = mock(|_| {}).await;
    let (out, _) = run(provider, &server, &[job("a", "hi")], &[], "sk-wrong").await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    let r = out.result("a");
    assert_eq!(r["error"]["code"], "auth", "{r}");
    assert_eq!(r["response"]["status_code"], provider.wrong_key_status(), "{r}");
    assert_eq!(r["batchllm"]["attempts"], 1);
    assert_eq!(provider.requests(&server).len(), 1);
    server.shutdown().await;
}

/// The mock's own rate window (2 requests per 600 ms) is respected: every
/// item succeeds, no more than two requests are admitted in any window, and
/// every 429 met on the way has the provider's shape. (The host may pace
/// itself from Anthropic's `anthropic-ratelimit-*` headers before any 429;
/// Gemini sends none, so it meets `RESOURCE_EXHAUSTED` with `RetryInfo`.)
async fn rate_window_is_respected(provider: Provider) {
    const WINDOW_MS: u64 = 600;
    let server = mock(|c| {
        c.rpm = Some(2);
        c.window_ms = WINDOW_MS;
    })
    .await;
    let lines: Vec<String> = (0..4).map(|i| job(&format!("j{i}"), &format!("question {i}"))).collect();
    let (out, _) = run(provider, &server, &lines, &["--concurrency", "4"], API_KEY).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.results.iter().all(|r| r["batchllm"]["status"] == "succeeded"));
    let requests = provider.requests(&server);
    let admitted: Vec<u64> = requests.iter().filter(|q| q.status == 200).map(|q| q.at_ms).collect();
    assert_eq!(admitted.len(), 4);
    assert!(admitted[2] >= admitted[0] + WINDOW_MS - 50, "the third waited for the window: {admitted:?}");
    for q in requests.iter().filter(|q| q.status == 429) {
        match provider {
            Provider::Anthropic => assert_eq!(q.response_body["error"]["type"], "rate_limit_error"),
            Provider::Gemini => {
                assert_eq!(q.response_body["error"]["status"], "RESOURCE_EXHAUSTED");
                assert!(q.response_body["error"]["details"][1]["retryDelay"].is_string());
            }
        }
    }
    if provider == Provider::Anthropic {
        let limits = &out.result("j0")["batchllm"]["metadata"]["rate_limits"];
        assert_eq!(limits["requests-limit"], 2, "{limits}");
    }
    server.shutdown().await;
}

/// `--mock-provider` points the plugin at the bundled mock (whose base URL
/// ends in `/v1`) with a generated key.
async fn bundled_mock_provider(provider: Provider) {
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("a", "hello")]);
    let out = ws.run(&jobs, &["--plugin", provider.plugin(), "--mock-provider"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result("a")["batchllm"]["output"], "echo: hello");
}

/// Answers with no content (the budget spent on thinking, a refusal or a
/// safety stop, a blocked prompt): `no_content`, tried once, the reason in
/// the message, the billed tokens and the provider's body in the record.
async fn answers_without_content(provider: Provider) {
    let server = mock(|_| {}).await;
    let cases: &[(&str, &str)] = match provider {
        Provider::Anthropic => &[
            ("empty", "stop_reason \"max_tokens\" (the output budget was spent before any text"),
            ("filtered", "the model refused (stop_reason \"refusal\")"),
            ("null", "stop_reason \"end_turn\""),
        ],
        Provider::Gemini => &[
            ("empty", "finishReason \"MAX_TOKENS\" (the output budget was spent before any text"),
            ("filtered", "finishReason \"SAFETY\" (withheld by the safety filters)"),
            ("blocked", "the prompt was blocked (blockReason \"SAFETY\")"),
            ("no-choices", "the response has no candidates"),
        ],
    };
    let lines: Vec<String> =
        cases.iter().map(|(kind, _)| job(kind, &format!("[[mock:answer={kind}]] say something"))).collect();
    let (out, _) = run(provider, &server, &lines, &["--max-attempts", "3"], API_KEY).await;
    assert_eq!(out.code, 1, "{provider:?}: {}", out.stderr);
    for (kind, reason) in cases {
        let r = out.result(kind);
        let context = format!("{provider:?} {kind}: {r}");
        assert_eq!(r["error"]["code"], "no_content", "{context}");
        assert_eq!(r["batchllm"]["attempts"], 1, "{context}: not retried");
        assert_eq!(r["response"]["status_code"], 200, "{context}");
        let message = r["error"]["message"].as_str().expect("message");
        assert!(message.starts_with(&format!("no content: {reason}")), "{context}");
        assert!(r["batchllm"]["usage"]["input_tokens"].as_u64() > Some(0), "{context}: billed tokens kept");
    }
    let spent = out.result("empty");
    assert!(spent["batchllm"]["usage"]["output_tokens"].as_u64() > Some(0), "{provider:?}: {spent}");
    assert_eq!(provider.requests(&server).len(), cases.len(), "{provider:?}: one request each");
    server.shutdown().await;
}

/// One test per scenario of the table and per shared check, for each provider.
macro_rules! provider_suite {
    ($module:ident, $provider:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn success_usage_and_metadata() {
                success_and_usage($provider).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn wrong_key() {
                wrong_key_is_auth($provider).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rate_window() {
                rate_window_is_respected($provider).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mock_provider_flag() {
                bundled_mock_provider($provider).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_content() {
                answers_without_content($provider).await;
            }

            provider_suite!(@scenarios $provider; overloaded, overloaded_then_success, rate_limited_then_success,
                too_large, quota_exhausted, auth, client_error);
        }
    };
    (@scenarios $provider:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                scenario($provider, stringify!($name)).await;
            }
        )*
    };
}

provider_suite!(anthropic, Provider::Anthropic);
provider_suite!(gemini, Provider::Gemini);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_prompt_cache_tokens_are_accounted() {
    let server = mock(|_| {}).await;
    let params =
        json!({"system": [{"type": "text", "text": "d".repeat(2000), "cache_control": {"type": "ephemeral"}}]});
    let lines: Vec<String> = (0..3)
        .map(|i| json!({"id": format!("c{i}"), "prompt": format!("question {i}"), "params": params}).to_string())
        .collect();
    let (out, _) = run(Provider::Anthropic, &server, &lines, &["--concurrency", "1"], API_KEY).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let usage = |id: &str| out.result(id)["batchllm"]["usage"].clone();
    // The first request writes the 500-token prefix, the others read it;
    // input always counts the whole prompt: 500 + 3 + 2 × 4 = 511.
    assert_eq!(usage("c0")["cache_write_tokens"], 500, "{}", usage("c0"));
    assert_eq!(usage("c0")["cached_input_tokens"], 0);
    for id in ["c1", "c2"] {
        assert_eq!(usage(id)["cached_input_tokens"], 500, "{}", usage(id));
        assert_eq!(usage(id)["cache_write_tokens"], 0);
        assert_eq!(usage(id)["input_tokens"], 511);
    }
    server.shutdown().await;
}

/// The cache configuration of the lifecycle tests.
fn cache_config(ttl: f64, renew_before: f64, keep: bool) -> String {
    let cache =
        json!({"contents": "d".repeat(4000), "ttl_seconds": ttl, "renew_before_seconds": renew_before, "keep": keep});
    format!("cache={cache}")
}

/// Requests to the cache API, by method.
fn cache_ops(server: &MockServer, method: &str) -> Vec<LoggedRequest> {
    server.requests().into_iter().filter(|r| r.path.contains("/cachedContents") && r.method == method).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_cache_lifecycle_across_20_workers() {
    const TTL: f64 = 2.0;
    const RENEW_BEFORE: f64 = 1.5;
    // 400 items at 50 ms each over 20 workers: about a second of traffic,
    // so the cache (renewed when less than 1.5 s of its 2 s are left) must
    // be renewed at least once, and must never be used once expired.
    let server = mock(|c| c.latency_ms = 50).await;
    let lines: Vec<String> = (0..400).map(|i| job(&format!("item-{i}"), &format!("question {i}"))).collect();
    let config = cache_config(TTL, RENEW_BEFORE, false);
    let extra = ["--concurrency", "20", "--plugin-config", config.as_str()];
    let (out, _) = run(Provider::Gemini, &server, &lines, &extra, API_KEY).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.results.len(), 400);

    let creates = cache_ops(&server, "POST");
    assert_eq!(creates.len(), 1, "exactly one cache for the whole run: {creates:?}");
    let created = &creates[0];
    assert_eq!(created.status, 200);
    assert_eq!(created.body["ttl"], "2s");
    assert_eq!(created.body["model"], "models/gemini-2.5-flash");
    let name = created.response_body["name"].as_str().expect("cache name").to_owned();
    let cached_tokens = created.response_body["usageMetadata"]["totalTokenCount"].as_u64().expect("tokens");
    assert_eq!(cached_tokens, 1004);

    let generated = Provider::Gemini.requests(&server);
    assert_eq!(generated.len(), 400, "one request per item, none failed on an expired cache");
    for q in &generated {
        assert_eq!(q.status, 200, "{q:?}");
        assert_eq!(q.body["cachedContent"], name.as_str(), "every request references the cache");
    }

    let renewals = cache_ops(&server, "PATCH");
    assert!(!renewals.is_empty(), "a run longer than ttl - renew_before renews the cache");
    let min_gap_ms = ((TTL - RENEW_BEFORE) * 1000.0) as u64 - 100;
    let mut previous = created.at_ms;
    for patch in &renewals {
        assert_eq!(patch.status, 200, "{patch:?}");
        assert_eq!(patch.path, format!("/v1beta/{name}"));
        assert_eq!(patch.body, json!({"ttl": "2s"}));
        // A renewal comes only once the previous expiry is within the
        // margin, so two renewals of the same expiry (racing workers) would
        // show up as a gap shorter than ttl - renew_before.
        assert!(patch.at_ms >= previous + min_gap_ms, "renewals too close together: {renewals:?}");
        assert!(patch.at_ms < previous + (TTL * 1000.0) as u64, "renewed before the expiry: {renewals:?}");
        previous = patch.at_ms;
    }

    let deletes = cache_ops(&server, "DELETE");
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0].path, format!("/v1beta/{name}"));
    assert_eq!(deletes[0].status, 200);
    assert!(generated.iter().all(|q| q.seq < deletes[0].seq), "deleted after the last use");
    // With 20 busy workers a renewal follows each expiry's margin closely:
    // about one per (ttl - renew_before) of traffic, and never more.
    let traffic = generated.iter().map(|q| q.at_ms).max().unwrap_or(0) - created.at_ms;
    assert!(renewals.len() as u64 >= traffic / (min_gap_ms + 300), "{} renewals in {traffic} ms", renewals.len());
    let span = deletes[0].at_ms - created.at_ms;
    assert!((renewals.len() as u64) <= span / min_gap_ms + 1, "{} renewals in {span} ms", renewals.len());

    for r in &out.results {
        let usage = &r["batchllm"]["usage"];
        assert_eq!(usage["cached_input_tokens"], cached_tokens, "{r}");
        assert!(usage["input_tokens"].as_u64().is_some_and(|n| n > cached_tokens), "{r}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_cache_kept_when_asked_and_failed_create_aborts() {
    let server = mock(|_| {}).await;
    let lines: Vec<String> = (0..5).map(|i| job(&format!("k{i}"), "question")).collect();
    let config = cache_config(3600.0, 300.0, true);
    let (out, _) = run(Provider::Gemini, &server, &lines, &["--plugin-config", config.as_str()], API_KEY).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(cache_ops(&server, "POST").len(), 1);
    assert!(cache_ops(&server, "PATCH").is_empty(), "an hour-long cache needs no renewal");
    assert!(cache_ops(&server, "DELETE").is_empty(), "cache.keep leaves it in place");

    // A cache that cannot be created stops the run before any item is sent.
    let (out, _) = run(Provider::Gemini, &server, &lines, &["--plugin-config", config.as_str()], "sk-wrong").await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(Provider::Gemini.requests(&server).len(), 5, "no item of the second run was sent");
    server.shutdown().await;
}

#[test]
fn the_table_covers_every_shared_class() {
    let codes: Vec<Option<&str>> = SCENARIOS.iter().map(|s| s.code).collect();
    for code in ["overloaded", "too_large", "quota_exhausted", "auth", "client_error"] {
        assert!(codes.contains(&Some(code)), "{code}");
    }
    assert!(SCENARIOS.iter().any(|s| s.rate_limit_retries > 0));
}
