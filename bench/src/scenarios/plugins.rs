//! What a plugin costs the host, per plugin, measured in process through the
//! host's own sandbox (`batchllm_host::sandbox`), the way a run uses it:
//!
//! - **cold compile**: Cranelift into an empty compile cache (what the first
//!   run of a new plugin version pays), and the entry it leaves;
//! - **cached load**: reading and hashing the file plus loading the cached
//!   code (what every later run pays at start-up); the cache must not grow,
//!   i.e. no plugin is compiled twice for one digest;
//! - **instantiate**: a fresh instance from the linked component (each
//!   worker pays it once, and again after a trap);
//! - **memory per instance**: resident memory added per live instance that
//!   has served one call;
//! - **call**: one `on-error` call on a warm instance, the plain cost of
//!   crossing into the plugin with an item (no HTTP);
//! - **execute overhead**: median `execute` against the in-process mock at
//!   zero latency minus the median of the same request sent directly with
//!   reqwest.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use batchllm_host::check::wired_to_mock;
use batchllm_host::model::{AttemptInfo, FailureClass, PluginError, PluginItem, RetryState};
use batchllm_host::plugin::PluginSource;
use batchllm_host::sandbox::{self, CompileCache, PluginInstance, SandboxEngine, SandboxLimits};
use batchllm_mock::MockServer;
use serde_json::json;

use crate::host::KEY;
use crate::report::{Row, duration};
use crate::scenarios::{Options, mock};

/// How a plugin is configured to reach the mock.
#[derive(Debug, Clone, Copy)]
enum Reach {
    /// `base_url` = the mock's `/v1` URL (OpenAI-compatible strategies).
    OpenAi,
    /// `base_url` = the mock's origin (Anthropic, Gemini).
    Origin,
    /// No provider at all.
    Nothing,
}

/// The plugins measured: the built-ins, then the other languages' openai
/// plugins when their build scripts have produced them.
fn plugins() -> Vec<(&'static str, String, Reach)> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let file = |p: &str| repo.join(p).display().to_string();
    vec![
        ("openai (Rust)", "openai".into(), Reach::OpenAi),
        ("anthropic (Rust)", "anthropic".into(), Reach::Origin),
        ("gemini (Rust)", "gemini".into(), Reach::Origin),
        ("smart-retry (Rust)", "smart-retry".into(), Reach::OpenAi),
        ("mock (Rust, no HTTP)", "mock".into(), Reach::Nothing),
        ("openai-go (Go)", file("plugins/openai-go/dist/openai-go.wasm"), Reach::OpenAi),
        ("openai-js (JS)", file("plugins/openai-js/dist/openai-js.wasm"), Reach::OpenAi),
        ("openai-js-fetch (JS, wasi:http)", file("plugins/openai-js/dist/openai-js-fetch.wasm"), Reach::OpenAi),
        ("openai-py (Python)", file("plugins/openai-py/dist/openai-py.wasm"), Reach::OpenAi),
    ]
}

/// The figures of one plugin.
struct Costs {
    size: u64,
    cold: Duration,
    cached: Duration,
    compiled_once: bool,
    instantiate: Duration,
    memory_per_instance: f64,
    call: Duration,
    execute: Option<(Duration, Duration)>,
}

/// The plugin scenario's rows (its targets) and its own table: one line per
/// plugin with every cost.
pub(crate) async fn run(_setup: &crate::host::Setup, options: &Options) -> anyhow::Result<(Vec<Row>, String)> {
    let server = mock(|_| {}).await?;
    let client = reqwest::Client::builder().no_proxy().tcp_nodelay(true).build()?;
    let mut measured = Vec::new();
    let mut table = String::from(
        "| Plugin | Size | Cold compile | Cached load | Instantiate | Memory per instance | Call (on-error) | execute over direct HTTP |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (label, spec, reach) in plugins() {
        if spec.ends_with(".wasm") && !Path::new(&spec).is_file() {
            eprintln!("plugins: {label}: {spec} not built; run its build.sh (scripts/bench.sh does)");
            table.push_str(&format!("| {label} | not built: run its build.sh | | | | | | |\n"));
            continue;
        }
        let costs =
            measure(&spec, reach, &server, &client, options).await.with_context(|| format!("plugin {label}"))?;
        eprintln!("plugins: {label}: {}", summary(&costs));
        table.push_str(&table_line(label, &costs));
        measured.push((label, costs));
    }
    server.shutdown().await;
    Ok((target_rows(&measured), table))
}

