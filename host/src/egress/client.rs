//! The one door to the network for every plugin.
//!
//! Both ways a plugin can speak HTTP (the `http.send` import and
//! `wasi:http/outgoing-handler`) end here, so one policy applies to all:
//! the destination must be granted, names must not resolve to internal
//! addresses unless explicitly granted ([`super::resolver`]), secrets are
//! substituted only where they may go and scrubbed from answers, redirects
//! are not followed (a 3xx goes back to the plugin, and following it is a new
//! request checked like any other), each call's requests, requests in flight
//! and buffered response bytes are bounded ([`CallScope`]), timeouts and body
//! sizes are bounded, and every exchange is recorded for the engine, which
//! reads statuses and rate-limit headers itself rather than trusting the
//! plugin's classification. Proxies from the environment (`HTTPS_PROXY`,
//! ...) are not used: a proxy would resolve names itself, out of the
//! resolver's sight.
//!
//! Content encodings: scrubbing works on the bytes as they arrive, so a
//! compressed answer could carry a secret past it (the plugin decompresses
//! it afterwards). The host therefore always asks for
//! `accept-encoding: identity` (a plugin's own `accept-encoding` is
//! replaced), and withholds a body that arrives encoded anyway from a host
//! any secret may be sent to.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::policy::{Denial, EgressPolicy, Reach};
use super::resolver::{GuardedResolver, find_blocked};
use super::scope::{BudgetExceeded, BufferHold, CallScope, Ticket};
use super::secrets::Secrets;
use crate::model::{Exchange, ExchangeFailure};

/// Limits applied to each outbound request, call and instance.
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
    /// Requests one call (`execute`, `on-error`, `prepare`, `cleanup`) may
    /// make, through both doors together; more are denied.
    pub max_requests_per_call: u32,
    /// Requests of one plugin instance in flight at once; more wait.
    pub max_requests_in_flight: usize,
    /// Response bytes (bodies and headers) the host may hold for one
    /// instance at once: read but not yet taken by the plugin. Must be at
    /// least `max_response_bytes`.
    pub max_buffered_response_bytes: usize,
}

impl Default for EgressLimits {
    fn default() -> Self {
        EgressLimits {
            max_request_bytes: 32 << 20,
            max_response_bytes: 32 << 20,
            max_request_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            max_requests_per_call: 16,
            max_requests_in_flight: 4,
            max_buffered_response_bytes: 64 << 20,
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
#[derive(Debug)]
pub struct InboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The bytes this response holds of its instance's buffer budget; keep
    /// it as long as the body lives.
    pub hold: BufferHold,
}

/// Why a request produced no response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EgressError {
    #[error("egress denied: {0}")]
    Denied(#[from] Denial),
    /// The host's own clock ran out (the request's or the attempt's).
    #[error("request timed out: {0}")]
    Timeout(String),
    /// Connecting, TLS or the transfer failed (or timed out inside the client).
    #[error("{}: {}", if *timed_out { "request timed out" } else { "network error" }, chain(source))]
    Transport {
        timed_out: bool,
        #[source]
        source: Arc<reqwest::Error>,
    },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("too large: {0}")]
    TooLarge(String),
    /// The instance's budget of buffered response bytes is spent.
    #[error("too large: {0}")]
    OverBudget(#[from] BudgetExceeded),
    /// The call that made the request ended first; nobody waits for it.
    #[error("the call that made this request ended before the response came")]
    CallEnded,
}

impl EgressError {
    /// The text a plugin sees (without the kind, which its error type says).
    pub fn plugin_message(&self) -> String {
        match self {
            EgressError::Denied(d) => d.to_string(),
            EgressError::Timeout(m) | EgressError::InvalidRequest(m) | EgressError::TooLarge(m) => m.clone(),
            EgressError::Transport { source, .. } => chain(source),
            EgressError::OverBudget(b) => b.to_string(),
            EgressError::CallEnded => self.to_string(),
        }
    }

    /// How the request failed, for the engine (denials aside).
    pub fn failure(&self) -> Option<ExchangeFailure> {
        match self {
            EgressError::Denied(_) => None,
            EgressError::Timeout(_) | EgressError::Transport { timed_out: true, .. } => Some(ExchangeFailure::Timeout),
            EgressError::Transport { timed_out: false, .. } | EgressError::CallEnded => Some(ExchangeFailure::Network),
            EgressError::InvalidRequest(_) => Some(ExchangeFailure::InvalidRequest),
            EgressError::TooLarge(_) | EgressError::OverBudget(_) => Some(ExchangeFailure::TooLarge),
        }
    }
}

/// An error and its causes on one line (reqwest's Display omits them).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
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
    /// For explicitly granted destinations (IP literals, internal names).
    direct: reqwest::Client,
    policy: EgressPolicy,
    secrets: Secrets,
    limits: EgressLimits,
    counters: EgressCounters,
}

/// What a response looked like before it was handed over.
struct Received {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    hold: BufferHold,
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

