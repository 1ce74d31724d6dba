//! The Gemini endpoints: `models/{model}:generateContent` and
//! `cachedContents` (create, get, list, update, delete), under both `/v1beta`
//! and `/v1`.
//!
//! Credentials: when `api_key` is set, requests must carry it in
//! `x-goog-api-key` (or the `key` query parameter). A wrong key is 400
//! `INVALID_ARGUMENT` with `ErrorInfo.reason: API_KEY_INVALID`, a missing one
//! 403 `PERMISSION_DENIED`, as on Gemini.
//!
//! `generateContent` runs the shared [`pipeline`](crate::pipeline): a request
//! over the rate window is 429 `RESOURCE_EXHAUSTED` with a per-minute
//! `QuotaFailure` and a `RetryInfo.retryDelay` (no `retry-after` header, and
//! no rate-limit headers on successes, as on Gemini). Injected faults:
//! `status=429` → per-minute `RESOURCE_EXHAUSTED` with `retryDelay: "1s"`,
//! `insufficient_quota` / `quota-per-day` → `RESOURCE_EXHAUSTED` whose only
//! violation is a per-day quota, `503` → `UNAVAILABLE`, `500` → `INTERNAL`,
//! `413` → payload too large, a hang → 504 `DEADLINE_EXCEEDED`.
//!
//! Cache operations are logged and authenticated but neither rate-limited nor
//! fault-injected. See [`caches`] for their semantics.

mod caches;
mod content;
mod error;
mod generate;

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use serde_json::Value;

pub(crate) use self::caches::CacheStore;
use self::error::GoogleError;
use self::generate::GenerateRequest;
use crate::exchange::{self, Incoming, Reply, RequestBody};
use crate::faults::Fault;
use crate::limits::{Rejection, Snapshot};
use crate::pipeline::{self, Provider};
use crate::state::{App, Shared};

/// The API versions served (the same API under both).
const VERSIONS: [&str; 2] = ["/v1beta", "/v1"];

/// The routes of the Gemini endpoints.
pub(crate) fn router() -> Router<App> {
    let not_found = || crate::openai::not_found;
    let mut router = Router::new();
    for version in VERSIONS {
        let generate: MethodRouter<App> = post(generate).fallback(not_found());
        let collection: MethodRouter<App> = post(create).get(list).fallback(not_found());
        let item: MethodRouter<App> = get(read).patch(update).delete(delete).fallback(not_found());
        router = router
            .route(&format!("{version}/models/{{target}}"), generate)
            .route(&format!("{version}/cachedContents"), collection)
            .route(&format!("{version}/cachedContents/{{id}}"), item);
    }
    router
}

async fn generate(State(app): State<App>, request: Request) -> Response {
    let incoming = Incoming::read(&app, request).await;
    pipeline::handle::<Generate>(&app, incoming).await
}

/// The `generateContent` endpoint as a [`Provider`].
struct Generate;

impl Provider for Generate {
    type Request = GenerateRequest;

    fn authorize(app: &Shared, incoming: &Incoming) -> Result<(), Box<Reply>> {
        authorize(app, incoming).map_err(|e| Box::new(e.into_reply()))
    }

    fn parse(app: &Shared, incoming: &Incoming) -> Result<GenerateRequest, Box<Reply>> {
        let model = match target(&incoming.path) {
            Some((model, "generateContent")) => model,
            _ => {
                let message =
                    format!("The mock serves models/{{model}}:generateContent, not {}", path_only(&incoming.path));
                return Err(Box::new(GoogleError::not_found(message).into_reply()));
            }
        };
        let now = SystemTime::now();
        let lookup = |name: &str| app.gemini_caches.lookup(name, now);
        json_body(&incoming.body)
            .and_then(|body| GenerateRequest::parse(model, body, lookup))
            .map_err(|e| Box::new(e.into_reply()))
    }

    fn prompt(request: &GenerateRequest) -> Option<String> {
        request.prompt()
    }

    fn charge(request: &GenerateRequest) -> u64 {
        request.charge()
    }

    fn rate_limited(rejection: &Rejection, _incoming: &Incoming) -> Reply {
        GoogleError::rate_limited(rejection).into_reply()
    }

    fn fault(fault: Fault, _delay: Duration, _incoming: &Incoming) -> Reply {
        let error = match fault {
            Fault::Status(code) => GoogleError::for_status(code),
            Fault::InsufficientQuota => GoogleError::per_day(),
            Fault::Hang | Fault::Malformed => GoogleError::for_status(504),
        };
        error.into_reply()
    }

