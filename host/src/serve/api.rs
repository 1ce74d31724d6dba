//! The HTTP API: OpenAI's `/v1/files` and `/v1/batches`, as the official
//! SDKs call them, for the tenant the API key names.
//!
//! Another tenant's file or batch answers 404, exactly as one that does not
//! exist: a tenant cannot even learn that an id is taken. Every error is
//! OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with
//! the status the SDK expects (it raises `NotFoundError` for 404,
//! `RateLimitError` for 429 and so on). A quota answers 429 with
//! `retry-after`; when waiting cannot help (the storage quota), also
//! `x-should-retry: false`, which the SDK obeys instead of retrying.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

use super::batch;
use super::objects::{Batch, BatchExtra, BatchStatus, FileObject, Page, RequestCounts, new_id, now_unix};
use super::service::{Active, Service, lock, until_midnight, utc_day};
use super::tenants::{Caller, Tenant};

/// An error answer, OpenAI-shaped.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<&'static str>,
    code: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let kind = match status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        };
        ApiError { status, message: message.into(), kind, param: None, code: None, headers: Vec::new() }
    }

    pub(super) fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub(super) fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub(super) fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("No such {what}: '{id}'.")).code("not_found")
    }

    pub(super) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the server failed; try again").code("server_error")
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided. Pass a tenant's key as `Authorization: Bearer <key>`.",
        )
        .code("invalid_api_key")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}});
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}

pub(super) type Result<T> = std::result::Result<T, ApiError>;

/// The routes under `/v1`.
pub fn routes() -> Router<Arc<Service>> {
    use axum::extract::DefaultBodyLimit;
    Router::new()
        // Uploads are bounded per tenant while they stream (max-file-bytes).
        .route("/v1/files", post(upload).layer(DefaultBodyLimit::disable()).get(list_files))
        .route("/v1/files/{id}", get(get_file).delete(delete_file))
        .route("/v1/files/{id}/content", get(file_content))
        .route("/v1/batches", post(create_batch).get(list_batches))
        .route("/v1/batches/{id}", get(get_batch))
        .route("/v1/batches/{id}/cancel", post(cancel_batch))
        // Every other body is a small JSON object.
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
}

/// The largest JSON body (a batch request with metadata is well under it).
const MAX_JSON_BODY: usize = 64 * 1024;

/// The largest `purpose` field of an upload.
const MAX_PURPOSE: usize = 64;

/// The answer to a path no route has, or a method a route does not take.
pub async fn unknown(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("Unknown request URL: {method} {}.", uri.path())).code("unknown_url")
}

/// The key a request carries: `Authorization: Bearer` (OpenAI SDKs) or
/// `x-api-key` (Anthropic SDKs), or the password of HTTP Basic (browsers).
pub fn presented_key(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(token) = v.strip_prefix("Bearer ") {
            return Some(token.trim().to_string());
        }
        if let Some(basic) = v.strip_prefix("Basic ") {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD.decode(basic.trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            return text.split_once(':').map(|(_, pw)| pw.to_string());
        }
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string())
}

pub(super) fn tenant(svc: &Service, headers: &HeaderMap) -> Result<Arc<Tenant>> {
    let key = presented_key(headers).ok_or_else(ApiError::unauthorized)?;
    match svc.tenants().authenticate(&key) {
        Some(Caller::Tenant(t)) => Ok(t),
        Some(Caller::Operator) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "an operator key opens the status page and /metrics; the API takes a tenant's key",
        )
        .code("invalid_api_key")),
        None => Err(ApiError::unauthorized()),
    }
}

pub(super) fn json_response<T: serde::Serialize>(value: &T) -> Response {
    Json(value).into_response()
}

// ---- files ----

