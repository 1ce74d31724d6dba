//! `batchllm-host plugin check PLUGIN`: does a plugin keep the contract?
//!
//! Plugin authors run this before publishing. It loads the component (the
//! world check), then calls the plugin directly against the bundled mock
//! provider, one scenario per row, and looks at what the plugin returned and
//! what the server saw: a success with usage, a 429 with `retry-after`
//! classified as rate-limited with the wait, a 500 as overloaded, a 400 as a
//! client error, a malformed body as an invalid response, an empty answer
//! as no content (contract 0.2 and later), exactly one request per
//! `execute` (no retries inside the plugin), and an answer within the time
//! it was given. A plugin built against an older contract version passes
//! the checks that version can meet.

use std::time::{Duration, Instant};

use batchllm_mock::{MockConfig, MockServer};

use crate::egress::{Egress, EgressLimits, EgressPolicy, HostGrant, Secrets};
use crate::model::{Answer, AttemptInfo, CallOutcome, FailureClass, PluginError, PluginItem, RetryState};
use crate::plugin::PluginSource;
use crate::sandbox::{self, CompileCache, ContractVersion, PluginInstance, SandboxLimits};

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// All checks of one plugin.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub rows: Vec<CheckRow>,
}

impl CheckReport {
    fn add(&mut self, name: &'static str, outcome: Result<String, String>) {
        let (passed, detail) = match outcome {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.rows.push(CheckRow { name, passed, detail });
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.passed)
    }

    /// The pass/fail table.
    pub fn table(&self) -> String {
        let width = self.rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for r in &self.rows {
            let mark = if r.passed { "pass" } else { "FAIL" };
            out.push_str(&format!("{mark}  {:width$}  {}\n", r.name, r.detail));
        }
        let failed = self.rows.iter().filter(|r| !r.passed).count();
        out.push_str(&format!("{} passed, {failed} failed\n", self.rows.len() - failed));
        out
    }
}

const KEY: &str = "sk-plugin-check";

/// How long the plugin is given for the hang scenario.
const TIME_GIVEN: Duration = Duration::from_millis(800);

/// Runs every check on `spec` (a built-in name or a component path).
pub async fn check_plugin(spec: &str, cache: CompileCache) -> CheckReport {
    let mut report = CheckReport::default();
    let plugin = match PluginSource::resolve(spec) {
        Ok(p) => p,
        Err(e) => {
            report.add("load", Err(e.to_string()));
            return report;
        }
    };
    let server = match MockServer::start(MockConfig { api_key: Some(KEY.into()), ..MockConfig::default() }).await {
        Ok(s) => s,
        Err(e) => {
            report.add("mock provider", Err(format!("{e:#}")));
            return report;
        }
    };
    let limits = SandboxLimits::default();
    let linked = link(&plugin, &server, &cache, &limits);
    let loaded = match linked {
        Ok(v) => v,
        Err(e) => {
            report.add("world", Err(e));
            server.shutdown().await;
            return report;
        }
    };
    let version = loaded.pre.version();
    let older = match version {
        ContractVersion::V0_2 => "",
        ContractVersion::V0_1 => " (an older contract: rebuild against 0.2 to report answers with no content)",
    };
    report
        .add("world", Ok(format!("exports batchllm:strategy/llm-strategy@{version}; every import is offered{older}")));
    let mut instance = match PluginInstance::new(&loaded.pre, loaded.shared.clone()).await {
        Ok(i) => i,
        Err(e) => {
            report.add("instantiate", Err(e.to_string()));
            server.shutdown().await;
            return report;
        }
    };
    let prepared = instance.prepare().await.result;
    report.add(
        "prepare",
        match prepared {
            Ok(Ok(())) => Ok("succeeded".into()),
            Ok(Err(e)) => Err(format!("{}: {}", e.class, e.message)),
            Err(e) => Err(e.to_string()),
        },
    );
    if report.passed() {
        run_scenarios(&mut report, &mut instance, &server).await;
        let cleaned = cleanup(instance).await;
        report.add("cleanup", cleaned);
    }
    server.shutdown().await;
    report
}

