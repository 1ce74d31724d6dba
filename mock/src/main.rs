//! `batchllm-mock`: runs the mock LLM provider as a standalone process.
//!
//! Prints exactly one line to stdout, `listening on http://IP:PORT`, once the
//! port is bound (so scripts can use `--port 0` and parse the port), logs to
//! stderr (`RUST_LOG` overrides the default `info`), and exits cleanly on
//! Ctrl-C or SIGTERM.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use std::time::Duration;

use anyhow::Context;
use batchllm_mock::{
    CapacityChange, DEFAULT_CACHED_RATIO, DEFAULT_HANG_MS, DEFAULT_WINDOW_MS, MockConfig, MockServer, RateProfile,
    RetryAfter, WindowKind,
};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// A mock LLM provider (OpenAI, Anthropic Messages and Gemini
/// generateContent compatible) with fault injection.
///
/// Answers POST /v1/chat/completions, POST /v1/messages and
/// POST /v1beta/models/MODEL:generateContent with "echo: <last user message>"
/// and deterministic token usage, POST /v1/embeddings with hash-derived
/// vectors, and serves Gemini /v1beta/cachedContents. GET /_mock/requests
/// returns the request log, GET /_mock/stats the answers per status and the
/// longest gap between successes, POST /_mock/reset clears them.
///
/// Markers in the last user message target a single request:
/// [[mock:status=CODE]], [[mock:insufficient_quota]], [[mock:malformed]],
/// [[mock:hang]], [[mock:fail-first=N]], [[mock:latency=MS]],
/// [[mock:header=NAME:VALUE]], [[mock:answer=empty|null|no-choices|filtered|blocked]].
///
/// Rate-limit profiles (--profile, the rows of the benchmark's provider
/// matrix; default 600 requests per 10 s window unless --rpm, --tpm or
/// --window-ms say otherwise; explicit flags override the profile):
///   A  sliding window, limit headers, truthful retry-after (OpenAI-like)
///   B  no limit headers, retry-after: 1 always
///   C  no limit headers, no retry-after
///   D  as B with fixed calendar-aligned windows
///   E  token-bound (--tpm, default 600000), the 429 says only "tokens"
///   F  as B, capacity halved from half a window in for 1.6 windows
///   G  as A (use the Anthropic and Gemini endpoints)
#[derive(Debug, Parser)]
#[command(name = "batchllm-mock", version, verbatim_doc_comment)]
struct Cli {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,

    /// Port to listen on; 0 picks a free port (printed on stdout).
    #[arg(long, default_value_t = 0)]
    port: u16,

    /// Fixed delay before answering each admitted request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,

    /// Extra uniform random delay of 0..=MS milliseconds on top of --latency-ms.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    jitter_ms: u64,

    /// A row of the rate-limit provider matrix (A-G, see above).
    #[arg(long, value_name = "ROW", value_parser = profile)]
    profile: Option<RateProfile>,

    /// Requests allowed per window (see --window-ms); over it: 429. Unlimited
    /// if unset (600 with a --profile other than E).
    #[arg(long, value_name = "N")]
    rpm: Option<u32>,

    /// Tokens allowed per window, counting estimated prompt tokens plus
    /// max_tokens (16 if unset); over it: 429. Unlimited if unset (600000
    /// with --profile E).
    #[arg(long, value_name = "N")]
    tpm: Option<u64>,

    /// Length of the rate-limit window, in milliseconds [default: 60000, or
    /// 10000 with a --profile].
    #[arg(long, value_name = "MS")]
    window_ms: Option<u64>,

    /// How requests count against the window: `sliding` (the last
    /// --window-ms) or `fixed` (windows aligned on the clock, each starting
    /// empty).
    #[arg(long, value_name = "KIND", value_parser = window_kind)]
    window_kind: Option<WindowKind>,

    /// Whether answers carry x-ratelimit-* / anthropic-ratelimit-* headers and
    /// 429s state the limit and usage [default: true].
    #[arg(long, value_name = "BOOL")]
    limit_headers: Option<bool>,

    /// What a 429 of the rate window says about when to retry: `truthful`,
    /// `absent`, or a fixed number of SECONDS whatever the truth [default:
    /// truthful].
    #[arg(long, value_name = "MODE", value_parser = retry_after)]
    retry_after: Option<RetryAfter>,

    /// Shrink capacity for a while: from FROM_MS after start (or reset), for
    /// FOR_MS, admit SHARE (0..=1) of --rpm and --tpm. Repeatable.
    #[arg(long, value_name = "FROM_MS:FOR_MS:SHARE", value_parser = capacity)]
    capacity: Vec<CapacityChange>,

    /// Answer every provider request with a rate-limit 429 (a persistent
    /// rate limit).
    #[arg(long)]
    always_429: bool,

    /// Add this header to every provider answer, replacing one the mock
    /// would send. Repeatable; a name given twice is sent twice.
    #[arg(long = "header", value_name = "NAME:VALUE", value_parser = header)]
    headers: Vec<(String, String)>,

    /// Share (0..=1) of admitted requests answered with a 5xx, alternately 500 and 503.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = share)]
    error_rate: f64,

