//! Routes for the mock itself, never logged: `GET /health`,
//! `GET /_mock/requests` (the request log as JSON), `GET /_mock/stats`
//! (answers per status and the pace of successes, kept even with
//! `--count-only`: what a client pointed at the binary by hand provoked)
//! and `POST /_mock/reset`.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::log::LoggedRequest;
use crate::state::App;

/// The control routes.
pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/health", get(health))
        .route("/_mock/requests", get(requests))
        .route("/_mock/stats", get(stats))
        .route("/_mock/reset", post(reset))
}

async fn health() -> &'static str {
    "ok"
}

async fn requests(State(app): State<App>) -> Json<Vec<LoggedRequest>> {
    Json(app.log.snapshot())
}

async fn stats(State(app): State<App>) -> Json<Value> {
    let counts: serde_json::Map<String, Value> =
        app.log.counts().into_iter().map(|(status, n)| (status.to_string(), n.into())).collect();
    let pace = app.log.pace();
    Json(json!({
        "status_counts": counts,
        "succeeded": pace.succeeded,
        "last_success_ms": pace.last.map(|d| d.as_millis()),
        "longest_gap_ms": pace.longest_gap.as_millis(),
    }))
}

async fn reset(State(app): State<App>) -> Json<Value> {
    app.reset();
    Json(json!({"reset": true}))
}