    /// Sends one request of the call `scope` is serving, within its budgets
    /// and deadline, and records the exchange there.
    pub async fn send(&self, scope: &CallScope, request: OutboundRequest) -> Result<InboundResponse, EgressError> {
        let ticket = scope.admit();
        self.send_admitted(scope, &ticket, request).await
    }

    /// [`Egress::send`] for a request admitted earlier ([`CallScope::admit`]),
    /// when the plugin handed it over. If that call ends first, the request
    /// is cancelled and records nothing.
    pub async fn send_admitted(
        &self,
        scope: &CallScope,
        ticket: &Ticket,
        request: OutboundRequest,
    ) -> Result<InboundResponse, EgressError> {
        let started = Instant::now();
        let mut exchange = Exchange::default();
        let result = tokio::select! {
            biased;
            _ = ticket.call_ended() => Err(EgressError::CallEnded),
            result = self.exchange(scope, ticket, request, &mut exchange) => result,
        };
        exchange.elapsed = started.elapsed();
        exchange.failure = result.as_ref().err().and_then(EgressError::failure);
        if let Err(EgressError::Denied(d)) = &result {
            self.note_denial(d);
            exchange.denied = Some(d.to_string());
        }
        scope.record(ticket, exchange);
        result
    }

    fn note_denial(&self, denial: &Denial) {
        let n = self.inner.counters.denied.fetch_add(1, Ordering::Relaxed) + 1;
        // Every denial is counted (run summary) and logged, but a plugin
        // retrying a denied request in a loop must not flood the log: the
        // first ones are warnings, the rest debug.
        if n <= LOUD_DENIALS {
            tracing::warn!(target: "batchllm::egress", denial = %denial, "request denied");
            if n == LOUD_DENIALS {
                tracing::warn!(target: "batchllm::egress", "further denials are logged at debug level (-v)");
            }
        } else {
            tracing::debug!(target: "batchllm::egress", denial = %denial, "request denied");
        }
    }

    async fn exchange(
        &self,
        scope: &CallScope,
        ticket: &Ticket,
        request: OutboundRequest,
        exchange: &mut Exchange,
    ) -> Result<InboundResponse, EgressError> {
        let url = parse_url(&request.url);
        if let Ok(url) = &url {
            exchange.authority = authority_of(url);
        }
        if let Some(refused) = ticket.refused() {
            return Err(refused.clone().into());
        }
        let url = url.map_err(|e| EgressError::InvalidRequest(format!("bad URL `{}`: {e}", request.url)))?;
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
        let timeout = self.effective_timeout(request.timeout, ticket.deadline())?;
        let client = match reach {
            Reach::PublicOnly => &self.inner.screened,
            Reach::Any => &self.inner.direct,
        };
        let round_trip = async {
            // Waiting for a slot counts against the request's own time.
            let _slot = if ticket.seated() { None } else { scope.slot().await };
            self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            let response = client.request(method, url.clone()).headers(headers).body(request.body).send().await;
            let response = response.map_err(classify_reqwest)?;
            let status = response.status().as_u16();
            exchange.status = Some(status);
            let headers = collect_headers(response.headers());
            // Scrubbed too: request ids end up in the results file.
            exchange.signal_headers = headers
                .iter()
                .filter(|(k, _)| is_signal_header(k))
                .map(|(k, v)| (k.clone(), self.inner.secrets.scrub(v)))
                .collect();
            let mut hold = scope.buffered().hold();
            hold.grow(headers.iter().map(|(k, v)| k.len() + v.len()).sum())?;
            let body = self.read_body(response, &mut hold).await?;
            Ok::<_, EgressError>(Received { status, headers, body, hold })
        };
        let received = match tokio::time::timeout(timeout, round_trip).await {
            Ok(result) => result?,
            Err(_) => return Err(EgressError::Timeout(format!("no complete response within {timeout:?}"))),
        };
        Ok(self.hand_over(received, &url))
    }