    fn success(_app: &Shared, incoming: &Incoming, request: &GenerateRequest) -> Reply {
        let (body, usage) = request.render(incoming.seq);
        Reply { usage: Some(usage), ..Reply::json(StatusCode::OK, body) }
    }

    fn finish(reply: Reply, _snapshot: &Snapshot, _incoming: &Incoming) -> Reply {
        reply
    }
}

async fn create(State(app): State<App>, request: Request) -> Response {
    cache_op(&app, request, |app, incoming, now| app.gemini_caches.create(json_body(&incoming.body)?, now)).await
}

async fn list(State(app): State<App>, request: Request) -> Response {
    cache_op(&app, request, |app, _, now| Ok(app.gemini_caches.list(now))).await
}

async fn read(State(app): State<App>, request: Request) -> Response {
    cache_op(&app, request, |app, incoming, now| app.gemini_caches.get(&cache_name(&incoming.path), now)).await
}

async fn update(State(app): State<App>, request: Request) -> Response {
    cache_op(&app, request, |app, incoming, now| {
        app.gemini_caches.update(&cache_name(&incoming.path), json_body(&incoming.body)?, now)
    })
    .await
}

async fn delete(State(app): State<App>, request: Request) -> Response {
    cache_op(&app, request, |app, incoming, now| app.gemini_caches.delete(&cache_name(&incoming.path), now)).await
}

/// Runs one authenticated cache operation and logs it.
async fn cache_op(
    app: &Shared,
    request: Request,
    op: impl FnOnce(&Shared, &Incoming, SystemTime) -> Result<Value, GoogleError>,
) -> Response {
    let incoming = Incoming::read(app, request).await;
    let answer = authorize(app, &incoming).and_then(|()| op(app, &incoming, SystemTime::now()));
    let reply = match answer {
        Ok(body) => Reply::json(StatusCode::OK, body),
        Err(error) => error.into_reply(),
    };
    exchange::respond(app, incoming, reply).await
}

/// Checks `x-goog-api-key` (or `?key=`) when a key is configured.
fn authorize(app: &Shared, incoming: &Incoming) -> Result<(), GoogleError> {
    let Some(expected) = &app.config.api_key else {
        return Ok(());
    };
    let header = incoming.headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    match header.or_else(|| query_param(&incoming.path, "key")) {
        Some(given) if given.trim() == expected => Ok(()),
        Some(_) => Err(GoogleError::api_key_invalid()),
        None => Err(GoogleError::unregistered_caller()),
    }
}

/// The body as JSON, or the error explaining why it is not.
fn json_body(body: &RequestBody) -> Result<&Value, GoogleError> {
    match body {
        RequestBody::Json(json) => Ok(json),
        RequestBody::Empty => Err(GoogleError::invalid_argument("The request body is empty; expected JSON.")),
        RequestBody::NotJson { error, .. } => {
            Err(GoogleError::invalid_argument(format!("Invalid JSON payload received. {error}")))
        }
        RequestBody::Unreadable(_) => Err(GoogleError::too_large()),
    }
}

/// The path without its query string.
fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(path, _)| path)
}

/// The value of query parameter `name` (not percent-decoded: keys never
/// need it).
fn query_param(path: &str, name: &str) -> Option<String> {
    let (_, query) = path.split_once('?')?;
    query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')).map(str::to_owned)
}

/// `(model, method)` of `/v1beta/models/{model}:{method}`.
fn target(path: &str) -> Option<(&str, &str)> {
    let (_, target) = path_only(path).split_once("/models/")?;
    target.rsplit_once(':')
}

/// `cachedContents/{id}` of `/v1beta/cachedContents/{id}`.
fn cache_name(path: &str) -> String {
    let path = path_only(path);
    path.find("cachedContents/").map_or_else(String::new, |i| path[i..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(target("/v1beta/models/gemini-x:generateContent?key=k"), Some(("gemini-x", "generateContent")));
        assert_eq!(target("/v1/models/gemini-x:streamGenerateContent"), Some(("gemini-x", "streamGenerateContent")));
        assert_eq!(target("/v1/models/gemini-x"), None);
        assert_eq!(cache_name("/v1beta/cachedContents/mock-1?updateMask=ttl"), "cachedContents/mock-1");
        assert_eq!(query_param("/x?a=1&key=secret", "key").as_deref(), Some("secret"));
        assert_eq!(query_param("/x?keys=1", "key"), None);
        assert_eq!(query_param("/x", "key"), None);
    }
}
