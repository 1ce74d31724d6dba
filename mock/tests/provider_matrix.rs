//! The provider behaviours of the rate-control and reliability work over
//! loopback, on all three APIs: how limits are signalled (or not), fixed
//! windows, capacity dips, persistent 429s, injected headers and
//! degenerate answers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use batchllm_mock::{CapacityChange, MockConfig, MockServer, RateProfile, RetryAfter, WindowKind};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// The three APIs the mock speaks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Api {
    OpenAi,
    Anthropic,
    Gemini,
}

const APIS: [Api; 3] = [Api::OpenAi, Api::Anthropic, Api::Gemini];

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    json: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn headers_named(&self, name: &str) -> Vec<String> {
        self.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
    }

    /// Whether any `x-ratelimit-*` or `anthropic-ratelimit-*` header came.
    fn has_limit_headers(&self) -> bool {
        self.headers.keys().any(|name| name.as_str().contains("ratelimit"))
    }
}

async fn start(config: MockConfig) -> MockServer {
    MockServer::start(config).await.expect("mock server starts")
}

async fn ask(server: &MockServer, api: Api, prompt: &str) -> Answer {
    let client = reqwest::Client::new();
    let request = match api {
        Api::OpenAi => client
            .post(format!("{}/chat/completions", server.base_url()))
            .body(json!({"model": "m", "messages": [{"role": "user", "content": prompt}]}).to_string()),
        Api::Anthropic => {
            client.post(format!("{}/v1/messages", server.origin())).header("anthropic-version", "2023-06-01").body(
                json!({"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]}).to_string(),
            )
        }
        Api::Gemini => client
            .post(format!("{}/v1beta/models/g:generateContent", server.origin()))
            .body(json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]}).to_string()),
    };
    let response = request.header("content-type", "application/json").send().await.expect("answered");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, headers, json }
}

/// The `retryDelay` of a Gemini 429, if it has a `RetryInfo`.
fn retry_delay(json: &Value) -> Option<&str> {
    json["error"]["details"].as_array()?.iter().find_map(|d| d["retryDelay"].as_str())
}

fn limited(profile: RateProfile, rpm: u32, window_ms: u64) -> MockConfig {
    let mut config = MockConfig { rpm: Some(rpm), window_ms, ..Default::default() };
    profile.apply(&mut config);
    config
}

