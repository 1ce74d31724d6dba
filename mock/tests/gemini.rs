//! The Gemini endpoints over loopback: generateContent shapes and usage,
//! RESOURCE_EXHAUSTED bodies, credentials, and the cachedContents lifecycle.

use std::time::Duration;

use batchllm_mock::{MockConfig, MockServer};
use serde_json::{Value, json};

const KEY: &str = "gm-test";

async fn start(config: MockConfig) -> MockServer {
    MockServer::start(MockConfig { api_key: Some(KEY.into()), ..config }).await.expect("mock server starts")
}

async fn call(server: &MockServer, method: &str, path: &str, body: Option<&Value>, key: Option<&str>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", server.origin()));
    if let Some(key) = key {
        request = request.header("x-goog-api-key", key);
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    let response = request.send().await.expect("answered");
    assert!(response.headers().get("retry-after").is_none(), "Gemini sends no retry-after");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn ask(prompt: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]})
}

const GENERATE: &str = "/v1beta/models/gemini-test:generateContent";

#[tokio::test]
async fn generate_content_and_credentials() {
    let server = start(MockConfig::default()).await;
    let (status, json) = call(&server, "POST", GENERATE, Some(&ask("hello there")), Some(KEY)).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["candidates"][0]["content"]["parts"][0]["text"], "echo: hello there");
    assert_eq!(json["candidates"][0]["finishReason"], "STOP");
    assert_eq!(json["usageMetadata"], json!({"promptTokenCount": 7, "candidatesTokenCount": 5, "totalTokenCount": 12}));
    let (status, _) =
        call(&server, "POST", "/v1/models/gemini-test:generateContent?key=gm-test", Some(&ask("x")), None).await;
    assert_eq!(status, 200, "v1 and ?key= work too");
    let (status, json) = call(&server, "POST", GENERATE, Some(&ask("x")), Some("wrong")).await;
    assert_eq!((status, json["error"]["details"][0]["reason"].as_str()), (400, Some("API_KEY_INVALID")));
    let (status, json) = call(&server, "POST", GENERATE, Some(&ask("x")), None).await;
    assert_eq!((status, json["error"]["status"].as_str()), (403, Some("PERMISSION_DENIED")));
    server.shutdown().await;
}

#[tokio::test]
async fn resource_exhausted_and_overloaded() {
    let server = start(MockConfig { rpm: Some(4), window_ms: 60_000, ..Default::default() }).await;
    let (status, json) = call(&server, "POST", GENERATE, Some(&ask("[[mock:status=429]]")), Some(KEY)).await;
    assert_eq!((status, json["error"]["status"].as_str()), (429, Some("RESOURCE_EXHAUSTED")));
    let quota_id = json["error"]["details"][0]["violations"][0]["quotaId"].as_str().unwrap_or_default().to_owned();
    assert!(quota_id.contains("PerMinute"), "{quota_id}");
    assert_eq!(json["error"]["details"][1]["retryDelay"], "1s");
    let (status, json) = call(&server, "POST", GENERATE, Some(&ask("[[mock:quota-per-day]]")), Some(KEY)).await;
    assert_eq!(status, 429);
    let quota_id = json["error"]["details"][0]["violations"][0]["quotaId"].as_str().unwrap_or_default().to_owned();
    assert!(quota_id.contains("PerDay"), "{quota_id}");
    let (status, json) = call(&server, "POST", GENERATE, Some(&ask("[[mock:status=503]]")), Some(KEY)).await;
    assert_eq!((status, json["error"]["status"].as_str()), (503, Some("UNAVAILABLE")));
    call(&server, "POST", GENERATE, Some(&ask("fourth")), Some(KEY)).await;
    let (status, json) = call(&server, "POST", GENERATE, Some(&ask("over")), Some(KEY)).await;
    assert_eq!(status, 429);
    assert!(json["error"]["details"][1]["retryDelay"].as_str().is_some_and(|d| d.ends_with('s')));
    server.shutdown().await;
}

#[tokio::test]
async fn cached_contents_lifecycle() {
    let server = start(MockConfig::default()).await;
    let create = json!({"model": "models/gemini-test", "ttl": "0.4s",
        "contents": [{"role": "user", "parts": [{"text": "d".repeat(400)}]}]});
    let (status, cache) = call(&server, "POST", "/v1beta/cachedContents", Some(&create), Some(KEY)).await;
    assert_eq!(status, 200, "{cache}");
    let name = cache["name"].as_str().expect("name").to_owned();
    assert_eq!(cache["usageMetadata"]["totalTokenCount"], 104);
    let mut body = ask("q");
    body["cachedContent"] = name.clone().into();
    let (status, json) = call(&server, "POST", GENERATE, Some(&body), Some(KEY)).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["usageMetadata"]["cachedContentTokenCount"], 104);
    assert_eq!(json["usageMetadata"]["promptTokenCount"], 104 + 5);

    let (status, patched) =
        call(&server, "PATCH", &format!("/v1beta/{name}"), Some(&json!({"ttl": "0.4s"})), Some(KEY)).await;
    assert_eq!(status, 200);
    assert!(patched["expireTime"].as_str() > cache["expireTime"].as_str());
    tokio::time::sleep(Duration::from_millis(450)).await;
    let (status, json) = call(&server, "POST", GENERATE, Some(&body), Some(KEY)).await;
    assert_eq!(
        (status, json["error"]["message"].as_str()),
        (403, Some("CachedContent not found (or permission denied)"))
    );

    // A TTL long enough that a loaded machine cannot expire it before the
    // list and the delete below.
    let mut lasting = create.clone();
    lasting["ttl"] = "60s".into();
    let (_, second) = call(&server, "POST", "/v1beta/cachedContents", Some(&lasting), Some(KEY)).await;
    let second = second["name"].as_str().expect("name").to_owned();
    let (status, listed) = call(&server, "GET", "/v1beta/cachedContents", None, Some(KEY)).await;
    assert_eq!((status, listed["cachedContents"].as_array().map(Vec::len)), (200, Some(1)));
    let (status, deleted) = call(&server, "DELETE", &format!("/v1beta/{second}"), None, Some(KEY)).await;
    assert_eq!((status, deleted), (200, json!({})));
    let (status, _) = call(&server, "GET", &format!("/v1beta/{second}"), None, Some(KEY)).await;
    assert_eq!(status, 403);
    let methods: Vec<String> = server.requests().iter().map(|r| format!("{} {}", r.method, r.status)).collect();
    assert_eq!(
        methods,
        ["POST 200", "POST 200", "PATCH 200", "POST 403", "POST 200", "GET 200", "DELETE 200", "GET 403"]
    );
    server.shutdown().await;
}
