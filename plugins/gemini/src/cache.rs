//! The explicit context cache: created once in `prepare`, shared through the
//! run state, renewed before it expires by exactly one worker, deleted in
//! `cleanup` unless `keep`.
//!
//! Run-state keys:
//! - [`NAME_KEY`]: the cache's resource name (`cachedContents/…`);
//! - [`EXPIRE_KEY`]: its current `expireTime` (RFC 3339, as the API gave it);
//! - [`RENEWING_KEY`]: the `expireTime` whose renewal a worker has claimed.
//!
//! Renewal: a worker that finds the cache expiring within
//! `renew_before_seconds` tries to move [`RENEWING_KEY`] to the current
//! `expireTime` with compare-and-swap. Only one worker can win that swap for
//! a given expiry; it PATCHes the TTL and stores the new `expireTime`, which
//! starts the next round. The others go on using the cache, which is still
//! live. A failed PATCH releases the claim so another worker may try; a
//! PATCH that finds the cache gone (it expired during a stall) creates a new
//! one in its place.
//!
//! Everything here goes through [`Env`], so the logic is tested natively with
//! a fake run state, clock and server.

use crate::config::{CacheConfig, Config};
use crate::request;
use batchllm_plugin_sdk::http::{self, HttpError, Request, Response};
use batchllm_plugin_sdk::serde_json::{self, Map, Value, json};
use batchllm_plugin_sdk::time::parse_rfc3339_ms;
use batchllm_plugin_sdk::{StrategyError, classify};

/// A non-2xx answer of the Gemini API, classified as `generateContent`'s.
fn classify_error(status: u16, headers: &[(String, String)], body: &[u8]) -> StrategyError {
    batchllm_classify::gemini::classify_error(status, headers, body).into()
}

/// Run-state key of the cache's resource name.
pub const NAME_KEY: &str = "gemini.cache.name";
/// Run-state key of the cache's current `expireTime`.
pub const EXPIRE_KEY: &str = "gemini.cache.expire_time";
/// Run-state key of the `expireTime` whose renewal a worker has claimed.
pub const RENEWING_KEY: &str = "gemini.cache.renewing";

/// Time allowed for a cache request made outside an attempt (`prepare`,
/// `cleanup`); the host clamps it anyway.
pub const ADMIN_TIMEOUT_MS: u64 = 30_000;

/// What the cache logic needs from the world: the run state, HTTP and a
/// clock. The plugin implements it with the host imports.
pub trait Env {
    /// `run-state-get`.
    fn get(&self, key: &str) -> Option<String>;
    /// `run-state-set` (some value).
    fn set(&self, key: &str, value: &str);
    /// `run-state-compare-and-swap`.
    fn compare_and_swap(&self, key: &str, expected: Option<&str>, new: Option<&str>) -> bool;
    /// `http.send`.
    fn send(&self, request: &Request) -> Result<Response, HttpError>;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> Option<i64>;
    /// A warning for the host's log.
    fn warn(&self, message: String);
}

/// The cache as a request uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCache {
    /// The resource name, `cachedContents/…`.
    pub name: String,
    /// The current `expireTime`.
    pub expire_time: String,
}

/// A TTL in the protobuf Duration form the API takes: `"3600s"`, `"1.5s"`.
pub fn ttl_string(seconds: f64) -> String {
    let millis = (seconds * 1000.0).round() as u64;
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{}.{:03}s", millis / 1000, millis % 1000)
    }
}

/// The body of `POST /v1beta/cachedContents`.
pub fn create_body(model: &str, cache: &CacheConfig) -> Value {
    let mut body = Map::new();
    body.insert("model".to_owned(), format!("models/{model}").into());
    for (key, value) in
        [("contents", &cache.contents), ("systemInstruction", &cache.system_instruction), ("tools", &cache.tools)]
    {
        if let Some(value) = value {
            body.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(name) = &cache.display_name {
        body.insert("displayName".to_owned(), name.clone().into());
    }
    body.insert("ttl".to_owned(), ttl_string(cache.ttl_seconds).into());
    Value::Object(body)
}

/// `name` and `expireTime` from a `CachedContent` answer.
pub fn parse_cached_content(status: u16, body: &[u8]) -> Result<LiveCache, StrategyError> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        StrategyError::invalid_response(format!("cachedContents answer is not valid JSON: {e}"))
            .with_http_status(status)
    })?;
    let field = |key: &str| json.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    match (field("name"), field("expireTime")) {
        (Some(name), Some(expire_time)) if parse_rfc3339_ms(&expire_time).is_some() => {
            Ok(LiveCache { name, expire_time })
        }
        _ => Err(StrategyError::invalid_response(format!(
            "cachedContents answer lacks a name or a valid expireTime: {}",
            batchllm_plugin_sdk::text::excerpt(&json.to_string(), 512)
        ))
        .with_http_status(status)),
    }
}