#[tokio::test]
async fn row_a_announces_and_tells_the_truth() {
    for api in APIS {
        let server = start(limited(RateProfile::A, 1, 60_000)).await;
        let ok = ask(&server, api, "hi").await;
        assert_eq!(ok.status, 200, "{api:?}");
        assert_eq!(ok.has_limit_headers(), api != Api::Gemini, "{api:?}: Gemini never sends limit headers");
        let refused = ask(&server, api, "hi").await;
        assert_eq!(refused.status, 429, "{api:?}");
        match api {
            Api::OpenAi => {
                let wait_ms: u64 = refused.header("retry-after-ms").and_then(|v| v.parse().ok()).expect("exact wait");
                // A minute less the time since the first request (generous
                // for a loaded machine).
                assert!((50_000..=60_000).contains(&wait_ms), "{wait_ms}");
                let secs: u64 = refused.header("retry-after").and_then(|v| v.parse().ok()).expect("whole seconds");
                assert_eq!(secs, wait_ms.div_ceil(1000));
                let message = refused.json["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains("Limit 1, Used 1"), "{message}");
            }
            Api::Anthropic => {
                let secs: u64 = refused.header("retry-after").and_then(|v| v.parse().ok()).expect("whole seconds");
                assert!((50..=60).contains(&secs), "{secs}");
                assert_eq!(refused.header("anthropic-ratelimit-requests-remaining"), Some("0"));
            }
            Api::Gemini => {
                let delay = retry_delay(&refused.json).and_then(|d| d.strip_suffix('s')?.parse::<f64>().ok());
                assert!(delay.is_some_and(|d| (50.0..=60.0).contains(&d)), "{delay:?}");
            }
        }
    }
}

#[tokio::test]
async fn row_b_is_bare_with_a_constant_retry_after() {
    for api in APIS {
        let server = start(limited(RateProfile::B, 1, 60_000)).await;
        let ok = ask(&server, api, "hi").await;
        assert_eq!(ok.status, 200, "{api:?}");
        assert!(!ok.has_limit_headers(), "{api:?}: no budgets announced");
        let refused = ask(&server, api, "hi").await;
        assert_eq!(refused.status, 429, "{api:?}");
        assert!(!refused.has_limit_headers(), "{api:?}");
        match api {
            Api::OpenAi => {
                // One second, though the truth is a minute; no precise header.
                assert_eq!(refused.header("retry-after"), Some("1"));
                assert_eq!(refused.header("retry-after-ms"), None);
                assert_eq!(
                    refused.json["error"]["message"],
                    "Rate limit reached for requests. Please try again in 1s."
                );
                assert_eq!(refused.json["error"]["code"], "rate_limit_exceeded");
            }
            Api::Anthropic => {
                assert_eq!(refused.header("retry-after"), Some("1"));
                let message = refused.json["error"]["message"].as_str().unwrap_or_default();
                assert!(!message.contains("1 requests"), "the limit is not stated: {message}");
            }
            Api::Gemini => assert_eq!(retry_delay(&refused.json), Some("1s")),
        }
    }
}

#[tokio::test]
async fn row_c_gives_no_hint_at_all() {
    for api in APIS {
        let server = start(limited(RateProfile::C, 1, 60_000)).await;
        assert_eq!(ask(&server, api, "hi").await.status, 200);
        let refused = ask(&server, api, "hi").await;
        assert_eq!(refused.status, 429, "{api:?}");
        assert_eq!(refused.header("retry-after"), None, "{api:?}");
        assert_eq!(refused.header("retry-after-ms"), None, "{api:?}");
        assert!(!refused.has_limit_headers(), "{api:?}");
        assert_eq!(retry_delay(&refused.json), None, "{api:?}");
        assert_eq!(refused.json["error"]["details"][0]["violations"][0]["quotaId"].is_string(), api == Api::Gemini);
    }
}

#[tokio::test]
async fn row_d_windows_turn_over_on_the_clock() {
    // Truthful waits make the boundary visible: now + wait is a multiple of
    // the window on the wall clock, whatever the phase of the first request.
    // Slow requests (a loaded machine) may cross a boundary, so keep asking
    // until two land in one window.
    let window_ms = 2_000;
    let mut config = limited(RateProfile::D, 2, window_ms);
    config.retry_after = RetryAfter::Truthful;
    let server = start(config).await;
    let mut refused = None;
    for _ in 0..30 {
        let answer = ask(&server, Api::OpenAi, "hi").await;
        if answer.status == 429 {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("the third request of a window is refused");
    let wait_ms: u64 = refused.header("retry-after-ms").and_then(|v| v.parse().ok()).expect("exact wait");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis();
    // The answer took a little while to arrive, so now + wait falls just
    // after the boundary (or, with rounding, a hair before it).
    let off = (now_ms + u128::from(wait_ms)) % u128::from(window_ms);
    assert!(!(300..=1_950).contains(&off), "wait {wait_ms} ms ends {off} ms off a calendar boundary");
    tokio::time::sleep(Duration::from_millis(wait_ms + 20)).await;
    // The new window is empty: two fit at once, however recent the last ones.
    assert_eq!(ask(&server, Api::OpenAi, "hi").await.status, 200);
    assert_eq!(ask(&server, Api::OpenAi, "hi").await.status, 200);
    assert_eq!(ask(&server, Api::OpenAi, "hi").await.status, 429);
}

#[tokio::test]
async fn row_e_is_token_bound_and_says_only_tokens() {
    let mut config = MockConfig { tpm: Some(100), window_ms: 60_000, ..Default::default() };
    RateProfile::E.apply(&mut config);
    let server = start(config).await;
    let long = "x".repeat(200); // 50 + 4 + 16 = 70 tokens charged
    assert_eq!(ask(&server, Api::OpenAi, &long).await.status, 200);
    let refused = ask(&server, Api::OpenAi, &long).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json["error"]["type"], "tokens");
    assert_eq!(refused.json["error"]["message"], "Rate limit reached for tokens.");
    assert_eq!(refused.header("retry-after"), None);
    assert!(!refused.has_limit_headers());
    // A short request still fits in what is left.
    assert_eq!(ask(&server, Api::OpenAi, "hi").await.status, 200);
}

#[tokio::test]
async fn row_f_capacity_dips_then_recovers() {
    // Long enough for three requests on a loaded machine, short enough to
    // wait out.
    let dip_ms = 3_000;
    let dip = CapacityChange { from: Duration::ZERO, duration: Duration::from_millis(dip_ms), share: 0.5 };
    let config = MockConfig { rpm: Some(4), window_ms: 60_000, capacity: vec![dip], ..Default::default() };
    let server = start(config).await;
    server.reset(); // the schedule counts from here
    assert_eq!(ask(&server, Api::OpenAi, "hi").await.status, 200);
    let second = ask(&server, Api::OpenAi, "hi").await;
    assert_eq!(second.header("x-ratelimit-limit-requests"), Some("2"), "the limit in force is announced");
    let refused = ask(&server, Api::OpenAi, "hi").await;
    assert_eq!(refused.status, 429, "half of 4 per window");
    let wait_ms: u64 = refused.header("retry-after-ms").and_then(|v| v.parse().ok()).expect("exact wait");
    assert!(wait_ms <= dip_ms, "the truth is the end of the dip, not the window: {wait_ms}");
    tokio::time::sleep(Duration::from_millis(wait_ms + 20)).await;
    let after = ask(&server, Api::OpenAi, "hi").await;
    assert_eq!(after.status, 200);
    assert_eq!(after.header("x-ratelimit-limit-requests"), Some("4"));
    // A reset restarts the schedule: the dip is back.
    server.reset();
    assert_eq!(ask(&server, Api::OpenAi, "hi").await.header("x-ratelimit-limit-requests"), Some("2"));
}

#[tokio::test]
async fn persistent_429_refuses_everything_on_every_api() {
    let server = start(MockConfig { always_429: true, retry_after: RetryAfter::Fixed(2), ..Default::default() }).await;
    for api in APIS {
        for _ in 0..3 {
            let answer = ask(&server, api, "hi").await;
            assert_eq!(answer.status, 429, "{api:?}");
            if api == Api::Gemini {
                assert_eq!(retry_delay(&answer.json), Some("2s"));
            } else {
                assert_eq!(answer.header("retry-after"), Some("2"), "{api:?}");
            }
        }
    }
    assert_eq!(server.status_counts().get(&429), Some(&9));
    assert_eq!(server.pace().succeeded, 0);
}

#[tokio::test]
async fn extra_headers_on_every_answer_and_per_prompt() {
    let config = MockConfig {
        rpm: Some(1),
        extra_headers: vec![
            ("x-ratelimit-reset-requests".into(), "99999999999999999999s".into()),
            ("x-extra".into(), "config".into()),
        ],
        ..Default::default()
    };
    let server = start(config).await;
    for api in APIS {
        server.reset();
        let ok = ask(&server, api, "hi").await;
        assert_eq!(ok.status, 200, "{api:?}");
        assert_eq!(ok.header("x-ratelimit-reset-requests"), Some("99999999999999999999s"), "{api:?}: replaced");
        assert_eq!(ok.header("x-extra"), Some("config"), "{api:?}");
        // Markers add to (and override) the configured ones, on a 429 of
        // the window too; a name given twice is sent twice.
        let prompt = "[[mock:header=anthropic-ratelimit-requests-reset:2999-01-01T00:00:00Z]]\
            [[mock:header=x-extra:marker]][[mock:header=retry-after:soon]][[mock:header=retry-after:-1]]";
        let refused = ask(&server, api, prompt).await;
        assert_eq!(refused.status, 429, "{api:?}");
        assert_eq!(refused.header("anthropic-ratelimit-requests-reset"), Some("2999-01-01T00:00:00Z"), "{api:?}");
        assert_eq!(refused.header("x-extra"), Some("marker"), "{api:?}");
        assert_eq!(refused.headers_named("retry-after"), ["soon", "-1"], "{api:?}");
    }
    // Even a 404 carries the configured headers.
    let missing = reqwest::Client::new().get(format!("{}/nowhere", server.base_url())).send().await.expect("answered");
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(missing.headers().get("x-extra").map(|v| v.as_bytes()), Some(&b"config"[..]));
}

#[tokio::test]
async fn bad_extra_headers_are_refused_by_name() {
    let config = MockConfig { extra_headers: vec![("retry after".into(), "1".into())], ..Default::default() };
    let error = MockServer::start(config).await.expect_err("not a header name");
    assert!(error.to_string().contains("\"retry after\""), "{error}");
}

#[tokio::test]
async fn degenerate_answers_on_every_api() {
    let server = start(MockConfig::default()).await;
    for api in APIS {
        let empty = ask(&server, api, "[[mock:answer=empty]]").await;
        assert_eq!(empty.status, 200, "{api:?}");
        let filtered = ask(&server, api, "[[mock:answer=filtered]]").await;
        assert_eq!(filtered.status, 200, "{api:?}");
        let (empty, filtered) = (&empty.json, &filtered.json);
        match api {
            Api::OpenAi => {
                assert_eq!(empty["choices"][0]["message"]["content"], "");
                assert_eq!(empty["choices"][0]["finish_reason"], "length");
                assert_eq!(empty["usage"]["completion_tokens_details"]["reasoning_tokens"], 16);
                assert_eq!(filtered["choices"][0]["finish_reason"], "content_filter");
                let none = ask(&server, api, "[[mock:answer=no-choices]]").await.json;
                assert_eq!(none["choices"], json!([]));
                let null = ask(&server, api, "[[mock:answer=null]]").await.json;
                assert_eq!(null["choices"][0]["message"]["content"], Value::Null);
            }
            Api::Anthropic => {
                assert_eq!((empty["content"].clone(), empty["stop_reason"].clone()), (json!([]), json!("max_tokens")));
                assert_eq!(empty["usage"]["output_tokens"], 64);
                assert_eq!(filtered["stop_reason"], "refusal");
            }
            Api::Gemini => {
                assert_eq!(empty["candidates"][0]["finishReason"], "MAX_TOKENS");
                assert!(empty["candidates"][0]["content"].get("parts").is_none());
                assert_eq!(empty["usageMetadata"]["thoughtsTokenCount"], 16);
                assert_eq!(filtered["candidates"][0]["finishReason"], "SAFETY");
                let blocked = ask(&server, api, "[[mock:answer=blocked]]").await.json;
                assert_eq!(blocked["promptFeedback"]["blockReason"], "SAFETY");
                assert!(blocked.get("candidates").is_none());
            }
        }
    }
    // An explicit fault wins over the shape.
    assert_eq!(ask(&server, Api::OpenAi, "[[mock:answer=empty]][[mock:status=503]]").await.status, 503);
}

#[tokio::test]
async fn pace_shows_the_longest_gap_between_successes() {
    let server = start(MockConfig::default()).await;
    ask(&server, Api::OpenAi, "hi").await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    ask(&server, Api::OpenAi, "hi").await;
    let pace = server.pace();
    assert_eq!(pace.succeeded, 2);
    assert!(pace.longest_gap >= Duration::from_millis(150), "{pace:?}");
    server.reset();
    assert_eq!(server.pace().succeeded, 0);
}

#[tokio::test]
async fn fixed_windows_can_be_set_directly() {
    let config = MockConfig { rpm: Some(1), window_ms: 60_000, window_kind: WindowKind::Fixed, ..Default::default() };
    let server = start(config).await;
    assert_eq!(ask(&server, Api::Anthropic, "hi").await.status, 200);
    let refused = ask(&server, Api::Anthropic, "hi").await;
    let reset = refused.header("anthropic-ratelimit-requests-reset").expect("announced");
    // The reset is the next whole minute of the wall clock (give or take
    // the moments between deciding and writing the header).
    assert!(reset.contains(":00.") || reset.contains(":59."), "{reset}");
}

#[tokio::test]
async fn stats_route_counts_what_a_client_provoked() {
    let server = start(limited(RateProfile::B, 1, 60_000)).await;
    ask(&server, Api::OpenAi, "hi").await;
    ask(&server, Api::OpenAi, "hi").await;
    ask(&server, Api::OpenAi, "hi").await;
    let text =
        reqwest::get(format!("{}/_mock/stats", server.origin())).await.expect("answered").text().await.expect("body");
    let stats: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(stats["status_counts"], json!({"200": 1, "429": 2}));
    assert_eq!(stats["succeeded"], 1);
    assert!(stats["longest_gap_ms"].is_u64());
}