async fn upload(State(svc): State<Arc<Service>>, headers: HeaderMap, mut form: Multipart) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    let limit = tenant.quotas.max_file_bytes;
    let name = tenant.name.clone();
    let stored = svc.db(move |s| s.stored_bytes(&name)).await.map_err(ApiError::internal)?;
    let room = tenant.quotas.max_stored_bytes.saturating_sub(stored);
    let mut purpose = None;
    let mut upload: Option<(tempfile_guard::Scratch, String, u64)> = None;
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("the upload is not a valid multipart form: {}", e.body_text()))
    };
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        match field.name() {
            Some("purpose") => {
                let mut text = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
                    if text.len() + chunk.len() > MAX_PURPOSE {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "`purpose` is too long; send purpose=batch",
                        )
                        .param("purpose"));
                    }
                    text.extend_from_slice(&chunk);
                }
                purpose = Some(String::from_utf8_lossy(&text).into_owned());
            }
            Some("file") => {
                let filename = field.file_name().unwrap_or("upload.jsonl").chars().take(255).collect::<String>();
                let scratch = tempfile_guard::Scratch::new(svc.store.upload_path());
                let mut out = tokio::fs::File::create(scratch.path()).await.map_err(ApiError::internal)?;
                let mut bytes = 0u64;
                while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
                    bytes = bytes.saturating_add(chunk.len() as u64);
                    if bytes > limit {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("the file is larger than this tenant's limit of {limit} bytes (max-file-bytes)"),
                        )
                        .code("file_too_large")
                        .param("file"));
                    }
                    if bytes > room {
                        return Err(storage_full(tenant.quotas.max_stored_bytes, stored));
                    }
                    out.write_all(&chunk).await.map_err(ApiError::internal)?;
                }
                out.sync_all().await.map_err(ApiError::internal)?;
                upload = Some((scratch, filename, bytes));
            }
            _ => {}
        }
    }
    let purpose = purpose.ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "missing `purpose`; upload with purpose=batch")
            .code("missing_required_parameter")
            .param("purpose")
    })?;
    if purpose != "batch" {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("purpose `{purpose}` is not supported here; this server takes purpose=batch"),
        )
        .code("invalid_value")
        .param("purpose"));
    }
    let (scratch, filename, bytes) = upload.ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "missing `file`: send the JSONL file as the multipart field `file`")
            .code("missing_required_parameter")
            .param("file")
    })?;
    let file = FileObject {
        id: new_id("file-"),
        object: "file".into(),
        bytes,
        created_at: now_unix(),
        filename,
        purpose,
        status: "processed".into(),
        expires_at: None,
        status_details: None,
    };
    let dest = svc.store.file_path(&file.id);
    tokio::fs::rename(scratch.path(), &dest).await.map_err(ApiError::internal)?;
    scratch.keep();
    let (name, f) = (tenant.name.clone(), file.clone());
    svc.db(move |s| s.insert_file(&name, &f)).await.map_err(ApiError::internal)?;
    Ok(json_response(&file))
}

fn storage_full(max: u64, stored: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "this tenant's files use {stored} of {max} bytes (max-stored-bytes); delete files (DELETE /v1/files/ID) first"
        ),
    )
    .code("storage_quota_exceeded")
    .header("retry-after", "3600".into())
    .header("x-should-retry", "false".into())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<String>,
    order: Option<String>,
    purpose: Option<String>,
}

fn limit_of(q: &ListQuery, max: usize) -> Result<usize> {
    match q.limit.as_deref() {
        None => Ok(20.min(max)),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::new(StatusCode::BAD_REQUEST, format!("limit must be an integer from 1 to {max}"))
                .code("invalid_value")
                .param("limit")),
        },
    }
}

async fn list_files(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    let limit = limit_of(&q, 10_000)?;
    let asc = match q.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "order must be asc or desc").param("order"));
        }
    };
    let (name, after, purpose) = (tenant.name.clone(), q.after.clone(), q.purpose.clone());
    let (files, more) = svc
        .db(move |s| s.list_files(&name, after.as_deref(), limit, asc, purpose.as_deref()))
        .await
        .map_err(ApiError::internal)?;
    Ok(json_response(&Page::new(files, more, |f| f.id.clone())))
}

pub(super) async fn find_file(svc: &Service, tenant: &Tenant, id: &str) -> Result<FileObject> {
    let (name, fid) = (tenant.name.clone(), id.to_string());
    svc.db(move |s| s.get_file(&name, &fid))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("file", id))
}

async fn get_file(State(svc): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    Ok(json_response(&find_file(&svc, &tenant, &id).await?))
}

