//! Anthropic's Message Batches API (`/v1/messages/batches`) over the same
//! batches: the requests arrive inline (`{requests: [{custom_id, params}]}`),
//! become an input file of `/v1/messages` lines, and run as any other batch
//! of the tenant, whose plugin must serve `/v1/messages` (the anthropic
//! plugin does). The Anthropic SDK authenticates with `x-api-key`.
//!
//! The object is Anthropic's `message_batch` (`processing_status`
//! in_progress / canceling / ended, `request_counts` processing / succeeded /
//! errored / canceled / expired, RFC 3339 times, an absolute `results_url`),
//! and the results are Anthropic's lines: `{custom_id, result: {type:
//! succeeded, message} | {type: errored, error} | {type: canceled} |
//! {type: expired}}`. One batch, two views: it is also listed under
//! `/v1/batches`.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{ApiError, Result, find_batch, json_response, start_batch, tenant};
use super::objects::{Batch, BatchStatus, FileObject, new_id, now_unix};
use super::service::Service;

/// The endpoint every request of a message batch goes to.
const MESSAGES: &str = "/v1/messages";

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        // Bounded per tenant while read (max-file-bytes).
        .route("/v1/messages/batches", post(create).layer(DefaultBodyLimit::disable()).get(list))
        .route("/v1/messages/batches/{id}", get(retrieve).delete(delete))
        .route("/v1/messages/batches/{id}/cancel", post(cancel))
        .route("/v1/messages/batches/{id}/results", get(results))
}

fn rfc3339(unix: Option<i64>) -> Value {
    match unix.and_then(|t| u64::try_from(t).ok()) {
        Some(t) => Value::String(humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()),
        None => Value::Null,
    }
}

/// The base URL the client reached, for `results_url` (fetched as given).
fn origin(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn view(b: &Batch, origin: &str) -> Value {
    let c = b.request_counts;
    let failures = &b.batchllm.failures;
    let count = |class: &str| failures.get(class).copied().unwrap_or(0);
    let cancelled = matches!(b.status, BatchStatus::Cancelled | BatchStatus::Cancelling);
    let canceled = if cancelled { count("aborted") } else { 0 };
    let expired = count("batch_deadline_exceeded");
    let ended = !b.status.is_active();
    let processing = if ended { 0 } else { c.total.saturating_sub(c.completed).saturating_sub(c.failed) };
    let status = match b.status {
        BatchStatus::Cancelling => "canceling",
        s if s.is_active() => "in_progress",
        _ => "ended",
    };
    let ended_at = b.completed_at.or(b.cancelled_at).or(b.expired_at).or(b.failed_at);
    json!({
        "id": b.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {
            "processing": processing,
            "succeeded": c.completed,
            "errored": c.failed.saturating_sub(canceled).saturating_sub(expired),
            "canceled": canceled,
            "expired": expired,
        },
        "created_at": rfc3339(Some(b.created_at)),
        "expires_at": rfc3339(b.expires_at),
        "ended_at": if ended { rfc3339(ended_at) } else { Value::Null },
        "cancel_initiated_at": rfc3339(b.cancelling_at),
        "archived_at": Value::Null,
        "results_url": if ended && b.status != BatchStatus::Failed {
            Value::String(format!("{origin}/v1/messages/batches/{}/results", b.id))
        } else {
            Value::Null
        },
        // Why a batch that never ran failed (an Anthropic batch has no such
        // state: its requests would all be `errored`).
        "errors": b.errors,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    requests: Vec<InlineRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InlineRequest {
    custom_id: String,
    params: serde_json::Map<String, Value>,
}

async fn create(State(svc): State<Arc<Service>>, headers: HeaderMap, body: Body) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    if !tenant.serves(MESSAGES) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "this tenant's plugin `{}` cannot serve {MESSAGES}; it serves {}",
                tenant.settings.plugin.as_deref().unwrap_or("?"),
                tenant.endpoints.join(", ")
            ),
        )
        .code("unsupported_endpoint"));
    }
    let limit = usize::try_from(tenant.quotas.max_file_bytes).unwrap_or(usize::MAX);
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request is larger than this tenant's limit of {limit} bytes (max-file-bytes)"),
        )
        .code("request_too_large")
    })?;
    let req: CreateRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not a message batch ({e}); send {{\"requests\": [{{\"custom_id\", \"params\"}}]}}"),
        )
        .code("invalid_request_error")
    })?;
    if req.requests.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "`requests` is empty").param("requests"));
    }
    // The requests become an input file of OpenAI Batch lines for /v1/messages;
    // the batch's validation then checks each one like an uploaded line.
    let mut text = String::with_capacity(bytes.len());
    for r in req.requests {
        let line = json!({"custom_id": r.custom_id, "method": "POST", "url": MESSAGES, "body": r.params});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let file = FileObject {
        id: new_id("file-"),
        object: "file".into(),
        bytes: text.len() as u64,
        created_at: now_unix(),
        filename: "message_batch_requests.jsonl".into(),
        purpose: "batch".into(),
        status: "processed".into(),
        expires_at: None,
        status_details: None,
    };
    tokio::fs::write(svc.store.file_path(&file.id), text.as_bytes()).await.map_err(ApiError::internal)?;
    let (name, f) = (tenant.name.clone(), file.clone());
    svc.db(move |s| s.insert_file(&name, &f)).await.map_err(ApiError::internal)?;
    let batch = start_batch(&svc, &tenant, &file, MESSAGES.into(), "24h".into(), None).await?;
    Ok(json_response(&view(&batch, &origin(&headers))))
}