    /// Share (0..=1) of admitted requests answered 200 with a truncated, invalid JSON body.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = share)]
    malformed_rate: f64,

    /// Share (0..=1) of admitted requests that hang for --hang-ms, then get a 504.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = share)]
    hang_rate: f64,

    /// How long a hanging request waits before its 504, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_HANG_MS)]
    hang_ms: u64,

    /// Share (0..=1) of prompts of 1024+ tokens reported as cached_tokens
    /// (rounded down to a multiple of 64).
    #[arg(long, value_name = "SHARE", default_value_t = DEFAULT_CACHED_RATIO, value_parser = share)]
    cached_ratio: f64,

    /// Require "authorization: Bearer KEY" on provider requests; others get 401.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,

    /// Seed of the RNG behind random faults and jitter (same seed, same faults).
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Also append every logged request to FILE as one JSON line.
    #[arg(long = "log", value_name = "FILE")]
    log: Option<PathBuf>,

    /// Count requests per status instead of keeping each one in memory (for
    /// long benchmark runs; GET /_mock/requests then returns nothing).
    #[arg(long)]
    count_only: bool,
}

impl Cli {
    /// The server configuration, listening on `bind`: the profile's
    /// budgets and manners, then the explicit flags over them.
    fn into_config(self, bind: SocketAddr) -> MockConfig {
        let (rpm, tpm, window_ms) = match self.profile {
            None => (self.rpm, self.tpm, self.window_ms.unwrap_or(DEFAULT_WINDOW_MS)),
            Some(RateProfile::E) => {
                (self.rpm, Some(self.tpm.unwrap_or(PROFILE_TPM)), self.window_ms.unwrap_or(PROFILE_WINDOW_MS))
            }
            Some(_) => (Some(self.rpm.unwrap_or(PROFILE_RPM)), self.tpm, self.window_ms.unwrap_or(PROFILE_WINDOW_MS)),
        };
        let mut config = MockConfig {
            bind,
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            api_key: self.api_key,
            rpm,
            tpm,
            window_ms,
            error_rate: self.error_rate,
            malformed_rate: self.malformed_rate,
            hang_rate: self.hang_rate,
            hang_ms: self.hang_ms,
            cached_ratio: self.cached_ratio,
            seed: self.seed,
            log_file: self.log,
            keep_requests: !self.count_only,
            ..MockConfig::default()
        };
        if let Some(profile) = self.profile {
            profile.apply(&mut config);
            // E drops the request budget; an explicit --rpm keeps both.
            config.rpm = config.rpm.or(self.rpm);
        }
        if let Some(kind) = self.window_kind {
            config.window_kind = kind;
        }
        if let Some(announce) = self.limit_headers {
            config.limit_headers = announce;
        }
        if let Some(retry_after) = self.retry_after {
            config.retry_after = retry_after;
        }
        config.capacity.extend(self.capacity);
        config.always_429 = self.always_429;
        config.extra_headers = self.headers;
        config
    }
}

/// The budgets of a --profile when the flags give none: R = 600 per 10 s,
/// the benchmark's full matrix (E: 600 requests of 1,000 tokens).
const PROFILE_RPM: u32 = 600;
const PROFILE_TPM: u64 = 600_000;
const PROFILE_WINDOW_MS: u64 = 10_000;

fn profile(text: &str) -> Result<RateProfile, String> {
    text.parse()
}

fn window_kind(text: &str) -> Result<WindowKind, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "sliding" => Ok(WindowKind::Sliding),
        "fixed" => Ok(WindowKind::Fixed),
        _ => Err(format!("expected `sliding` or `fixed`, got {text:?}")),
    }
}

fn retry_after(text: &str) -> Result<RetryAfter, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "truthful" => Ok(RetryAfter::Truthful),
        "absent" | "none" => Ok(RetryAfter::Absent),
        secs => secs
            .parse()
            .map(RetryAfter::Fixed)
            .map_err(|_| format!("expected `truthful`, `absent` or a whole number of seconds (e.g. 1), got {text:?}")),
    }
}

fn capacity(text: &str) -> Result<CapacityChange, String> {
    let usage = || format!("expected FROM_MS:FOR_MS:SHARE such as 5000:16000:0.5, got {text:?}");
    let mut parts = text.trim().splitn(3, ':');
    let (Some(from), Some(duration), Some(share)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(usage());
    };
    let ms = |part: &str| part.trim().parse::<u64>().map(Duration::from_millis).map_err(|_| usage());
    let (from, duration) = (ms(from)?, ms(duration)?);
    let share = self::share(share.trim()).map_err(|err| format!("{}: {err}", usage()))?;
    if duration.is_zero() {
        return Err(format!("{}: FOR_MS must be greater than 0", usage()));
    }
    Ok(CapacityChange { from, duration, share })
}

fn header(text: &str) -> Result<(String, String), String> {
    let (name, value) =
        text.split_once(':').ok_or_else(|| format!("expected NAME:VALUE such as retry-after:1, got {text:?}"))?;
    let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
    let probe = MockConfig { extra_headers: vec![(name.clone(), value.clone())], ..MockConfig::default() };
    probe.validate().map_err(|err| err.to_string())?;
    Ok((name, value))
}