async fn delete_file(State(svc): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    let (name, fid) = (tenant.name.clone(), id.clone());
    let deleted = svc.db(move |s| s.delete_file(&name, &fid)).await.map_err(ApiError::internal)?;
    if !deleted {
        return Err(ApiError::not_found("file", &id));
    }
    // A batch that reads it holds its own link to the bytes.
    let _ = tokio::fs::remove_file(svc.store.file_path(&id)).await;
    Ok(json_response(&json!({"id": id, "object": "file", "deleted": true})))
}

async fn file_content(State(svc): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    let file = find_file(&svc, &tenant, &id).await?;
    let bytes = tokio::fs::File::open(svc.store.file_path(&file.id)).await.map_err(ApiError::internal)?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(bytes));
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

// ---- batches ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBatch {
    input_file_id: String,
    endpoint: String,
    completion_window: String,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    /// Accepted and ignored: outputs are kept until deleted.
    #[serde(default)]
    #[allow(dead_code)]
    output_expires_after: Option<Value>,
}

async fn create_batch(State(svc): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    let req: CreateBatch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not a valid batch request ({e}); send {{\"input_file_id\", \"endpoint\", \"completion_window\": \"24h\"}}"),
        )
        .code("invalid_request")
    })?;
    if req.completion_window != "24h" {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "completion_window must be \"24h\"")
            .code("invalid_value")
            .param("completion_window"));
    }
    if !tenant.serves(&req.endpoint) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "this tenant's plugin `{}` cannot serve the endpoint {:?}; it serves {}",
                tenant.settings.plugin.as_deref().unwrap_or("?"),
                req.endpoint,
                tenant.endpoints.join(", ")
            ),
        )
        .code("unsupported_endpoint")
        .param("endpoint"));
    }
    if let Some(m) = &req.metadata
        && (m.len() > 16 || m.iter().any(|(k, v)| k.len() > 64 || v.as_str().is_none_or(|s| s.len() > 512)))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "metadata holds at most 16 string values, keys up to 64 and values up to 512 characters",
        )
        .param("metadata"));
    }
    let input = find_file(&svc, &tenant, &req.input_file_id).await.map_err(|e| e.param("input_file_id"))?;
    if input.purpose != "batch" {
        return Err(
            ApiError::new(StatusCode::BAD_REQUEST, "the input file's purpose must be `batch`").param("input_file_id")
        );
    }
    let batch = start_batch(&svc, &tenant, &input, req.endpoint, req.completion_window, req.metadata).await?;
    Ok(json_response(&batch))
}

/// Creates a batch of `input` for `tenant` after the quota checks, and
/// starts driving it.
pub async fn start_batch(
    svc: &Arc<Service>,
    tenant: &Arc<Tenant>,
    input: &FileObject,
    endpoint: String,
    completion_window: String,
    metadata: Option<Map<String, Value>>,
) -> Result<Batch> {
    let now = now_unix();
    let name = tenant.name.clone();
    let (active_count, spent) = svc
        .db(move |s| Ok((s.count_active(&name)?, s.spend(&name, utc_day(now))?)))
        .await
        .map_err(ApiError::internal)?;
    let max_active = u64::from(tenant.quotas.max_active_batches);
    if active_count >= max_active {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this tenant has {active_count} unfinished batches, its limit (max-active-batches); wait for one to end"
            ),
        )
        .code("batch_quota_exceeded")
        .header("retry-after", "30".into()));
    }
    if let Some(max) = tenant.quotas.max_cost_per_day {
        let spent = spent + svc.live_spend(&tenant.name);
        if spent >= max {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("this tenant spent ${spent:.4} of its ${max} today (UTC; max-cost-per-day)"),
            )
            .code("cost_quota_exceeded")
            .header("retry-after", until_midnight(now).to_string())
            .header("x-should-retry", "false".into()));
        }
    }
    let batch = Batch {
        id: new_id("batch_"),
        object: "batch".into(),
        endpoint,
        model: None,
        errors: None,
        input_file_id: input.id.clone(),
        completion_window,
        status: BatchStatus::Validating,
        output_file_id: None,
        error_file_id: None,
        created_at: now,
        in_progress_at: None,
        expires_at: Some(now.saturating_add(86_400)),
        finalizing_at: None,
        completed_at: None,
        failed_at: None,
        expired_at: None,
        cancelling_at: None,
        cancelled_at: None,
        request_counts: RequestCounts::default(),
        usage: None,
        metadata,
        batchllm: BatchExtra { tenant: tenant.name.clone(), ..BatchExtra::default() },
    };
    // The batch keeps its own link to the input: deleting the file later
    // does not take it from under the run.
    let dir = svc.store.batch_dir(&batch.id);
    let source = svc.store.file_path(&input.id);
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let link = dir.join("input.jsonl");
        std::fs::hard_link(&source, &link).or_else(|_| std::fs::copy(&source, &link).map(drop))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let (name, b) = (tenant.name.clone(), batch.clone());
    svc.db(move |s| s.put_batch(&name, &b)).await.map_err(ApiError::internal)?;
    tracing::info!(batch = %batch.id, tenant = %tenant.name, endpoint = %batch.endpoint, "batch created");
    batch::start(svc, tenant.clone(), Arc::new(Active::new(&tenant.name, batch.clone())));
    Ok(batch)
}