/// A message batch: one of the tenant's batches of `/v1/messages`.
async fn message_batch(svc: &Service, tenant: &str, id: &str) -> Result<Batch> {
    let batch = find_batch(svc, tenant, id).await?;
    if batch.endpoint != MESSAGES {
        return Err(ApiError::not_found("message batch", id));
    }
    Ok(batch)
}

async fn retrieve(State(svc): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    let batch = message_batch(&svc, &tenant.name, &id).await?;
    Ok(json_response(&view(&batch, &origin(&headers))))
}

async fn cancel(State(svc): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    let batch = message_batch(&svc, &tenant.name, &id).await?;
    if let Some(active) = svc.active_batch(&tenant.name, &batch.id) {
        super::api::cancel_active(&svc, &tenant.name, &active).await?;
    }
    let batch = message_batch(&svc, &tenant.name, &id).await?;
    Ok(json_response(&view(&batch, &origin(&headers))))
}

async fn delete(State(svc): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    let batch = message_batch(&svc, &tenant.name, &id).await?;
    if batch.status.is_active() {
        return Err(ApiError::new(StatusCode::CONFLICT, "a batch can be deleted once it has ended; cancel it first")
            .code("batch_not_ended"));
    }
    let (name, bid) = (tenant.name.clone(), batch.id.clone());
    svc.db(move |s| s.delete_batch(&name, &bid)).await.map_err(ApiError::internal)?;
    Ok(json_response(&json!({"id": batch.id, "type": "message_batch_deleted"})))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    after_id: Option<String>,
    before_id: Option<String>,
    limit: Option<usize>,
}

async fn list(State(svc): State<Arc<Service>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "limit must be from 1 to 1000").param("limit"));
    }
    if q.before_id.is_some() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "before_id is not supported here; page with after_id")
            .param("before_id"));
    }
    // Newest first, like /v1/batches, keeping message batches only.
    let name = tenant.name.clone();
    let mut after = q.after_id.clone();
    let mut data = Vec::new();
    let mut more = true;
    while data.len() < limit && more {
        let (n, cursor) = (name.clone(), after.clone());
        let (page, has_more) =
            svc.db(move |s| s.list_batches(Some(&n), cursor.as_deref(), 100)).await.map_err(ApiError::internal)?;
        more = has_more;
        after = page.last().map(|b| b.id.clone());
        for b in page {
            if b.endpoint == MESSAGES && data.len() < limit {
                let b = svc.active_batch(&name, &b.id).map_or(b, |a| a.view());
                data.push(view(&b, &origin(&headers)));
            } else if b.endpoint == MESSAGES {
                more = true;
            }
        }
        if after.is_none() {
            break;
        }
    }
    let first_id = data.first().and_then(|b| b["id"].as_str()).map(str::to_string);
    let last_id = data.last().and_then(|b| b["id"].as_str()).map(str::to_string);
    Ok(json_response(&json!({"data": data, "has_more": more, "first_id": first_id, "last_id": last_id})))
}

/// Anthropic's error type for a failure class.
fn error_type(code: &str) -> &'static str {
    match code {
        "rate_limited" => "rate_limit_error",
        "overloaded" => "overloaded_error",
        "auth" => "authentication_error",
        "client_error" | "too_large" => "invalid_request_error",
        "timeout" | "deadline_exceeded" => "timeout_error",
        _ => "api_error",
    }
}

async fn results(State(svc): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    let batch = message_batch(&svc, &tenant.name, &id).await?;
    if batch.status.is_active() {
        return Err(ApiError::new(StatusCode::CONFLICT, "the batch has not ended yet; results are ready when it has")
            .code("batch_not_ended"));
    }
    let cancelled = batch.status == BatchStatus::Cancelled;
    let mut out = String::new();
    for file in [&batch.output_file_id, &batch.error_file_id].into_iter().flatten() {
        let text = tokio::fs::read_to_string(svc.store.file_path(file)).await.map_err(ApiError::internal)?;
        for line in text.lines() {
            let Ok(record) = serde_json::from_str::<Value>(line) else { continue };
            let result = if record["error"].is_null() {
                json!({"type": "succeeded", "message": record["response"]["body"]})
            } else {
                let code = record["error"]["code"].as_str().unwrap_or("other");
                match code {
                    "aborted" if cancelled => json!({"type": "canceled"}),
                    "batch_deadline_exceeded" => json!({"type": "expired"}),
                    _ => json!({"type": "errored", "error": {"type": "error", "error": {
                        "type": error_type(code), "message": record["error"]["message"]}}}),
                }
            };
            out.push_str(&json!({"custom_id": record["custom_id"], "result": result}).to_string());
            out.push('\n');
        }
    }
    Ok(([(header::CONTENT_TYPE, "application/binary")], out).into_response())
}
