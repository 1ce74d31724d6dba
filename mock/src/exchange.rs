//! The lifecycle every provider endpoint shares: read the request, let the
//! provider decide a [`Reply`], log it, wait out the injected delay, answer.
//!
//! Provider modules (OpenAI, Anthropic, Gemini) only decide;
//! numbering, logging and delaying happen here, identically for all of them.

use std::fmt::Display;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::faults;
use crate::log::LoggedRequest;
use crate::state::Shared;

/// Largest request body read; larger ones are answered 413.
pub(crate) const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// A request body, read and (if possible) parsed once.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// Valid JSON.
    Json(Value),
    /// No body at all.
    Empty,
    /// Not JSON: the raw text (lossily decoded) and the parse error.
    NotJson { raw: String, error: String },
    /// Could not be read (too large, or the connection broke).
    Unreadable(String),
}

impl RequestBody {
    fn parse(bytes: &Bytes) -> Self {
        if bytes.is_empty() {
            return Self::Empty;
        }
        match serde_json::from_slice(bytes) {
            Ok(json) => Self::Json(json),
            Err(err) => Self::NotJson { raw: String::from_utf8_lossy(bytes).into_owned(), error: err.to_string() },
        }
    }

    /// How the body appears in the request log.
    fn for_log(&self) -> Value {
        match self {
            Self::Json(json) => json.clone(),
            Self::Empty | Self::Unreadable(_) => Value::Null,
            Self::NotJson { raw, .. } => Value::String(raw.clone()),
        }
    }
}

/// What the server received, numbered on arrival.
#[derive(Debug)]
pub(crate) struct Incoming {
    /// Arrival number (see [`LoggedRequest::seq`]).
    pub seq: u64,
    /// Milliseconds since server start.
    pub at_ms: u64,
    /// When the body had been read (the clock of the rate windows).
    pub arrived: Instant,
    /// HTTP method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: RequestBody,
}

impl Incoming {
    /// Reads the whole request (bounded by [`MAX_BODY_BYTES`]) and numbers it.
    pub(crate) async fn read(app: &Shared, request: Request) -> Self {
        let (parts, body) = request.into_parts();
        let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => RequestBody::parse(&bytes),
            Err(err) => RequestBody::Unreadable(err.to_string()),
        };
        let (seq, at_ms) = app.log.arrival();
        let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), ToString::to_string);
        Self { seq, at_ms, arrived: Instant::now(), method: parts.method, path, headers: parts.headers, body }
    }

    /// The `x-request-id` of this request.
    pub(crate) fn request_id(&self) -> String {
        format!("req_mock_{}", self.seq)
    }

    /// The request headers as logged.
    fn headers_for_log(&self) -> Vec<(String, String)> {
        let text = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
        self.headers.iter().map(|(name, value)| (name.as_str().to_owned(), text(value))).collect()
    }
}

/// A response body.
#[derive(Debug, Clone)]
pub(crate) enum ReplyBody {
    /// A JSON document.
    Json(Value),
    /// Deliberately broken JSON, served as `application/json` anyway.
    Malformed(String),
}

/// A decided answer, provider-neutral.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Extra response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: ReplyBody,
    /// Wait before answering.
    pub delay: Duration,
    /// The prompt, for the log.
    pub prompt: Option<String>,
    /// The usage billed, for the log.
    pub usage: Option<Value>,
}

impl Reply {
    /// An immediate answer with a JSON body.
    pub(crate) fn json(status: StatusCode, body: Value) -> Self {
        let (headers, delay) = (HeaderMap::new(), Duration::ZERO);
        Self { status, headers, body: ReplyBody::Json(body), delay, prompt: None, usage: None }
    }