/// The batch as the client sees it: live from its driver while active.
pub(super) async fn find_batch(svc: &Service, tenant: &str, id: &str) -> Result<Batch> {
    if let Some(active) = svc.active_batch(tenant, id) {
        return Ok(active.view());
    }
    let (name, bid) = (tenant.to_string(), id.to_string());
    svc.db(move |s| s.get_batch(&name, &bid))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("batch", id))
}

async fn get_batch(State(svc): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    Ok(json_response(&find_batch(&svc, &tenant.name, &id).await?))
}

async fn cancel_batch(State(svc): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    let Some(active) = svc.active_batch(&tenant.name, &id) else {
        let batch = find_batch(&svc, &tenant.name, &id).await?;
        return match batch.status {
            BatchStatus::Cancelled | BatchStatus::Cancelling => Ok(json_response(&batch)),
            s => {
                Err(ApiError::new(StatusCode::CONFLICT, format!("Cannot cancel a batch with status '{}'.", s.as_str()))
                    .code("batch_not_cancellable"))
            }
        };
    };
    cancel_active(&svc, &tenant.name, &active).await?;
    Ok(json_response(&active.view()))
}

/// Cancels a batch its driver runs: saved as `cancelling`, then the run
/// stops (waits end, nothing new starts, requests on the wire may answer).
pub(super) async fn cancel_active(svc: &Service, tenant: &str, active: &Active) -> Result<()> {
    let now = now_unix();
    let was = lock(&active.batch).status;
    if matches!(was, BatchStatus::Finalizing) {
        return Err(ApiError::new(StatusCode::CONFLICT, "Cannot cancel a batch with status 'finalizing'.")
            .code("batch_not_cancellable"));
    }
    active.cancel.store(true, std::sync::atomic::Ordering::Release);
    let batch = active.update(|b| {
        if b.status.is_active() {
            b.status = BatchStatus::Cancelling;
            b.cancelling_at.get_or_insert(now);
        }
    });
    let (name, b) = (tenant.to_string(), batch);
    svc.db(move |s| s.put_batch(&name, &b)).await.map_err(ApiError::internal)?;
    active.stop.stop();
    Ok(())
}

async fn list_batches(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let tenant = tenant(&svc, &headers)?;
    let limit = limit_of(&q, 100)?;
    let (name, after) = (tenant.name.clone(), q.after.clone());
    let (batches, more) =
        svc.db(move |s| s.list_batches(Some(&name), after.as_deref(), limit)).await.map_err(ApiError::internal)?;
    let batches: Vec<Batch> =
        batches.into_iter().map(|b| svc.active_batch(&tenant.name, &b.id).map_or(b, |a| a.view())).collect();
    Ok(json_response(&Page::new(batches, more, |b| b.id.clone())))
}

/// A scratch file removed unless kept.
mod tempfile_guard {
    use std::path::{Path, PathBuf};

    pub(super) struct Scratch {
        path: PathBuf,
        keep: bool,
    }

    impl Scratch {
        pub(super) fn new(path: PathBuf) -> Self {
            Scratch { path, keep: false }
        }

        pub(super) fn path(&self) -> &Path {
            &self.path
        }

        pub(super) fn keep(mut self) {
            self.keep = true;
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            if !self.keep {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}
