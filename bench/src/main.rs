//! `batchllm-bench`: the batchllm-host benchmark.
//!
//! Starts the mock provider in this process, runs the release-built
//! `batchllm-host` binary against it (and, for the CPU comparison, a plain
//! Rust client: the `baseline` subcommand), and prints one Markdown table
//! whose every ratio was measured in the same run. `scripts/bench.sh` builds
//! everything and runs it; BENCHMARKS.md explains the figures.

mod baseline;
mod host;
mod jobs;
mod process;
mod report;
mod scenarios;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use scenarios::Options;

/// The host's allocator (see `host/src/main.rs`), for the baseline client too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmarks batchllm-host against the mock provider and prints one table
/// of ratios measured in the same run.
#[derive(Debug, Parser)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    /// Scenarios to run (default: all, in this order).
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,
    /// Small runs: checks the harness works; not figures to quote.
    #[arg(long)]
    quick: bool,
    /// Lines of the large input of the memory scenario.
    #[arg(long, default_value_t = 1_000_000)]
    big_input: usize,
    /// Rows of the quota scenario's provider matrix to run, e.g. `A,B`
    /// (default: A-G).
    #[arg(long, value_delimiter = ',', value_parser = profile)]
    rows: Vec<batchllm_mock::RateProfile>,
    /// Run the rows of the provider matrix one at a time instead of all
    /// rows of a run length at once (about 8 times longer).
    #[arg(long)]
    serial: bool,
    /// The batchllm-host binary (default: next to this executable).
    #[arg(long)]
    host: Option<PathBuf>,
    /// Scratch directory for job files, results and the compile cache
    /// (default: a temporary one). Job files are reused between runs.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The plain baseline client (no WebAssembly, no policy) the host's CPU
    /// per item is compared with. Run by the `cpu` scenario.
    Baseline(baseline::BaselineArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Items/s vs concurrency / latency at 100 ms; peak RSS per concurrency.
    Throughput,
    /// Host CPU per item vs the plain baseline, at zero latency.
    Cpu,
    /// Peak RSS on a small and a 1-million-line input.
    Memory,
    /// Per plugin: compile, cached load, instantiate, memory, call costs.
    Plugins,
    /// The provider matrix: wall time vs the ideal schedule and the share
    /// of 429s under seven kinds of provider rate limit, host and plain
    /// client side by side.
    Quota,
    /// `--cluster`: three hosts, one redis-server, the mock enforcing the
    /// limit: the worst 60 s window, kill -9, SIGSTOP, CPU per item.
    Cluster,
    /// Only the CPU-per-item row of `cluster` (about a minute).
    ClusterCpu,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Baseline(args)) = cli.command {
        return baseline::main(args);
    }
    // One thread for the mock provider (and the bench's bookkeeping): a
    // provider on another machine would cost the host nothing, so here it
    // should cost as little as it can, and a single-threaded runtime does
    // without the cross-thread wake-ups of a work-stealing one.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let scratch;
    let work = match &cli.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            scratch = tempfile::tempdir()?;
            scratch.path().to_path_buf()
        }
    };
    let setup = host::Setup::locate(cli.host.clone(), work)?;
    let options = Options { quick: cli.quick, big_input: cli.big_input, rows: cli.rows.clone(), serial: cli.serial };
    let all =
        [Scenario::Throughput, Scenario::Cpu, Scenario::Memory, Scenario::Plugins, Scenario::Quota, Scenario::Cluster];
    let chosen: Vec<Scenario> = if cli.scenarios.is_empty() { all.to_vec() } else { cli.scenarios.clone() };
    warm_up(&setup).await?;
    let mut rows = Vec::new();
    let mut plugin_table = None;
    let mut matrix_table = None;
    for scenario in chosen {
        let more = match scenario {
            Scenario::Throughput => scenarios::throughput::run(&setup, &options).await,
            Scenario::Cpu => scenarios::cpu::run(&setup, &options).await,
            Scenario::Memory => scenarios::memory::run(&setup, &options).await,
            Scenario::Plugins => scenarios::plugins::run(&setup, &options).await.map(|(rows, table)| {
                plugin_table = Some(table);
                rows
            }),
            Scenario::Quota => scenarios::quota::run(&setup, &options).await.map(|(rows, table)| {
                matrix_table = Some(table);
                rows
            }),
            Scenario::Cluster => scenarios::cluster::run(&setup, &options).await,
            Scenario::ClusterCpu => scenarios::cluster::cpu(&setup, options.quick).await,
        };
        rows.extend(more.with_context(|| format!("scenario {scenario:?}"))?);
    }
    println!("{}", report::markdown(&rows));
    if let Some(table) = &plugin_table {
        println!("Plugin costs (in process, through the host's sandbox):\n\n{table}");
    }
    if let Some(table) = &matrix_table {
        println!("{table}");
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_vec_pretty(&rows)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let missed = rows.iter().filter(|r| r.verdict == report::Verdict::Missed).count();
    eprintln!("{} targets met, {missed} missed", rows.iter().filter(|r| r.verdict == report::Verdict::Met).count());
    Ok(())
}

fn profile(text: &str) -> Result<batchllm_mock::RateProfile, String> {
    text.parse()
}

/// One tiny run per plugin the scenarios use, so each is in the compile
/// cache before any timed run.
async fn warm_up(setup: &host::Setup) -> anyhow::Result<()> {
    let server = scenarios::mock(|_| {}).await?;
    let jobs = jobs::write(&setup.work, 1)?;
    host::run(setup, &server, &jobs, 1, 1, &[]).await?;
    for api in [host::Api::Anthropic, host::Api::Gemini] {
        let results = setup.work.join("warm-up.results.jsonl");
        let outcome = host::run_with(setup, &server, &jobs, 1, api, &results, &[], None).await?;
        if outcome.succeeded != 1 {
            anyhow::bail!("the warm-up run of the {} plugin failed ({:?})", api.plugin(), outcome.usage.exit_code);
        }
    }
    server.shutdown().await;
    Ok(())
}