/// Creates the cache (in `prepare`) and records it in the run state.
pub fn create(env: &dyn Env, config: &Config, cache: &CacheConfig) -> Result<LiveCache, StrategyError> {
    let body = create_body(&config.common.model, cache);
    let request = json_request("POST", request::url(config, "/cachedContents"), config, &body);
    let live = send_for_cache(env, &request)?;
    env.set(NAME_KEY, &live.name);
    env.set(EXPIRE_KEY, &live.expire_time);
    Ok(live)
}

/// The cache recorded in the run state, renewed first when it expires within
/// the margin and this worker wins the renewal. `None` when no cache was
/// recorded.
pub fn current(env: &dyn Env, config: &Config, cache: &CacheConfig) -> Option<LiveCache> {
    let name = env.get(NAME_KEY)?;
    let expire_time = env.get(EXPIRE_KEY)?;
    let live = LiveCache { name, expire_time };
    if !needs_renewal(&live.expire_time, env.now_ms(), cache.renew_before_ms()) {
        return Some(live);
    }
    let claimed = env.get(RENEWING_KEY);
    if claimed.as_deref() == Some(live.expire_time.as_str())
        || !env.compare_and_swap(RENEWING_KEY, claimed.as_deref(), Some(&live.expire_time))
    {
        // Another worker renews this expiry; the cache is still live.
        return Some(live);
    }
    match renew(env, config, cache, &live.name) {
        Ok(renewed) => {
            env.set(EXPIRE_KEY, &renewed.expire_time);
            Some(LiveCache { name: live.name, expire_time: renewed.expire_time })
        }
        Err(e) if matches!(e.http_status, Some(403 | 404)) => match create(env, config, cache) {
            Ok(created) => {
                env.warn(format!("the context cache {} was gone; created {} instead", live.name, created.name));
                Some(created)
            }
            Err(e) => {
                env.warn(format!("re-creating the context cache {} failed: {}", live.name, e.message));
                env.compare_and_swap(RENEWING_KEY, Some(&live.expire_time), claimed.as_deref());
                Some(live)
            }
        },
        Err(e) => {
            env.warn(format!("renewing the context cache {} failed: {}", live.name, e.message));
            // Release the claim so that another worker may try again.
            env.compare_and_swap(RENEWING_KEY, Some(&live.expire_time), claimed.as_deref());
            Some(live)
        }
    }
}

/// Whether a cache expiring at `expire_time` must be renewed at `now_ms`.
/// An unreadable clock or timestamp never triggers a renewal.
pub fn needs_renewal(expire_time: &str, now_ms: Option<i64>, renew_before_ms: i64) -> bool {
    match (parse_rfc3339_ms(expire_time), now_ms) {
        (Some(expires), Some(now)) => expires.saturating_sub(now) <= renew_before_ms,
        _ => false,
    }
}

/// `PATCH /v1beta/{name}` with the configured TTL.
fn renew(env: &dyn Env, config: &Config, cache: &CacheConfig, name: &str) -> Result<LiveCache, StrategyError> {
    let body = json!({"ttl": ttl_string(cache.ttl_seconds)});
    let request = json_request("PATCH", request::url(config, &format!("/{name}")), config, &body);
    send_for_cache(env, &request)
}

/// Deletes the cache recorded in the run state (in `cleanup`). Returns the
/// name deleted, `None` when there was none.
pub fn delete(env: &dyn Env, config: &Config) -> Result<Option<String>, String> {
    let Some(name) = env.get(NAME_KEY) else { return Ok(None) };
    let mut request = json_request("DELETE", request::url(config, &format!("/{name}")), config, &Value::Null);
    request.body.clear();
    request.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
    let response = env.send(&request).map_err(|e| format!("deleting {name}: {}", e.message()))?;
    if !(200..300).contains(&response.status) && response.status != 404 {
        let e = classify_error(response.status, &response.headers, &response.body);
        return Err(format!("deleting {name}: {}", e.message));
    }
    Ok(Some(name))
}

