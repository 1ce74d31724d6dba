//! Prometheus metrics: live counters of the run, served on `/metrics` when
//! `--metrics-addr` is given.
//!
//! The counters are updated as records are written (so they agree with the
//! results file and the summary) and read by the endpoint; rate-limit and
//! HTTP totals come from the cooldown coordinator and the egress client.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::egress::Egress;
use crate::model::{ItemStatus, ResultRecord};
use crate::run::gate::Gates;

/// Counters of the records written so far.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Set once the input is validated and the plugin prepared.
    started: std::sync::atomic::AtomicBool,
    /// Records an earlier run left, which this run keeps (not in the
    /// Prometheus counters, which count this run's work).
    resumed_succeeded: AtomicU64,
    resumed_failed: AtomicU64,
    items_to_run: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    attempts: AtomicU64,
    input_tokens: AtomicU64,
    cached_input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    reasoning_tokens: AtomicU64,
    cost_micro_usd: AtomicU64,
    failures: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// Sets the number of items this run will give a record.
    pub fn set_items_to_run(&self, n: u64) {
        self.items_to_run.store(n, Ordering::Relaxed);
    }

    /// Marks the run started: the input is valid, the plugin prepared, and
    /// `kept` records (`kept_failed` of them failures) came from an earlier run.
    pub fn set_started(&self, kept: u64, kept_failed: u64) {
        self.resumed_failed.store(kept_failed, Ordering::Relaxed);
        self.resumed_succeeded.store(kept.saturating_sub(kept_failed), Ordering::Relaxed);
        self.started.store(true, Ordering::Release);
    }

    /// The counters now, resumed records included.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let resumed_succeeded = get(&self.resumed_succeeded);
        let resumed_failed = get(&self.resumed_failed);
        MetricsSnapshot {
            started: self.started.load(Ordering::Acquire),
            jobs: get(&self.items_to_run).saturating_add(resumed_succeeded).saturating_add(resumed_failed),
            succeeded: get(&self.succeeded).saturating_add(resumed_succeeded),
            failed: get(&self.failed).saturating_add(resumed_failed),
            input_tokens: get(&self.input_tokens),
            cached_input_tokens: get(&self.cached_input_tokens),
            output_tokens: get(&self.output_tokens),
            reasoning_tokens: get(&self.reasoning_tokens),
            cost_usd: get(&self.cost_micro_usd) as f64 / 1e6,
        }
    }

    /// Counts one written record.
    pub fn record(&self, r: &ResultRecord) {
        let b = &r.batchllm;
        match b.status {
            ItemStatus::Succeeded => self.succeeded.fetch_add(1, Ordering::Relaxed),
            ItemStatus::Failed => self.failed.fetch_add(1, Ordering::Relaxed),
        };
        if let Some(class) = b.error_class {
            *self.failures.lock().unwrap_or_else(|p| p.into_inner()).entry(class.code()).or_default() += 1;
        }
        self.attempts.fetch_add(u64::from(b.attempts), Ordering::Relaxed);
        self.input_tokens.fetch_add(b.usage.input_tokens, Ordering::Relaxed);
        self.cached_input_tokens.fetch_add(b.usage.cached_input_tokens, Ordering::Relaxed);
        self.output_tokens.fetch_add(b.usage.output_tokens, Ordering::Relaxed);
        self.reasoning_tokens.fetch_add(b.usage.reasoning_tokens, Ordering::Relaxed);
        self.cost_micro_usd.fetch_add((b.cost_usd.unwrap_or(0.0) * 1e6).round() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of the run.
    pub fn render(&self, gates: &Gates, egress: &Egress) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP batchllm_{name} {help}\n# TYPE batchllm_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "batchllm_{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v as f64)];
        metric("items_to_run", "gauge", "Items this run will give a record.", &one(get(&self.items_to_run)));
        metric(
            "items_total",
            "counter",
            "Items with a written record, by status.",
            &[
                ("{status=\"succeeded\"}".into(), get(&self.succeeded) as f64),
                ("{status=\"failed\"}".into(), get(&self.failed) as f64),
            ],
        );
        let failures: Vec<(String, f64)> = self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(class, n)| (format!("{{class=\"{class}\"}}"), *n as f64))
            .collect();
        metric("failures_total", "counter", "Failed items by failure class.", &failures);
        metric("attempts_total", "counter", "Calls to the plugin's execute.", &one(get(&self.attempts)));
        metric(
            "tokens_total",
            "counter",
            "Tokens of written records, by kind (input includes cached).",
            &[
                ("{kind=\"input\"}".into(), get(&self.input_tokens) as f64),
                ("{kind=\"cached_input\"}".into(), get(&self.cached_input_tokens) as f64),
                ("{kind=\"output\"}".into(), get(&self.output_tokens) as f64),
                ("{kind=\"reasoning\"}".into(), get(&self.reasoning_tokens) as f64),
            ],
        );
        metric(
            "cost_usd_total",
            "counter",
            "Dollars spent (priced models).",
            &[(String::new(), get(&self.cost_micro_usd) as f64 / 1e6)],
        );
        let cooldown = gates.stats();
        metric("rate_limits_total", "counter", "Rate-limited attempts.", &one(cooldown.rate_limits));
        metric("cooldowns_total", "counter", "Coordinated cooldowns started.", &one(cooldown.cooldowns));
        metric(
            "cooldown_seconds_total",
            "counter",
            "Seconds of cooldown started.",
            &[(String::new(), cooldown.total_cooldown.as_secs_f64())],
        );
        let learned = gates.estimates();
        let gauge = |pick: fn(&crate::run::gate::Estimate) -> Option<f64>| -> Vec<(String, f64)> {
            learned
                .iter()
                .filter_map(|(scope, e)| pick(e).map(|v| (format!("{{scope=\"{}\"}}", escape_label(scope)), v)))
                .collect()
        };
        metric(
            "learned_limit_requests",
            "gauge",
            "Requests per window learned for a scope without rate-limit headers.",
            &gauge(|e| e.requests),
        );
        metric(
            "learned_limit_tokens",
            "gauge",
            "Tokens per window learned for a scope without rate-limit headers.",
            &gauge(|e| e.tokens),
        );
        metric(
            "learned_window_seconds",
            "gauge",
            "The window of the learned limit, once found.",
            &gauge(|e| e.window.map(|w| w.as_secs_f64())),
        );
        let counters = egress.counters();
        metric(
            "http_requests_total",
            "counter",
            "Requests plugins sent.",
            &one(counters.requests.load(Ordering::Relaxed)),
        );
        metric(
            "egress_denied_total",
            "counter",
            "Requests the egress policy refused.",
            &one(counters.denied.load(Ordering::Relaxed)),
        );
        out
    }
}

/// A label value as the exposition format wants it.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A run's progress as a caller sees it while it runs. Counts include the
/// records an earlier run left; tokens and cost are this run's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Whether the input was validated and the plugin prepared.
    pub started: bool,
    /// Jobs in the input (known once started).
    pub jobs: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_usd: f64,
}

/// Binds the metrics address (before the plugin is prepared, so a busy
/// port fails the run before anything runs).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves `/metrics` on `listener` until the returned handle is aborted.
pub fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    gates: Arc<Gates>,
    egress: Egress,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = metrics.render(&gates, &egress);
            async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
        }),
    );
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(%bound, "serving Prometheus metrics on /metrics");
    Ok((bound, handle))
}
