//! `batchllm-mock`: runs the mock LLM provider as a standalone process.
//!
//! Prints exactly one line to stdout, `listening on http://IP:PORT`, once the
//! port is bound (so scripts can use `--port 0` and parse the port), logs to
//! stderr (`RUST_LOG` overrides the default `info`), and exits cleanly on
//! Ctrl-C or SIGTERM.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use batchllm_mock::{DEFAULT_CACHED_RATIO, DEFAULT_HANG_MS, DEFAULT_WINDOW_MS, MockConfig, MockServer};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// A mock LLM provider (OpenAI, Anthropic Messages and Gemini
/// generateContent compatible) with fault injection.
///
/// Answers POST /v1/chat/completions, POST /v1/messages and
/// POST /v1beta/models/MODEL:generateContent with "echo: <last user message>"
/// and deterministic token usage, POST /v1/embeddings with hash-derived
/// vectors, and serves Gemini /v1beta/cachedContents. GET /_mock/requests returns the request log, POST /_mock/reset
/// clears it.
///
/// Markers in the last user message target a single request:
/// [[mock:status=CODE]], [[mock:insufficient_quota]], [[mock:malformed]],
/// [[mock:hang]], [[mock:fail-first=N]], [[mock:latency=MS]].
#[derive(Debug, Parser)]
#[command(name = "batchllm-mock", version)]
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

    /// Requests allowed per window (see --window-ms); over it: 429. Unlimited if unset.
    #[arg(long, value_name = "N")]
    rpm: Option<u32>,

    /// Tokens allowed per window, counting estimated prompt tokens plus
    /// max_tokens (16 if unset); over it: 429. Unlimited if unset.
    #[arg(long, value_name = "N")]
    tpm: Option<u64>,

    /// Length of the sliding rate-limit window, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_WINDOW_MS)]
    window_ms: u64,

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
    /// The server configuration, listening on `bind`.
    fn into_config(self, bind: SocketAddr) -> MockConfig {
        MockConfig {
            bind,
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            api_key: self.api_key,
            rpm: self.rpm,
            tpm: self.tpm,
            window_ms: self.window_ms,
            error_rate: self.error_rate,
            malformed_rate: self.malformed_rate,
            hang_rate: self.hang_rate,
            hang_ms: self.hang_ms,
            cached_ratio: self.cached_ratio,
            seed: self.seed,
            log_file: self.log,
            keep_requests: !self.count_only,
        }
    }
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
        assert!(Cli::try_parse_from(["batchllm-mock", "--hang-rate", "2"]).is_err());
    }
}