fn link(
    plugin: &PluginSource,
    server: &MockServer,
    cache: &CompileCache,
    limits: &SandboxLimits,
) -> Result<sandbox::LoadedPlugin, String> {
    let mut config = serde_json::Map::new();
    config.insert("base_url".into(), server.base_url().into());
    wired_to_mock(plugin, server, KEY, config, cache, limits, 8)
}

/// `plugin` loaded so that its only way out is `server`, with `key` as its
/// `api-key` secret and `config` as its configuration: what `plugin check`
/// and the plugin benchmarks call plugins through.
pub fn wired_to_mock(
    plugin: &PluginSource,
    server: &MockServer,
    key: &str,
    config: serde_json::Map<String, serde_json::Value>,
    cache: &CompileCache,
    limits: &SandboxLimits,
    instances: usize,
) -> Result<sandbox::LoadedPlugin, String> {
    let addr = server.addr();
    let policy = EgressPolicy::new(vec![HostGrant::exact(&addr.ip().to_string(), addr.port())]);
    let secrets = Secrets::from_values(vec![("api-key".into(), key.into())], policy.clone());
    let egress = Egress::new(policy, secrets, EgressLimits::default()).map_err(|e| e.to_string())?;
    sandbox::load(plugin, cache, limits, instances, &config, egress).map_err(|e| crate::model::error_chain(&e))
}

async fn cleanup(mut instance: PluginInstance) -> Result<String, String> {
    if !instance.is_usable() {
        return Err("the instance was lost earlier; cleanup not called".into());
    }
    match instance.cleanup().await.result {
        Ok(Ok(())) => Ok("succeeded".into()),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(e.to_string()),
    }
}

/// One call of `execute` with `prompt`, and what the server saw of it.
struct Call {
    outcome: CallOutcome<Result<Answer, PluginError>>,
    requests: usize,
    elapsed: Duration,
}

async fn call(instance: &mut PluginInstance, server: &MockServer, n: u32, prompt: &str, time: Duration) -> Call {
    server.reset();
    let item = PluginItem {
        id: format!("check-{n}"),
        prompt: prompt.to_string(),
        params: "{}".into(),
        context: None,
        endpoint: None,
    };
    let attempt = AttemptInfo { number: 1, rate_limit_retries: 0, time_left: time };
    let started = Instant::now();
    let outcome = instance.execute(&item, &attempt, &RetryState::new(), started + time).await;
    let elapsed = started.elapsed();
    // Requests the plugin made, not the check's own bookkeeping.
    let requests = server.requests().iter().filter(|r| !r.path.contains("cachedContents")).count();
    Call { outcome, requests, elapsed }
}

fn one_request(c: &Call) -> Result<(), String> {
    match c.requests {
        1 => Ok(()),
        0 => Err("the plugin sent no request".into()),
        n => Err(format!("the plugin sent {n} requests for one execute: plugins must not retry")),
    }
}

fn expect_error(c: &Call, class: FailureClass, status: u16) -> Result<String, String> {
    one_request(c)?;
    match &c.outcome.result {
        Ok(Ok(_)) => Err(format!("HTTP {status} was reported as a success")),
        Ok(Err(e)) if e.class == class => Ok(format!("{} ({})", e.class, truncate(&e.message, 60))),
        Ok(Err(e)) => Err(format!("HTTP {status} classified as {}, expected {class}", e.class)),
        Err(e) => Err(format!("the call failed: {e}")),
    }
}

