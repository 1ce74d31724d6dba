//! The OpenAI-compatible endpoints (`/v1/chat/completions`, `/v1/responses`,
//! `/v1/completions`, `/v1/embeddings`).
//!
//! Each endpoint implements [`Endpoint`] (parse the body, name the prompt and
//! token charge, render the success); [`handle`] runs the same pipeline for
//! all of them:
//!
//! 1. **front door**, answered at once: a wrong key is 401 (when `api_key` is
//!    set), an unreadable body 413, invalid JSON or an invalid request 400,
//!    a request over the rate window 429;
//! 2. **admitted**: the fault injector picks a fault and a delay; the answer
//!    (success, injected error, malformed body, or 504 after a hang) is sent
//!    after the delay.
//!
//! Every answer carries `x-request-id: req_mock_<seq>` and, for each
//! configured budget, `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`.

mod chat;
mod completions;
mod embeddings;
mod error;
mod fields;
mod headers;
mod responses;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::Value;

use self::chat::Chat;
use self::completions::Completions;
use self::embeddings::Embeddings;
use self::error::ApiError;
use self::headers::with_rate_limits;
use self::responses::Responses;
use crate::exchange::{self, Incoming, Reply, ReplyBody, RequestBody};
use crate::faults::Fault;
use crate::limits::Snapshot;
use crate::state::{App, Shared};

/// The routes of the OpenAI endpoints; other methods on them are 404s, like
/// on OpenAI.
pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/v1/chat/completions", post(handle::<Chat>).fallback(not_found))
        .route("/v1/embeddings", post(handle::<Embeddings>).fallback(not_found))
        .route("/v1/responses", post(handle::<Responses>).fallback(not_found))
        .route("/v1/completions", post(handle::<Completions>).fallback(not_found))
}

/// Answers (and logs) a request for a path the mock does not serve.
pub(crate) async fn not_found(State(app): State<App>, request: Request) -> Response {
    let incoming = Incoming::read(&app, request).await;
    let error = ApiError::unknown_url(&incoming.method, &incoming.path);
    let reply = error.into_reply().header("x-request-id", incoming.request_id());
    exchange::respond(&app, incoming, reply).await
}

/// One OpenAI endpoint: how to read its request and render its success.
pub(crate) trait Endpoint {
    /// The validated request.
    type Request;

    /// Validates a JSON body; errors are 400s naming the bad field.
    fn parse(body: &Value) -> Result<Self::Request, ApiError>;

    /// The text markers are read from and faults are keyed on.
    fn prompt(request: &Self::Request) -> Option<String>;

    /// Tokens charged against the rate window.
    fn charge(request: &Self::Request) -> u64;

    /// The success body and its `usage` object.
    fn render(request: &Self::Request, ctx: &RenderContext) -> Rendered;
}

/// Per-response facts an endpoint needs to render a success.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RenderContext {
    /// The request's arrival number.
    pub seq: u64,
    /// Unix time in seconds, for `created`.
    pub created: u64,
    /// `MockConfig::cached_ratio`.
    pub cached_ratio: f64,
}

/// A rendered success.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    /// The response body.
    pub body: Value,
    /// The `usage` object (also part of `body`), for the log.
    pub usage: Value,
}

/// A request past the front door.
struct Admitted<R> {
    request: R,
    prompt: Option<String>,
    snapshot: Snapshot,
}

/// The handler of endpoint `E`.
async fn handle<E: Endpoint>(State(app): State<App>, request: Request) -> Response {
    let incoming = Incoming::read(&app, request).await;
    let reply = decide::<E>(&app, &incoming);
    exchange::respond(&app, incoming, reply).await
}

fn decide<E: Endpoint>(app: &Shared, incoming: &Incoming) -> Reply {
    let reply = match admit::<E>(app, incoming) {
        Ok(admitted) => answer::<E>(app, incoming, admitted),
        Err(refused) => *refused,
    };
    reply.header("x-request-id", incoming.request_id())
}

