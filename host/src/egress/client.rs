//! The one door to the network for every plugin.
//!
//! Both ways a plugin can speak HTTP (the `http.send` import and
//! `wasi:http/outgoing-handler`) end here, so one policy applies to all:
//! the destination must be granted, names must not resolve to internal
//! addresses unless explicitly granted ([`super::resolver`]), secrets are
//! substituted only for granted hosts and scrubbed from answers, redirects
//! are not followed (a 3xx goes back to the plugin, and following it is a new
//! request checked like any other), timeouts and body sizes are bounded, and
//! every exchange is recorded for the engine, which reads statuses and
//! rate-limit headers itself rather than trusting the plugin's
//! classification. Proxies from the environment (`HTTPS_PROXY`, ...) are not
//! used: a proxy would resolve names itself, out of the resolver's sight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::policy::{Denial, EgressPolicy, Reach};
use super::resolver::{GuardedResolver, find_blocked};
use super::secrets::Secrets;
use crate::model::{Exchange, ExchangeFailure};

/// Limits applied to each outbound request.
#[derive(Debug, Clone)]
pub struct EgressLimits {
    /// Largest request body a plugin may send.
    pub max_request_bytes: usize,
    /// Largest response body handed back to a plugin.
    pub max_response_bytes: usize,
    /// Upper bound on any single request, whatever the plugin asks for.
    pub max_request_timeout: Duration,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
}

impl Default for EgressLimits {
    fn default() -> Self {
        EgressLimits {
            max_request_bytes: 32 << 20,
            max_response_bytes: 32 << 20,
            max_request_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A request as a plugin describes it.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Option<Duration>,
}

/// A complete response, body read and scrubbed.
#[derive(Debug, Clone)]
pub struct InboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request produced no response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EgressError {
    #[error("egress denied: {0}")]
    Denied(#[from] Denial),
    #[error("request timed out: {0}")]
    Timeout(String),
    #[error("network error: {0}")]
    Network(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("too large: {0}")]
    TooLarge(String),
}

fn is_signal_header(name: &str) -> bool {
    matches!(name, "x-request-id" | "request-id" | "retry-after" | "retry-after-ms")
        || name.starts_with("x-ratelimit-")
        || name.starts_with("anthropic-ratelimit-")
}

/// Denials logged as warnings before the rest go to debug level.
const LOUD_DENIALS: u64 = 20;

/// Running totals, for the summary and logs.
#[derive(Debug, Default)]
pub struct EgressCounters {
    pub requests: AtomicU64,
    pub denied: AtomicU64,
}

/// The shared, pooled HTTP client with its policy.
#[derive(Debug, Clone)]
pub struct Egress {
    inner: Arc<EgressInner>,
}

#[derive(Debug)]
struct EgressInner {
    /// For destinations that must resolve to public addresses.
    screened: reqwest::Client,
    /// For explicitly granted destinations (IP literals, exact name + port).
    direct: reqwest::Client,
    policy: EgressPolicy,
    secrets: Secrets,
    limits: EgressLimits,
    counters: EgressCounters,
}

impl Egress {
    /// Builds the client. One per run, shared by every worker, so connections
    /// are reused across items.
    pub fn new(policy: EgressPolicy, secrets: Secrets, limits: EgressLimits) -> Result<Self, reqwest::Error> {
        let builder = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .connect_timeout(limits.connect_timeout)
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(90))
        };
        let screened = builder().dns_resolver(GuardedResolver).build()?;
        let direct = builder().build()?;
        let counters = EgressCounters::default();
        Ok(Egress { inner: Arc::new(EgressInner { screened, direct, policy, secrets, limits, counters }) })
    }

    /// The policy in force.
    pub fn policy(&self) -> &EgressPolicy {
        &self.inner.policy
    }

    /// The secrets, for scrubbing text bound for logs or results.
    pub fn secrets(&self) -> &Secrets {
        &self.inner.secrets
    }

    /// Request and denial totals.
    pub fn counters(&self) -> &EgressCounters {
        &self.inner.counters
    }

    /// The limits in force.
    pub fn limits(&self) -> &EgressLimits {
        &self.inner.limits
    }

    /// Sends one request under the policy; `deadline` (the attempt's) bounds it.
    pub async fn send(
        &self,
        request: OutboundRequest,
        deadline: Option<Instant>,
    ) -> (Result<InboundResponse, EgressError>, Exchange) {
        let started = Instant::now();
        let mut exchange = Exchange::default();
        let result = self.send_inner(request, deadline, &mut exchange).await;
        exchange.elapsed = started.elapsed();
        exchange.failure = match &result {
            Err(EgressError::Timeout(_)) => Some(ExchangeFailure::Timeout),
            Err(EgressError::Network(_)) => Some(ExchangeFailure::Network),
            Err(EgressError::InvalidRequest(_)) => Some(ExchangeFailure::InvalidRequest),
            Err(EgressError::TooLarge(_)) => Some(ExchangeFailure::TooLarge),
            _ => None,
        };
        if let Err(EgressError::Denied(d)) = &result {
            let n = self.inner.counters.denied.fetch_add(1, Ordering::Relaxed) + 1;
            exchange.denied = Some(d.to_string());
            // Every denial is counted (run summary) and logged, but a plugin
            // retrying a denied request in a loop must not flood the log:
            // the first ones are warnings, the rest debug.
            if n <= LOUD_DENIALS {
                tracing::warn!(target: "batchllm::egress", denial = %d, "request denied");
                if n == LOUD_DENIALS {
                    tracing::warn!(target: "batchllm::egress", "further denials are logged at debug level (-v)");
                }
            } else {
                tracing::debug!(target: "batchllm::egress", denial = %d, "request denied");
            }
        }
        (result, exchange)
    }

    async fn send_inner(
        &self,
        request: OutboundRequest,
        deadline: Option<Instant>,
        exchange: &mut Exchange,
    ) -> Result<InboundResponse, EgressError> {
        let url: reqwest::Url =
            request.url.parse().map_err(|e| EgressError::InvalidRequest(format!("bad URL `{}`: {e}", request.url)))?;
        exchange.authority = authority_of(&url);
        let reach = self.inner.policy.check(&url)?;
        let headers = self.build_headers(&request.headers, &url)?;
        if request.body.len() > self.inner.limits.max_request_bytes {
            return Err(EgressError::TooLarge(format!(
                "request body of {} bytes exceeds the limit of {} bytes",
                request.body.len(),
                self.inner.limits.max_request_bytes
            )));
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| EgressError::InvalidRequest(format!("bad method `{}`", request.method)))?;
        let timeout = self.effective_timeout(request.timeout, deadline)?;
        self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
        let client = match reach {
            Reach::PublicOnly => &self.inner.screened,
            Reach::Any => &self.inner.direct,
        };
        let send = client.request(method, url).headers(headers).body(request.body).send();
        let exchange_fut = async {
            let response = send.await.map_err(classify_reqwest)?;
            exchange.status = Some(response.status().as_u16());
            let headers = collect_headers(response.headers());
            // Scrubbed too: request ids end up in the results file.
            exchange.signal_headers = headers
                .iter()
                .filter(|(k, _)| is_signal_header(k))
                .map(|(k, v)| (k.clone(), self.inner.secrets.scrub(v)))
                .collect();
            let body = self.read_body(response).await?;
            Ok(InboundResponse {
                status: exchange.status.unwrap_or_default(),
                headers: headers
                    .into_iter()
                    .map(|(k, v)| (self.inner.secrets.scrub(&k), self.inner.secrets.scrub(&v)))
                    .collect(),
                body: self.inner.secrets.scrub_bytes(body),
            })
        };
        match tokio::time::timeout(timeout, exchange_fut).await {
            Ok(result) => result,
            Err(_) => Err(EgressError::Timeout(format!("no complete response within {timeout:?}"))),
        }
    }

    fn effective_timeout(
        &self,
        requested: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Result<Duration, EgressError> {
        let mut timeout = requested.unwrap_or(self.inner.limits.max_request_timeout);
        timeout = timeout.min(self.inner.limits.max_request_timeout);
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(EgressError::Timeout("the attempt has no time left".into()));
            }
            timeout = timeout.min(left);
        }
        Ok(timeout)
    }