fn json_request(method: &str, url: String, config: &Config, body: &Value) -> Request {
    http::json_request(method, &url, &request::headers(config), body, Some(ADMIN_TIMEOUT_MS))
}

fn send_for_cache(env: &dyn Env, request: &Request) -> Result<LiveCache, StrategyError> {
    let response = env.send(request).map_err(classify::from_http_error)?;
    if !(200..300).contains(&response.status) {
        let mut e = classify_error(response.status, &response.headers, &response.body);
        e.message = format!("{} {}: {}", request.method, request.url, e.message);
        return Err(e);
    }
    parse_cached_content(response.status, &response.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use batchllm_plugin_sdk::time::format_rfc3339_ms;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    /// A fake world: run state in a map, a settable clock, and a server
    /// that answers cache requests with `expireTime = now + ttl`.
    #[derive(Default)]
    struct Fake {
        state: RefCell<HashMap<String, String>>,
        now: Cell<i64>,
        sent: RefCell<Vec<(String, String, Value)>>,
        fail_patch: Cell<Option<u16>>,
        warnings: RefCell<Vec<String>>,
    }

    impl Env for Fake {
        fn get(&self, key: &str) -> Option<String> {
            self.state.borrow().get(key).cloned()
        }
        fn set(&self, key: &str, value: &str) {
            self.state.borrow_mut().insert(key.to_owned(), value.to_owned());
        }
        fn compare_and_swap(&self, key: &str, expected: Option<&str>, new: Option<&str>) -> bool {
            let mut state = self.state.borrow_mut();
            if state.get(key).map(String::as_str) != expected {
                return false;
            }
            match new {
                Some(v) => state.insert(key.to_owned(), v.to_owned()),
                None => state.remove(key),
            };
            true
        }
        fn send(&self, request: &Request) -> Result<Response, HttpError> {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            self.sent.borrow_mut().push((request.method.clone(), request.url.clone(), body.clone()));
            if let Some(status) = self.fail_patch.get().filter(|_| request.method == "PATCH") {
                return Ok(Response { status, headers: vec![], body: b"{}".to_vec() });
            }
            let name = format!("cachedContents/c{}", self.sent.borrow().iter().filter(|(m, _, _)| m == "POST").count());
            let ttl_ms = body["ttl"].as_str().and_then(|t| t.strip_suffix('s')).and_then(|t| t.parse::<f64>().ok());
            let expire = format_rfc3339_ms(self.now.get() + (ttl_ms.unwrap_or(0.0) * 1000.0) as i64);
            let answer = json!({"name": name, "expireTime": expire});
            Ok(Response { status: 200, headers: vec![], body: answer.to_string().into_bytes() })
        }
        fn now_ms(&self) -> Option<i64> {
            Some(self.now.get())
        }
        fn warn(&self, message: String) {
            self.warnings.borrow_mut().push(message);
        }
    }

    fn config() -> Config {
        Config::from_value(&json!({"base_url": "http://h:1", "model": "gemini-x",
            "cache": {"contents": "doc", "ttl_seconds": 10, "renew_before_seconds": 4}}))
        .unwrap()
    }

    fn methods(fake: &Fake) -> Vec<String> {
        fake.sent.borrow().iter().map(|(m, _, _)| m.clone()).collect()
    }

    #[test]
    fn ttl_strings() {
        assert_eq!(ttl_string(3600.0), "3600s");
        assert_eq!(ttl_string(1.5), "1.500s");
        assert_eq!(ttl_string(0.25), "0.250s");
    }

    #[test]
    fn create_records_the_cache() {
        let (fake, config) = (Fake::default(), config());
        fake.now.set(1_000_000);
        let cache = config.cache.clone().unwrap();
        let live = create(&fake, &config, &cache).unwrap();
        assert_eq!(live.name, "cachedContents/c1");
        assert_eq!(fake.get(NAME_KEY).as_deref(), Some("cachedContents/c1"));
        assert_eq!(fake.get(EXPIRE_KEY), Some(format_rfc3339_ms(1_010_000)));
        let (method, url, body) = fake.sent.borrow()[0].clone();
        assert_eq!((method.as_str(), url.as_str()), ("POST", "http://h:1/v1beta/cachedContents"));
        assert_eq!(body["model"], "models/gemini-x");
        assert_eq!(body["ttl"], "10s");
        assert_eq!(body["contents"][0]["parts"][0]["text"], "doc");
    }

    #[test]
    fn exactly_one_renewal_per_expiry() {
        let (fake, config) = (Fake::default(), config());
        let cache = config.cache.clone().unwrap();
        fake.now.set(0);
        create(&fake, &config, &cache).unwrap();
        // Far from expiry: nothing happens.
        fake.now.set(5_000);
        for _ in 0..5 {
            assert!(current(&fake, &config, &cache).is_some());
        }
        assert_eq!(methods(&fake), ["POST"]);
        // Within the margin: the first caller renews, the rest see the new expiry.
        fake.now.set(6_000);
        for _ in 0..5 {
            let live = current(&fake, &config, &cache).unwrap();
            assert_eq!(live.expire_time, format_rfc3339_ms(16_000));
        }
        assert_eq!(methods(&fake), ["POST", "PATCH"]);
        assert_eq!(fake.sent.borrow()[1].1, "http://h:1/v1beta/cachedContents/c1");
        // A claimed expiry is not renewed twice, even if the stored expiry
        // has not moved yet (a slow renewer elsewhere).
        fake.set(EXPIRE_KEY, &format_rfc3339_ms(16_000));
        fake.set(RENEWING_KEY, &format_rfc3339_ms(16_000));
        fake.now.set(13_000);
        current(&fake, &config, &cache).unwrap();
        assert_eq!(methods(&fake).len(), 2);
    }

    #[test]
    fn a_failed_renewal_releases_the_claim() {
        let (fake, config) = (Fake::default(), config());
        let cache = config.cache.clone().unwrap();
        create(&fake, &config, &cache).unwrap();
        fake.now.set(7_000);
        fake.fail_patch.set(Some(503));
        let live = current(&fake, &config, &cache).unwrap();
        assert_eq!(live.expire_time, format_rfc3339_ms(10_000));
        assert_eq!(fake.get(RENEWING_KEY), None);
        assert_eq!(fake.warnings.borrow().len(), 1);
        fake.fail_patch.set(None);
        current(&fake, &config, &cache).unwrap();
        assert_eq!(methods(&fake), ["POST", "PATCH", "PATCH"]);
        assert_eq!(fake.get(EXPIRE_KEY), Some(format_rfc3339_ms(17_000)));
    }

    #[test]
    fn a_vanished_cache_is_created_again() {
        let (fake, config) = (Fake::default(), config());
        let cache = config.cache.clone().unwrap();
        create(&fake, &config, &cache).unwrap();
        fake.now.set(11_000);
        fake.fail_patch.set(Some(403));
        let live = current(&fake, &config, &cache).unwrap();
        assert_eq!(live.name, "cachedContents/c2");
        assert_eq!(fake.get(NAME_KEY).as_deref(), Some("cachedContents/c2"));
        assert_eq!(fake.get(EXPIRE_KEY), Some(format_rfc3339_ms(21_000)));
        assert_eq!(methods(&fake), ["POST", "PATCH", "POST"]);
    }

    #[test]
    fn delete_and_missing_cache() {
        let (fake, config) = (Fake::default(), config());
        assert_eq!(delete(&fake, &config), Ok(None));
        assert!(current(&fake, &config, config.cache.as_ref().unwrap()).is_none());
        fake.set(NAME_KEY, "cachedContents/c1");
        assert_eq!(delete(&fake, &config), Ok(Some("cachedContents/c1".to_owned())));
        assert_eq!(fake.sent.borrow()[0].0, "DELETE");
    }

    #[test]
    fn parse_errors() {
        assert!(parse_cached_content(200, b"{").is_err());
        assert!(parse_cached_content(200, br#"{"name":"c"}"#).is_err());
        assert!(parse_cached_content(200, br#"{"name":"c","expireTime":"soon"}"#).is_err());
        assert!(!needs_renewal("bad", Some(0), 10));
        assert!(!needs_renewal("1970-01-01T00:00:10Z", None, 10));
        assert!(needs_renewal("1970-01-01T00:00:10Z", Some(0), 10_000));
    }
}