/// The front door: authentication, parsing and the rate window. A refusal
/// is boxed: it is the rare path, and keeps the `Result` small.
fn admit<E: Endpoint>(app: &Shared, incoming: &Incoming) -> Result<Admitted<E::Request>, Box<Reply>> {
    let parsed = json_body(&incoming.body).and_then(E::parse);
    let prompt = parsed.as_ref().ok().and_then(E::prompt);
    let refuse = |error: ApiError, snapshot: &Snapshot| {
        let mut reply = with_rate_limits(error.into_reply(), snapshot);
        reply.prompt.clone_from(&prompt);
        Box::new(reply)
    };
    let now = incoming.arrived;
    if let Err(error) = authorize(app, &incoming.headers) {
        return Err(refuse(error, &app.limits.peek(now)));
    }
    let request = parsed.map_err(|error| refuse(error, &app.limits.peek(now)))?;
    match app.limits.admit(now, E::charge(&request)) {
        Ok(snapshot) => Ok(Admitted { request, prompt, snapshot }),
        Err(rejection) => Err(refuse(ApiError::rate_limited(&rejection), &rejection.snapshot)),
    }
}

/// The answer to an admitted request, as the fault injector decides.
fn answer<E: Endpoint>(app: &Shared, incoming: &Incoming, admitted: Admitted<E::Request>) -> Reply {
    let Admitted { request, prompt, snapshot } = admitted;
    let plan = app.faults.plan(prompt.as_deref());
    let mut reply = match plan.fault {
        None => success::<E>(app, incoming, &request),
        Some(Fault::Malformed) => malformed(success::<E>(app, incoming, &request)),
        Some(Fault::Status(code)) => ApiError::for_status(code).into_reply(),
        Some(Fault::InsufficientQuota) => ApiError::insufficient_quota().into_reply(),
        Some(Fault::Hang) => ApiError::hung(plan.delay).into_reply(),
    };
    reply.delay = plan.delay;
    reply.prompt = prompt;
    with_rate_limits(reply, &snapshot)
}

fn success<E: Endpoint>(app: &Shared, incoming: &Incoming, request: &E::Request) -> Reply {
    let ctx = RenderContext { seq: incoming.seq, created: unix_now(), cached_ratio: app.config.cached_ratio };
    let Rendered { body, usage } = E::render(request, &ctx);
    let mut reply = Reply::json(StatusCode::OK, body);
    reply.usage = Some(usage);
    reply
}

/// The same reply with its JSON cut in half (never valid JSON).
fn malformed(reply: Reply) -> Reply {
    let ReplyBody::Json(json) = &reply.body else {
        return reply;
    };
    let text = json.to_string();
    let cut = text.floor_char_boundary(text.len() / 2);
    Reply { body: ReplyBody::Malformed(text[..cut].to_owned()), ..reply }
}

/// Checks `authorization: Bearer <api_key>` when a key is configured.
fn authorize(app: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &app.config.api_key else {
        return Ok(());
    };
    let given = headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok());
    match given.and_then(|value| value.trim().split_once(' ')) {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") && key.trim() == expected => Ok(()),
        _ => Err(ApiError::invalid_api_key()),
    }
}

/// The body as JSON, or the 400/413 explaining why it is not.
fn json_body(body: &RequestBody) -> Result<&Value, ApiError> {
    const NOT_JSON: &str = "We could not parse the JSON body of your request. \
        (HINT: The OpenAI API expects a JSON payload, but what was sent was not valid JSON.";
    match body {
        RequestBody::Json(json) => Ok(json),
        RequestBody::Empty => Err(ApiError::invalid_request(format!("{NOT_JSON} The body is empty.)"), None)),
        RequestBody::NotJson { error, .. } => {
            Err(ApiError::invalid_request(format!("{NOT_JSON} Parser said: {error}.)"), None))
        }
        RequestBody::Unreadable(reason) => Err(ApiError::unreadable_body(reason)),
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn malformed_is_never_valid_json() {
        let reply = Reply::json(StatusCode::OK, json!({"content": "ééééé", "n": [1, 2, 3]}));
        let ReplyBody::Malformed(text) = malformed(reply).body else { panic!("not malformed") };
        assert!(!text.is_empty());
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    }

    #[test]
    fn json_body_errors() {
        assert!(json_body(&RequestBody::Json(json!({}))).is_ok());
        assert_eq!(json_body(&RequestBody::Empty).map_err(|e| e.status.as_u16()), Err(400));
        let not_json = RequestBody::NotJson { raw: "{".into(), error: "EOF".into() };
        assert_eq!(json_body(&not_json).map_err(|e| e.kind), Err("invalid_request_error"));
        assert_eq!(json_body(&RequestBody::Unreadable("big".into())).map_err(|e| e.status.as_u16()), Err(413));
    }
}
