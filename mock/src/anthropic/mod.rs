//! The Anthropic Messages endpoint (`POST /v1/messages`).
//!
//! Runs the shared [`pipeline`](crate::pipeline): a wrong or missing
//! `x-api-key` is 401 `authentication_error` (when `api_key` is set), a
//! missing `anthropic-version` header or an invalid body 400
//! `invalid_request_error`, a request over the rate window 429
//! `rate_limit_error` with `retry-after`. Injected faults map to Anthropic's
//! shapes: `status=429` → `rate_limit_error` (`retry-after: 1`), `529` →
//! `overloaded_error`, `413` → `request_too_large`, `401` →
//! `authentication_error`, `insufficient_quota` / `quota-per-day` → 400
//! "Your credit balance is too low", a hang → 504 `timeout_error`.
//!
//! Every answer carries `request-id: req_mock_<seq>` and, for each configured
//! budget, `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`
//! (reset as an RFC 3339 timestamp).

mod error;
mod headers;
mod messages;

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;

use self::error::ApiError;
use self::messages::MessagesRequest;
pub(crate) use self::messages::PromptCache;
use crate::exchange::{Incoming, Reply, RequestBody};
use crate::faults::Fault;
use crate::limits::{Rejection, Snapshot};
use crate::pipeline::{self, Provider};
use crate::state::{App, Shared};

/// The route of the Messages endpoint.
pub(crate) fn router() -> Router<App> {
    Router::new().route("/v1/messages", post(handle).fallback(crate::openai::not_found))
}

async fn handle(State(app): State<App>, request: Request) -> Response {
    let incoming = Incoming::read(&app, request).await;
    pipeline::handle::<Messages>(&app, incoming).await
}

/// The Messages endpoint as a [`Provider`].
struct Messages;

impl Provider for Messages {
    type Request = MessagesRequest;

    fn authorize(app: &Shared, incoming: &Incoming) -> Result<(), Box<Reply>> {
        let header = |name: &str| incoming.headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(expected) = &app.config.api_key
            && header("x-api-key").map(str::trim) != Some(expected.as_str())
        {
            return Err(Box::new(ApiError::authentication().into_reply(&incoming.request_id())));
        }
        if header("anthropic-version").is_none() {
            let error = ApiError::invalid_request("anthropic-version: header is required");
            return Err(Box::new(error.into_reply(&incoming.request_id())));
        }
        Ok(())
    }

    fn parse(_app: &Shared, incoming: &Incoming) -> Result<MessagesRequest, Box<Reply>> {
        let parsed = match &incoming.body {
            RequestBody::Json(json) => MessagesRequest::parse(json),
            RequestBody::Empty => Err(ApiError::invalid_request("The request body is empty; expected JSON.")),
            RequestBody::NotJson { error, .. } => Err(ApiError::invalid_request(format!("Invalid JSON: {error}"))),
            RequestBody::Unreadable(_) => Err(ApiError::too_large()),
        };
        parsed.map_err(|error| Box::new(error.into_reply(&incoming.request_id())))
    }

    fn prompt(request: &MessagesRequest) -> Option<String> {
        request.prompt()
    }

    fn charge(request: &MessagesRequest) -> u64 {
        request.charge()
    }

    fn rate_limited(rejection: &Rejection, incoming: &Incoming) -> Reply {
        ApiError::rate_limited(rejection).into_reply(&incoming.request_id())
    }

    fn fault(fault: Fault, _delay: Duration, incoming: &Incoming) -> Reply {
        let error = match fault {
            Fault::Status(code) => ApiError::for_status(code),
            Fault::InsufficientQuota => ApiError::credit_too_low(),
            Fault::Hang | Fault::Malformed => ApiError::for_status(504),
        };
        error.into_reply(&incoming.request_id())
    }

    fn success(app: &Shared, incoming: &Incoming, request: &MessagesRequest) -> Reply {
        let (body, usage) = request.render(incoming.seq, &app.prompt_cache);
        Reply { usage: Some(usage), ..Reply::json(axum::http::StatusCode::OK, body) }
    }

    fn finish(reply: Reply, snapshot: &Snapshot, incoming: &Incoming) -> Reply {
        headers::decorate(reply, snapshot, incoming.request_id(), SystemTime::now())
    }
}