fn summary(c: &Costs) -> String {
    format!(
        "{:.2} MB, cold {}, cached {}, instantiate {}, {:.1} MiB/instance, call {}, execute {}",
        c.size as f64 / 1e6,
        duration(c.cold),
        duration(c.cached),
        duration(c.instantiate),
        c.memory_per_instance,
        duration(c.call),
        c.execute.map(|(p, d)| format!("{} vs {} direct", duration(p), duration(d))).unwrap_or_else(|| "-".into()),
    )
}

fn table_line(label: &str, c: &Costs) -> String {
    let execute = match c.execute {
        Some((plugin, direct)) => {
            format!("+{} ({} vs {})", duration(plugin.saturating_sub(direct)), duration(plugin), duration(direct))
        }
        None => "not compared (no OpenAI-shaped request)".into(),
    };
    format!(
        "| {label} | {:.2} MB | {} | {} | {} | {:.1} MiB | {} | {execute} |\n",
        c.size as f64 / 1e6,
        duration(c.cold),
        duration(c.cached),
        duration(c.instantiate),
        c.memory_per_instance,
        duration(c.call),
    )
}

/// The plugin targets: the Rust openai plugin loads from the cache within
/// 50 ms, and no plugin was compiled twice for its digest.
fn target_rows(measured: &[(&'static str, Costs)]) -> Vec<Row> {
    let mut rows = Vec::new();
    if let Some((label, c)) = measured.iter().find(|(label, _)| label.starts_with("openai (Rust)")) {
        rows.push(
            Row::info("plugins", format!("{label}: cached load (read + hash + load)"), duration(c.cached))
                .against(
                    format!("{} cold compile", duration(c.cold)),
                    format!("{:.1}%", 100.0 * ratio(c.cached, c.cold)),
                )
                .target("<= 50 ms", c.cached <= Duration::from_millis(50)),
        );
    }
    let once = measured.iter().filter(|(_, c)| c.compiled_once).count();
    rows.push(
        Row::info(
            "plugins",
            "plugins compiled once per digest (a second load hits the cache)",
            format!("{once} of {}", measured.len()),
        )
        .target("all", once == measured.len()),
    );
    rows
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

async fn measure(
    spec: &str,
    reach: Reach,
    server: &MockServer,
    client: &reqwest::Client,
    options: &Options,
) -> anyhow::Result<Costs> {
    let limits = SandboxLimits::default();
    let engine = SandboxEngine::new(&limits, 64).map_err(|e| anyhow!("{e}"))?;
    let cache_dir = tempfile::tempdir()?;
    let plugin = PluginSource::resolve(spec).map_err(|e| anyhow!("{e}"))?;
    let size = plugin.bytes.len() as u64;

    let started = Instant::now();
    let cache = CompileCache::new(Some(cache_dir.path().to_path_buf()));
    cache.load(&engine, &plugin.bytes, &plugin.digest).map_err(|e| anyhow!("{e}"))?;
    let cold = started.elapsed();
    let entries_before = cache_entries(cache_dir.path())?;

    let started = Instant::now();
    let again = PluginSource::resolve(spec).map_err(|e| anyhow!("{e}"))?;
    cache.load(&engine, &again.bytes, &again.digest).map_err(|e| anyhow!("{e}"))?;
    let cached = started.elapsed();
    let compiled_once = entries_before.len() == 1 && cache_entries(cache_dir.path())? == entries_before;

    let mut config = serde_json::Map::new();
    match reach {
        Reach::OpenAi => config.insert("base_url".into(), server.base_url().into()),
        Reach::Origin => config.insert("base_url".into(), server.origin().into()),
        Reach::Nothing => None,
    };
    let loaded = wired_to_mock(&plugin, server, KEY, config, &cache, &limits, 64).map_err(|e| anyhow!(e))?;
    let (pre, shared) = (loaded.pre, loaded.shared);

    let samples = if options.quick { 3 } else { 10 };
    let mut instantiate = Vec::new();
    for _ in 0..samples {
        let started = Instant::now();
        let instance = PluginInstance::new(&pre, shared.clone()).await.map_err(|e| anyhow!("{e}"))?;
        instantiate.push(started.elapsed());
        drop(instance);
    }

    let mut first = PluginInstance::new(&pre, shared.clone()).await.map_err(|e| anyhow!("{e}"))?;
    match first.prepare().await.result {
        Ok(Ok(())) => {}
        other => bail!("prepare failed: {other:?}"),
    }
    let live = if options.quick { 4 } else { 16 };
    let memory_per_instance = memory_per_instance(&pre, &shared, live).await?;

    let calls = if options.quick { 50 } else { 1_000 };
    let call = timed(&mut first, calls, Call::OnError).await?;
    let n = if options.quick { 20 } else { 300 };
    let plugin_time = timed(&mut first, n, Call::Execute).await?;
    let execute = match reach {
        Reach::OpenAi => {
            let mut times = Vec::with_capacity(n);
            for _ in 0..n {
                let started = Instant::now();
                direct(client, server).await?;
                times.push(started.elapsed());
            }
            Some((plugin_time, median(times)))
        }
        Reach::Origin | Reach::Nothing => None,
    };
    Ok(Costs {
        size,
        cold,
        cached,
        compiled_once,
        instantiate: median(instantiate),
        memory_per_instance,
        call,
        execute,
    })
}

fn cache_entries(dir: &Path) -> anyhow::Result<Vec<(PathBuf, std::time::SystemTime)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|x| x == "cwasm") {
            entries.push((entry.path(), entry.metadata()?.modified()?));
        }
    }
    entries.sort();
    Ok(entries)
}