async fn run_scenarios(report: &mut CheckReport, instance: &mut PluginInstance, server: &MockServer) {
    let generous = Duration::from_secs(10);
    let c = call(instance, server, 1, "hello from plugin check", generous).await;
    report.add("success with usage", success_row(&c, server));

    let c = call(instance, server, 2, "[[mock:status=429]] slow down", generous).await;
    let row = expect_error(&c, FailureClass::RateLimited, 429).and_then(|d| match &c.outcome.result {
        Ok(Err(e)) if e.retry_after.is_some_and(|w| (500..=2000).contains(&w.as_millis())) => Ok(d),
        Ok(Err(e)) => Err(format!(
            "rate limited, but retry-after-ms is {:?}, expected about 1000",
            e.retry_after.map(|w| w.as_millis())
        )),
        _ => Err(d),
    });
    report.add("429 is rate-limited with the wait", row);

    let c = call(instance, server, 3, "[[mock:status=500]] oops", generous).await;
    report.add("500 is overloaded (retryable)", expect_error(&c, FailureClass::Overloaded, 500));

    let c = call(instance, server, 4, "[[mock:status=400]] bad", generous).await;
    report.add("400 is a client error", expect_error(&c, FailureClass::ClientError, 400));

    let c = call(instance, server, 5, "[[mock:malformed]] garbled", generous).await;
    report.add("malformed body is an invalid response", expect_error(&c, FailureClass::InvalidResponse, 200));

    if instance.version() != ContractVersion::V0_1 {
        // A reasoning model that spent its whole budget: billed, no text.
        let c = call(instance, server, 7, "[[mock:answer=empty]] think hard", generous).await;
        let row = expect_error(&c, FailureClass::NoContent, 200).and_then(|d| match &c.outcome.result {
            Ok(Err(e)) if e.usage.is_some_and(|u| u.output_tokens > 0) => Ok(d),
            Ok(Err(_)) => Err("no content, but the billed usage was dropped: report it with the error".into()),
            _ => Err(d),
        });
        report.add("an empty answer is no-content (not retried)", row);
    }

    if !instance.is_usable() {
        report.add("respects the time given", Err("the instance trapped earlier".into()));
        return;
    }
    let c = call(instance, server, 6, "[[mock:hang]] wait", TIME_GIVEN).await;
    let row = one_request(&c).and_then(|()| {
        let within = c.elapsed <= TIME_GIVEN + Duration::from_millis(700);
        match &c.outcome.result {
            Ok(Err(e)) if within && e.class == FailureClass::Timeout => {
                Ok(format!("timeout after {:.2}s of {:.1}s given", c.elapsed.as_secs_f64(), TIME_GIVEN.as_secs_f64()))
            }
            // A guest HTTP stack that reports every failure alike (JS
            // `fetch`): the engine takes the cause from the host's own record
            // of the exchange, so this is still a timeout in the results.
            Ok(Err(e)) if within && host_class(&c, e) == FailureClass::Timeout => Ok(format!(
                "timeout after {:.2}s of {:.1}s given (the plugin said {}; the host records the timeout)",
                c.elapsed.as_secs_f64(),
                TIME_GIVEN.as_secs_f64(),
                e.class
            )),
            Ok(Err(e)) if within => Err(format!("a hung provider classified as {}, expected timeout", e.class)),
            Err(e) => Err(format!("the host had to stop the call ({e}): pass time-left-ms on as the HTTP timeout")),
            _ => Err(format!("took {:.2}s with {:.1}s given", c.elapsed.as_secs_f64(), TIME_GIVEN.as_secs_f64())),
        }
    });
    report.add("respects the time given", row);
}

fn success_row(c: &Call, server: &MockServer) -> Result<String, String> {
    one_request(c)?;
    let success = match &c.outcome.result {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("{}: {}", e.class, truncate(&e.message, 80))),
        Err(e) => return Err(e.to_string()),
    };
    let usage = success.usage.as_ref().ok_or("no usage reported")?;
    if server.requests().first().and_then(|r| r.usage.as_ref()).is_none() {
        return Err("the server billed no usage for the request".into());
    }
    if usage.input_tokens == 0 || usage.output_tokens == 0 {
        return Err(format!("usage {} in / {} out: both must be reported", usage.input_tokens, usage.output_tokens));
    }
    Ok(format!(
        "output {:?}, {} in / {} out tokens",
        truncate(&success.output, 40),
        usage.input_tokens,
        usage.output_tokens
    ))
}

/// The class the engine would record for this failure: the plugin's,
/// corrected by what the host saw on the wire.
fn host_class(c: &Call, e: &PluginError) -> FailureClass {
    crate::run::policy::reconcile::reconcile(e.class, None, &c.outcome.exchanges).class
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max).collect::<String>()) }
}
