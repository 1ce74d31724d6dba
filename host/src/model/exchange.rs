//! What the host saw of one HTTP request a plugin made.
//!
//! The egress layer fills these in; the engine reads them to correct a
//! plugin's classification (a 429 is a rate limit whatever the plugin says),
//! to learn rate limits from headers and to put request ids in records.

use std::time::Duration;

/// What the host saw of one request, for the engine and the results file.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// Destination host, `host:port`.
    pub authority: String,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Response headers relevant to policy: request ids, `retry-after*`,
    /// `x-ratelimit-*`, `anthropic-ratelimit-*` (names lower-case).
    pub signal_headers: Vec<(String, String)>,
    /// Set when the policy refused the request.
    pub denied: Option<String>,
    /// Why no response came back, when that was not a denial. Plugins may
    /// only see a generic error (JS `fetch` turns everything into a
    /// `NetworkError`), so the engine reads the cause here.
    pub failure: Option<ExchangeFailure>,
    /// Time from send to the end of the body.
    pub elapsed: Duration,
}

/// How a request failed without a response (denials aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeFailure {
    Timeout,
    Network,
    InvalidRequest,
    TooLarge,
}

impl Exchange {
    /// The provider's request id, from `x-request-id` or `request-id`.
    pub fn request_id(&self) -> Option<&str> {
        self.header("x-request-id").or_else(|| self.header("request-id"))
    }

    /// A header value by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.signal_headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}
