//! Routes for the mock itself, never logged: `GET /health`,
//! `GET /_mock/requests` (the request log as JSON) and `POST /_mock/reset`.

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
        .route("/_mock/reset", post(reset))
}

async fn health() -> &'static str {
    "ok"
}

async fn requests(State(app): State<App>) -> Json<Vec<LoggedRequest>> {
    Json(app.log.snapshot())
}

async fn reset(State(app): State<App>) -> Json<Value> {
    app.reset();
    Json(json!({"reset": true}))
}
