//! Outbound HTTP through the host's pooled client.
//!
//! Every request goes through the host's egress policy: only hosts granted to
//! this plugin are reachable, and a denied destination comes back as
//! [`HttpError::Denied`]. The host sees every status and rate-limit header.
//!
//! Secrets: never put an API key in a request. Write the placeholder from
//! [`crate::secret_placeholder`] (`{{secret:NAME}}`) into a header value; the
//! host substitutes the secret only for the hosts it is granted for.
//!
//! Pass the attempt's `time_left_ms` as the request's `timeout_ms`; the host
//! clamps it anyway. Failures map to a [`crate::StrategyError`] with
//! [`crate::classify::from_http_error`] and, for non-2xx answers,
//! [`crate::classify::from_http`].

pub use crate::bindings::batchllm::strategy::http::{HttpError, Request, Response};
use serde_json::Value;

/// Sends one request and waits for the whole response.
pub fn send(request: &Request) -> Result<Response, HttpError> {
    crate::bindings::batchllm::strategy::http::send(request)
}

/// POSTs `body` as JSON to `url` with `headers` and waits for the response.
///
/// `content-type: application/json` is added unless `headers` sets a content
/// type. `timeout_ms` is the total time allowed (normally the attempt's
/// `time_left_ms`).
pub fn post_json(
    url: &str,
    headers: &[(String, String)],
    body: &Value,
    timeout_ms: Option<u64>,
) -> Result<Response, HttpError> {
    send(&json_request("POST", url, headers, body, timeout_ms))
}

/// Builds (without sending) a request carrying `body` as JSON, adding
/// `content-type: application/json` unless `headers` sets a content type.
pub fn json_request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &Value,
    timeout_ms: Option<u64>,
) -> Request {
    json_request_from(method.to_owned(), url.to_owned(), headers.to_vec(), json_bytes(body), timeout_ms)
}

/// [`json_request`] from parts already owned and a body already written
/// as JSON: `content-type: application/json` is added unless `headers`
/// sets a content type.
pub fn json_request_from(
    method: String,
    url: String,
    mut headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout_ms: Option<u64>,
) -> Request {
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    Request { method, url, headers, body, timeout_ms }
}

/// `value` as compact JSON text (what its `Display` writes, written
/// straight into bytes rather than through a formatter, several times
/// faster).
pub fn json_bytes(value: &Value) -> Vec<u8> {
    // A `Value` always serialises (its keys are strings); the fallback is
    // never taken.
    serde_json::to_vec(value).unwrap_or_else(|_| value.to_string().into_bytes())
}

/// The value of the first header named `name` (ASCII case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        crate::text::body_text(&self.body)
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

impl HttpError {
    /// The message the variant carries.
    pub fn message(&self) -> &str {
        match self {
            HttpError::Denied(m)
            | HttpError::Timeout(m)
            | HttpError::Network(m)
            | HttpError::InvalidRequest(m)
            | HttpError::TooLarge(m) => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_request_adds_content_type_once() {
        let r = json_request("POST", "http://h/x", &[], &serde_json::json!({"a":1}), Some(5));
        assert_eq!(header(&r.headers, "Content-Type"), Some("application/json"));
        assert_eq!(r.body, br#"{"a":1}"#);
        assert_eq!(r.timeout_ms, Some(5));
        let own = vec![("Content-Type".to_owned(), "application/x-ndjson".to_owned())];
        let r = json_request("POST", "http://h/x", &own, &Value::Null, None);
        assert_eq!(r.headers.len(), 1);
        assert_eq!(header(&r.headers, "content-type"), Some("application/x-ndjson"));
    }

    #[test]
    fn json_bytes_are_the_display_text() {
        let v = serde_json::json!({"b": [1, 2.5, -3, null, true], "a": {"é": "q\"\n\u{1}😀"}, "": 1e300});
        assert_eq!(json_bytes(&v), v.to_string().into_bytes());
        let r = json_request_from("PUT".into(), "u".into(), Vec::new(), b"[]".to_vec(), None);
        assert_eq!((r.method.as_str(), r.headers.len(), r.body.as_slice()), ("PUT", 1, &b"[]"[..]));
    }

    #[test]
    fn response_helpers() {
        let r = Response {
            status: 201,
            headers: vec![("X-Req".to_owned(), "1".to_owned())],
            body: br#"{"ok":true}"#.to_vec(),
        };
        assert!(r.is_success());
        assert_eq!(r.header("x-req"), Some("1"));
        assert_eq!(r.json().unwrap()["ok"], true);
        assert_eq!(r.text(), r#"{"ok":true}"#);
        assert_eq!(HttpError::Timeout("t".into()).message(), "t");
    }
}