    fn build_headers(
        &self,
        headers: &[(String, String)],
        url: &reqwest::Url,
    ) -> Result<reqwest::header::HeaderMap, EgressError> {
        use reqwest::header::{HeaderName, HeaderValue};
        let mut map = reqwest::header::HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            let lname = name.to_ascii_lowercase();
            match lname.as_str() {
                // Computed by the client from the body and URL.
                "content-length" | "host" => continue,
                "transfer-encoding" | "connection" | "upgrade" | "te" | "proxy-authorization" => {
                    return Err(EgressError::InvalidRequest(format!("header `{name}` may not be set by a plugin")));
                }
                _ => {}
            }
            let value = self.inner.secrets.substitute(value, url)?;
            let name = HeaderName::from_bytes(lname.as_bytes())
                .map_err(|_| EgressError::InvalidRequest(format!("bad header name `{name}`")))?;
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| EgressError::InvalidRequest(format!("bad value for header `{name}`")))?;
            value.set_sensitive(name == reqwest::header::AUTHORIZATION || name.as_str().contains("key"));
            map.append(name, value);
        }
        Ok(map)
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, EgressError> {
        let limit = self.inner.limits.max_response_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify_reqwest)? {
            if body.len() + chunk.len() > limit {
                return Err(EgressError::TooLarge(format!("response body exceeds the limit of {limit} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn authority_of(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

fn collect_headers(map: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

fn classify_reqwest(e: reqwest::Error) -> EgressError {
    if let Some(blocked) = find_blocked(&e) {
        return EgressError::Denied(Denial::BlockedAddress(blocked.to_string()));
    }
    // reqwest's Display omits the cause chain; include it for a useful message.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() { EgressError::Timeout(message) } else { EgressError::Network(message) }
}