    /// Scrubs a response for the plugin: secret values out of headers and
    /// body, and an encoded body from a host secrets go to withheld.
    fn hand_over(&self, received: Received, url: &reqwest::Url) -> InboundResponse {
        let Received { status, headers, body, hold } = received;
        let secrets = &self.inner.secrets;
        let mut headers: Vec<(String, String)> =
            headers.into_iter().map(|(k, v)| (secrets.scrub_owned(k), secrets.scrub_owned(v))).collect();
        let encoding = headers
            .iter()
            .find(|(k, _)| k == "content-encoding")
            .map(|(_, v)| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty() && v != "identity");
        let body = match encoding {
            Some(encoding) if secrets.any_may_go_to(url) => {
                tracing::debug!(target: "batchllm::egress", authority = %authority_of(url), %encoding,
                    "withheld an encoded response body from a host secrets are sent to");
                headers.retain(|(k, _)| k != "content-encoding" && k != "content-length");
                format!(
                    "[response withheld: its body is {encoding}-encoded (the host asked for identity), and encoded bytes could carry a secret past the scrubber]"
                )
                .into_bytes()
            }
            _ => secrets.scrub_bytes(body),
        };
        InboundResponse { status, headers, body, hold }
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
        use reqwest::header::{ACCEPT_ENCODING, HeaderName, HeaderValue};
        let mut map = reqwest::header::HeaderMap::with_capacity(headers.len() + 1);
        for (name, value) in headers {
            let lname = name.to_ascii_lowercase();
            match lname.as_str() {
                // Computed by the client from the body and URL; the encoding
                // is always identity (see the module docs).
                "content-length" | "host" | "accept-encoding" => continue,
                "transfer-encoding" | "connection" | "upgrade" | "te" | "proxy-authorization" => {
                    return Err(EgressError::InvalidRequest(format!("header `{name}` may not be set by a plugin")));
                }
                _ => {}
            }
            let value = self.inner.secrets.substitute(value, url)?;
            let name = HeaderName::from_bytes(lname.as_bytes())
                .map_err(|_| EgressError::InvalidRequest(format!("bad header name `{}`", name.escape_debug())))?;
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| EgressError::InvalidRequest(format!("bad value for header `{name}`")))?;
            value.set_sensitive(name == reqwest::header::AUTHORIZATION || name.as_str().contains("key"));
            map.append(name, value);
        }
        map.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        Ok(map)
    }

    async fn read_body(&self, mut response: reqwest::Response, hold: &mut BufferHold) -> Result<Vec<u8>, EgressError> {
        let limit = self.inner.limits.max_response_bytes;
        // Sized from the announced length when it is within the limit, so an
        // honest body is not over-allocated by doubling.
        let announced = response.content_length().and_then(|n| usize::try_from(n).ok()).filter(|&n| n <= limit);
        let mut body = Vec::with_capacity(announced.unwrap_or(0));
        while let Some(chunk) = response.chunk().await.map_err(classify_reqwest)? {
            if body.len() + chunk.len() > limit {
                return Err(EgressError::TooLarge(format!("response body exceeds the limit of {limit} bytes")));
            }
            hold.grow(chunk.len())?;
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Parses a request's URL. A plugin sends request after request to the same
/// URL, so each thread keeps the last one parsed: a clone instead of a
/// parse (a pure function of the text, so any caller may share it).
fn parse_url(text: &str) -> Result<reqwest::Url, <reqwest::Url as std::str::FromStr>::Err> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(String, reqwest::Url)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else { return text.parse() };
        if let Some((seen, url)) = last.as_ref()
            && seen == text
        {
            return Ok(url.clone());
        }
        let url: reqwest::Url = text.parse()?;
        *last = Some((text.to_owned(), url.clone()));
        Ok(url)
    })
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
    EgressError::Transport { timed_out: e.is_timeout(), source: Arc::new(e) }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::egress::HostGrant;

    /// A loopback server answering every request with `reply` after
    /// `delay`; it keeps the request heads and the most connections it saw
    /// at once.
    struct Server {
        port: u16,
        heads: Arc<Mutex<Vec<String>>>,
        peak: Arc<AtomicUsize>,
    }