/// Resident memory added per instance, over `live` instances that have
/// each served one `execute`.
async fn memory_per_instance(
    pre: &sandbox::PluginPre,
    shared: &std::sync::Arc<sandbox::RunShared>,
    live: usize,
) -> anyhow::Result<f64> {
    let before = resident_bytes()?;
    let mut instances = Vec::new();
    for _ in 0..live {
        let mut instance = PluginInstance::new(pre, shared.clone()).await.map_err(|e| anyhow!("{e}"))?;
        execute(&mut instance).await?;
        instances.push(instance);
    }
    let after = resident_bytes()?;
    drop(instances);
    Ok(after.saturating_sub(before) as f64 / live as f64 / f64::from(1u32 << 20))
}

/// This process's resident set, from `/proc/self/statm`.
fn resident_bytes() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm.split_whitespace().nth(1).context("statm")?.parse()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Ok(pages * u64::try_from(page).unwrap_or(4096))
}

fn item() -> PluginItem {
    PluginItem {
        id: "bench".into(),
        prompt: "Summarise item number 1 in one line.".into(),
        params: "{}".into(),
        context: None,
        endpoint: None,
    }
}

fn attempt() -> AttemptInfo {
    AttemptInfo { number: 1, rate_limit_retries: 0, time_left: Duration::from_secs(10) }
}

/// One `execute`; any outcome counts except a trap (the instance is then
/// gone), since the Anthropic and Gemini plugins may answer errors here.
async fn execute(instance: &mut PluginInstance) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    match instance.execute(&item(), &attempt(), &RetryState::new(), deadline).await.result {
        Ok(_) => Ok(()),
        Err(e) => bail!("execute trapped: {e}"),
    }
}

async fn on_error(instance: &mut PluginInstance) -> anyhow::Result<()> {
    let error = PluginError {
        class: FailureClass::Overloaded,
        message: "HTTP 503".into(),
        http_status: Some(503),
        retry_after: None,
        usage: None,
        response_body: None,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    match instance.on_error(&item(), &error, &attempt(), &RetryState::new(), deadline).await.result {
        Ok(_) => Ok(()),
        Err(e) => bail!("on-error trapped: {e}"),
    }
}

/// The request the openai plugin sends, sent by reqwest directly.
async fn direct(client: &reqwest::Client, server: &MockServer) -> anyhow::Result<()> {
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": item().prompt}]});
    let response = client
        .post(format!("{}/chat/completions", server.base_url()))
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body)?)
        .send()
        .await?;
    let bytes = response.error_for_status()?.bytes().await?;
    let _: serde_json::Value = serde_json::from_slice(&bytes)?;
    Ok(())
}

/// A call whose cost is measured.
#[derive(Debug, Clone, Copy)]
enum Call {
    OnError,
    Execute,
}

/// The median wall time of `n` calls on `instance`.
async fn timed(instance: &mut PluginInstance, n: usize, call: Call) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        match call {
            Call::OnError => on_error(instance).await?,
            Call::Execute => execute(instance).await?,
        }
        times.push(started.elapsed());
    }
    Ok(median(times))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}