/// Parses a share in `0..=1`.
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("expected a number between 0 and 1, got {text:?}")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();

    let cli = Cli::parse();
    let bind = resolve(&cli.host, cli.port).await?;
    let server = MockServer::start(cli.into_config(bind)).await?;
    announce(&server)?;
    stop_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// The first address `host:port` resolves to.
async fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let mut addrs = tokio::net::lookup_host((host, port)).await.with_context(|| format!("cannot resolve {host}"))?;
    addrs.next().with_context(|| format!("{host} resolves to no address"))
}

/// Prints the one stdout line scripts wait for.
fn announce(server: &MockServer) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{}", server.addr())?;
    stdout.flush()?;
    Ok(())
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate() => {}
    }
}

#[cfg(unix)]
async fn terminate() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => {
            sigterm.recv().await;
        }
        Err(err) => {
            tracing::warn!(%err, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_map_to_config() {
        let cli = Cli::parse_from(["batchllm-mock", "--rpm", "5", "--error-rate", "0.25", "--log", "x.jsonl"]);
        let config = cli.into_config(SocketAddr::from(([127, 0, 0, 1], 0)));
        assert_eq!(config.rpm, Some(5));
        assert_eq!(config.error_rate, 0.25);
        assert_eq!(config.window_ms, DEFAULT_WINDOW_MS);
        assert_eq!(config.log_file, Some(PathBuf::from("x.jsonl")));
        assert!(config.limit_headers && config.capacity.is_empty() && !config.always_429);
        assert!(Cli::try_parse_from(["batchllm-mock", "--hang-rate", "2"]).is_err());
    }

    fn config(args: &[&str]) -> MockConfig {
        let args = std::iter::once("batchllm-mock").chain(args.iter().copied());
        Cli::try_parse_from(args).expect("valid flags").into_config(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    #[test]
    fn rate_limit_knobs() {
        let c = config(&[
            "--rpm",
            "10",
            "--window-kind",
            "fixed",
            "--limit-headers",
            "false",
            "--retry-after",
            "3",
            "--capacity",
            "5000:16000:0.5",
            "--capacity",
            "60000:1000:0",
            "--always-429",
            "--header",
            "x-ratelimit-reset-requests: 99999999999999999999s",
            "--header",
            "anthropic-ratelimit-requests-reset:2999-01-01T00:00:00Z",
        ]);
        assert_eq!((c.rpm, c.window_kind, c.limit_headers), (Some(10), WindowKind::Fixed, false));
        assert_eq!(c.retry_after, RetryAfter::Fixed(3));
        let ms = Duration::from_millis;
        assert_eq!(
            c.capacity,
            [
                CapacityChange { from: ms(5000), duration: ms(16_000), share: 0.5 },
                CapacityChange { from: ms(60_000), duration: ms(1000), share: 0.0 }
            ]
        );
        assert!(c.always_429);
        assert_eq!(c.extra_headers[0], ("x-ratelimit-reset-requests".into(), "99999999999999999999s".into()));
        assert_eq!(c.extra_headers[1].1, "2999-01-01T00:00:00Z");
        assert_eq!(config(&["--retry-after", "absent"]).retry_after, RetryAfter::Absent);
        for bad in [
            &["--retry-after", "soon"][..],
            &["--window-kind", "tumbling"],
            &["--capacity", "5000:16000"],
            &["--capacity", "5000:0:0.5"],
            &["--capacity", "5000:100:2"],
            &["--header", "no-colon"],
            &["--header", "bad name:1"],
            &["--profile", "H"],
        ] {
            let args = std::iter::once("batchllm-mock").chain(bad.iter().copied());
            let error = Cli::try_parse_from(args).expect_err("refused");
            assert!(error.to_string().contains("expected") || error.to_string().contains("header"), "{error}");
        }
    }

    #[test]
    fn profiles_fill_in_budgets_and_flags_override_them() {
        let b = config(&["--profile", "B"]);
        assert_eq!((b.rpm, b.window_ms, b.limit_headers), (Some(600), 10_000, false));
        assert_eq!(b.retry_after, RetryAfter::Fixed(1));
        let b = config(&["--profile", "b", "--rpm", "60", "--window-ms", "2000", "--retry-after", "truthful"]);
        assert_eq!((b.rpm, b.window_ms, b.retry_after), (Some(60), 2000, RetryAfter::Truthful));
        let e = config(&["--profile", "E"]);
        assert_eq!((e.rpm, e.tpm, e.limit_headers), (None, Some(600_000), false));
        let f = config(&["--profile", "F", "--window-ms", "2000"]);
        assert_eq!(f.capacity, [RateProfile::dip(Duration::from_millis(2000))]);
        let plain = config(&[]);
        assert_eq!((plain.rpm, plain.window_ms), (None, DEFAULT_WINDOW_MS));
        assert!(b.validate().is_ok() && e.validate().is_ok() && f.validate().is_ok());
    }
}