    async fn server(reply: &'static [u8], delay: Duration) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (open, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (h, p) = (heads.clone(), peak.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (h, open, p) = (h.clone(), open.clone(), p.clone());
                tokio::spawn(async move {
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    h.lock().expect("lock").push(String::from_utf8_lossy(&buf).to_ascii_lowercase());
                    tokio::time::sleep(delay).await;
                    let _ = socket.write_all(reply).await;
                    let _ = socket.shutdown().await;
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Server { port, heads, peak }
    }

    fn egress(port: u16, secret: bool, limits: EgressLimits) -> Egress {
        let policy = EgressPolicy::new(vec![HostGrant::exact("127.0.0.1", port)]);
        let values = if secret { vec![("k".to_string(), "sk-abc".to_string())] } else { Vec::new() };
        Egress::new(policy.clone(), Secrets::from_values(values, policy), limits).expect("client")
    }

    fn get(port: u16, headers: &[(&str, &str)]) -> OutboundRequest {
        OutboundRequest {
            method: "GET".into(),
            url: format!("http://127.0.0.1:{port}/"),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: Vec::new(),
            timeout: Some(Duration::from_secs(10)),
        }
    }

    const GZIPPED: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 4\r\nconnection: close\r\n\r\n\x1f\x8b\x08\x00";
    const SIXTY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 60\r\nconnection: close\r\n\r\n012345678901234567890123456789012345678901234567890123456789";

    #[test]
    fn a_url_parsed_again_is_the_same_url() {
        for text in ["http://127.0.0.1:9/v1/chat", "http://127.0.0.1:9/v1/chat", "https://a.example/x", "not a url"] {
            assert_eq!(parse_url(text), text.parse::<reqwest::Url>(), "{text}");
        }
        assert_eq!(parse_url("http://h/a").map(String::from), Ok("http://h/a".to_string()));
        assert_eq!(parse_url("http://h/b").map(String::from), Ok("http://h/b".to_string()), "not the last one");
    }

    #[tokio::test]
    async fn the_host_asks_for_identity_whatever_the_plugin_asks_for() {
        let s = server(SIXTY, Duration::ZERO).await;
        let egress = egress(s.port, false, EgressLimits::default());
        let scope = CallScope::default();
        scope.begin(Some("a"), None);
        egress.send(&scope, get(s.port, &[("Accept-Encoding", "gzip, br")])).await.expect("answered");
        let heads = s.heads.lock().expect("lock").clone();
        assert_eq!(heads.len(), 1);
        assert!(heads[0].contains("accept-encoding: identity\r\n"), "{}", heads[0]);
        assert!(!heads[0].contains("gzip"), "{}", heads[0]);
    }

    #[tokio::test]
    async fn an_encoded_body_from_a_host_secrets_go_to_is_withheld() {
        let s = server(GZIPPED, Duration::ZERO).await;
        let scope = CallScope::default();
        scope.begin(Some("a"), None);
        let with_secret = egress(s.port, true, EgressLimits::default());
        let r = with_secret.send(&scope, get(s.port, &[("authorization", "{{secret:k}}")])).await.expect("answered");
        assert!(String::from_utf8_lossy(&r.body).starts_with("[response withheld: its body is gzip-encoded"));
        assert!(r.headers.iter().all(|(k, _)| k != "content-encoding" && k != "content-length"), "{:?}", r.headers);
        // Even when this request carried no secret: the host is one a secret goes to.
        let r = with_secret.send(&scope, get(s.port, &[])).await.expect("answered");
        assert!(r.body.starts_with(b"[response withheld"));
        // No secret may go there: the body is the plugin's business.
        let without = egress(s.port, false, EgressLimits::default());
        let r = without.send(&scope, get(s.port, &[])).await.expect("answered");
        assert_eq!(r.body, b"\x1f\x8b\x08\x00");
    }

    #[tokio::test]
    async fn a_call_sends_at_most_its_budget_and_records_the_refusals() {
        let s = server(SIXTY, Duration::ZERO).await;
        let limits = EgressLimits { max_requests_per_call: 2, ..EgressLimits::default() };
        let egress = egress(s.port, false, limits);
        let scope = CallScope::new(egress.limits());
        scope.begin(Some("a"), None);
        let mut outcomes = Vec::new();
        for _ in 0..5 {
            outcomes.push(egress.send(&scope, get(s.port, &[])).await.map(|_| ()));
        }
        assert!(outcomes[..2].iter().all(Result::is_ok), "{outcomes:?}");
        for refused in &outcomes[2..] {
            assert!(matches!(refused, Err(EgressError::Denied(Denial::RequestBudget { limit: 2 }))), "{refused:?}");
        }
        assert_eq!(s.heads.lock().expect("lock").len(), 2, "the server saw the budget, no more");
        let exchanges = scope.finish();
        assert_eq!(exchanges.iter().filter(|e| e.denied.is_some()).count(), 3);
        assert_eq!(exchanges.iter().filter(|e| e.status == Some(200)).count(), 2);
        assert!(exchanges.iter().all(|e| e.authority == format!("127.0.0.1:{}", s.port)));
        assert_eq!(egress.counters().requests.load(Ordering::Relaxed), 2);
        assert_eq!(egress.counters().denied.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn held_response_bytes_are_bounded_per_instance() {
        let s = server(SIXTY, Duration::ZERO).await;
        let limits = EgressLimits { max_buffered_response_bytes: 150, ..EgressLimits::default() };
        let egress = egress(s.port, false, limits);
        let scope = CallScope::new(egress.limits());
        scope.begin(Some("a"), None);
        let first = egress.send(&scope, get(s.port, &[])).await.expect("fits");
        assert!(first.hold.bytes() >= 60, "headers and body are held: {}", first.hold.bytes());
        let second = egress.send(&scope, get(s.port, &[])).await;
        assert!(matches!(second, Err(EgressError::OverBudget(_))), "{second:?}");
        assert_eq!(scope.finish().last().and_then(|e| e.failure), Some(ExchangeFailure::TooLarge));
        drop(first);
        scope.begin(Some("b"), None);
        egress.send(&scope, get(s.port, &[])).await.expect("room again once the first is gone");
    }

    #[tokio::test]
    async fn requests_in_flight_are_capped_per_instance() {
        let s = server(SIXTY, Duration::from_millis(150)).await;
        let limits = EgressLimits { max_requests_in_flight: 2, ..EgressLimits::default() };
        let egress = egress(s.port, false, limits);
        let scope = CallScope::new(egress.limits());
        scope.begin(Some("a"), None);
        let sends = (0..6).map(|_| {
            let (egress, scope) = (egress.clone(), scope.clone());
            let ticket = scope.admit();
            tokio::spawn(async move { egress.send_admitted(&scope, &ticket, get(s.port, &[])).await.map(|_| ()) })
        });
        for send in sends.collect::<Vec<_>>() {
            send.await.expect("join").expect("answered in turn");
        }
        assert_eq!(s.peak.load(Ordering::SeqCst), 2, "never more than two at once");
        assert_eq!(s.heads.lock().expect("lock").len(), 6);
    }

    #[tokio::test]
    async fn a_request_seated_early_uses_its_slot_and_gives_it_back() {
        let s = server(SIXTY, Duration::ZERO).await;
        let limits = EgressLimits { max_requests_in_flight: 1, ..EgressLimits::default() };
        let egress = egress(s.port, false, limits);
        let scope = CallScope::new(egress.limits());
        scope.begin(Some("a"), None);
        for _ in 0..3 {
            let mut ticket = scope.admit();
            scope.seat(&mut ticket).await;
            let sent = egress.send_admitted(&scope, &ticket, get(s.port, &[]));
            tokio::time::timeout(Duration::from_secs(5), sent).await.expect("no second slot wanted").expect("ok");
        }
    }

    #[tokio::test]
    async fn a_request_outliving_its_call_is_cancelled() {
        let s = server(SIXTY, Duration::from_secs(30)).await;
        let egress = egress(s.port, false, EgressLimits::default());
        let scope = CallScope::new(egress.limits());
        scope.begin(Some("a"), None);
        let ticket = scope.admit();
        let pending = {
            let (egress, scope) = (egress.clone(), scope.clone());
            tokio::spawn(async move { egress.send_admitted(&scope, &ticket, get(s.port, &[])).await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        scope.finish();
        scope.begin(Some("b"), None);
        let ended = tokio::time::timeout(Duration::from_secs(5), pending).await.expect("ends with its call");
        assert!(matches!(ended.expect("join"), Err(EgressError::CallEnded)));
        assert!(scope.finish().is_empty(), "nothing recorded against the next call");
    }
}