    /// Adds (or replaces) a header; `name` must be a lower-case literal.
    /// Values that are not valid header text are dropped.
    pub(crate) fn header(mut self, name: &'static str, value: impl Display) -> Self {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            self.headers.insert(HeaderName::from_static(name), value);
        }
        self
    }

    /// Adds `headers` in order: the first of each name replaces what the
    /// reply already had under it, later ones of the same name are sent as
    /// well (so a test can send a header twice).
    pub(crate) fn with_headers(mut self, headers: &[(HeaderName, HeaderValue)]) -> Self {
        let mut seen: Vec<&HeaderName> = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            if seen.contains(&name) {
                self.headers.append(name.clone(), value.clone());
            } else {
                seen.push(name);
                self.headers.insert(name.clone(), value.clone());
            }
        }
        self
    }

    /// The same reply with its JSON cut in half (never valid JSON), as the
    /// `malformed` fault sends it.
    pub(crate) fn malformed(self) -> Self {
        let ReplyBody::Json(json) = &self.body else {
            return self;
        };
        let text = json.to_string();
        let cut = text.floor_char_boundary(text.len() / 2);
        Self { body: ReplyBody::Malformed(text[..cut].to_owned()), ..self }
    }

    fn into_response(self) -> Response {
        let body = match self.body {
            ReplyBody::Json(json) => Body::from(json.to_string()),
            ReplyBody::Malformed(text) => Body::from(text),
        };
        let content_type = [(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        (self.status, content_type, self.headers, body).into_response()
    }

    fn body_for_log(&self) -> Value {
        match &self.body {
            ReplyBody::Json(json) => json.clone(),
            ReplyBody::Malformed(text) => Value::String(text.clone()),
        }
    }
}

/// Adds the configured extra headers and the prompt's header markers, logs
/// the exchange, waits the reply's delay, then answers.
///
/// Logging comes first so that a request is on record even if its client
/// gives up during the delay (which drops this future).
pub(crate) async fn respond(app: &Shared, incoming: Incoming, reply: Reply) -> Response {
    let markers = reply.prompt.as_deref().map(faults::marker_headers).unwrap_or_default();
    let reply = reply.with_headers(&app.extra_headers).with_headers(&markers);
    tracing::debug!(seq = incoming.seq, method = %incoming.method, path = %incoming.path,
        status = reply.status.as_u16(), delay_ms = reply.delay.as_millis(), "request");
    if app.log.wants_entries() {
        app.log.record(log_entry(&incoming, &reply));
    } else {
        app.log.count(reply.status.as_u16());
    }
    app.sleep(reply.delay).await;
    reply.into_response()
}

fn log_entry(incoming: &Incoming, reply: &Reply) -> LoggedRequest {
    LoggedRequest {
        seq: incoming.seq,
        at_ms: incoming.at_ms,
        method: incoming.method.to_string(),
        path: incoming.path.clone(),
        headers: incoming.headers_for_log(),
        body: incoming.body.for_log(),
        status: reply.status.as_u16(),
        request_id: incoming.request_id(),
        response_body: reply.body_for_log(),
        prompt: reply.prompt.clone(),
        usage: reply.usage.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_parsing() {
        assert!(matches!(RequestBody::parse(&Bytes::new()), RequestBody::Empty));
        let json = RequestBody::parse(&Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(json.for_log(), serde_json::json!({"a": 1}));
        let bad = RequestBody::parse(&Bytes::from_static(b"{nope"));
        assert_eq!(bad.for_log(), Value::String("{nope".into()));
    }

    #[test]
    fn malformed_replies_are_never_valid_json() {
        let reply = Reply::json(StatusCode::OK, serde_json::json!({"content": "ééééé", "n": [1, 2, 3]}));
        let ReplyBody::Malformed(text) = reply.malformed().body else { panic!("not malformed") };
        assert!(!text.is_empty());
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    }

    #[test]
    fn extra_headers_replace_then_repeat() {
        let header =
            |name: &'static str, value: &'static str| (HeaderName::from_static(name), HeaderValue::from_static(value));
        let reply = Reply::json(StatusCode::OK, Value::Null).header("retry-after", "7").header("x-keep", "k");
        let reply = reply.with_headers(&[header("retry-after", "1"), header("retry-after", "soon")]);
        let values: Vec<_> = reply.headers.get_all("retry-after").iter().map(HeaderValue::as_bytes).collect();
        assert_eq!(values, [&b"1"[..], &b"soon"[..]]);
        assert_eq!(reply.headers["x-keep"], "k");
        let reply = reply.with_headers(&[header("retry-after", "2")]);
        assert_eq!(reply.headers.get_all("retry-after").iter().count(), 1, "a later layer replaces");
    }

    #[test]
    fn reply_headers_skip_invalid_values() {
        let reply = Reply::json(StatusCode::OK, Value::Null).header("x-a", "ok").header("x-b", "bad\nvalue");
        assert_eq!(reply.headers.get("x-a").map(HeaderValue::as_bytes), Some(&b"ok"[..]));
        assert!(reply.headers.get("x-b").is_none());
    }
}
