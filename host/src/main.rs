//! The `batchllm-host` binary: parse arguments, run, report, exit.

use std::process::ExitCode;

use anyhow::Context as _;
use batchllm_host::cli::{Args, Command, Extras, PluginCommand};
use batchllm_host::egress::HostGrant;
use batchllm_host::model::error_chain;
use batchllm_host::run::{self, StopHandle, Termination};
use batchllm_host::sandbox::CompileCache;

/// mimalloc rather than glibc malloc: per-thread free lists without arena
/// locks; measured with `batchllm-bench cpu` (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes (documented in `--help` and README).
use batchllm_host::run::exit;

fn main() -> ExitCode {
    let args = Args::parse_env();
    init_tracing(&args);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ABORTED);
        }
    };
    // The run is spawned rather than driven by `block_on`: on the main thread
    // it would not be one of the runtime's workers, and every record handed
    // to the results sink would cost two cross-thread wake-ups.
    let code = runtime.block_on(async {
        match tokio::spawn(async_main(args)).await {
            Ok(code) => code,
            // A panic stays a panic (exit code 101), never a documented code.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                eprintln!("error: the run stopped unexpectedly: {e}");
                ExitCode::from(exit::ABORTED)
            }
        }
    });
    // Everything the run started has ended, except possibly a thread
    // blocked reading stdin when a signal stopped the run: do not wait for it.
    runtime.shutdown_background();
    code
}

async fn async_main(args: Args) -> ExitCode {
    if let Some(Command::Serve(serve)) = &args.command {
        let options = batchllm_host::serve::ServeOptions {
            tenants: serve.tenants.clone(),
            data_dir: serve.data_dir.clone(),
            listen: serve.listen,
            cache_dir: serve.cache_dir.clone(),
            cluster: serve.cluster.clone(),
        };
        // One line on stdout once the port is bound, for scripts and tests.
        let ready = |addr| println!("listening on http://{addr}");
        return match batchllm_host::serve::serve(options, ready).await {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => {
                eprintln!("error: {}", error_chain(&e));
                ExitCode::from(exit::USAGE)
            }
        };
    }
    if let Some(Command::ServeKey) = &args.command {
        let key = batchllm_host::serve::tenants::new_key();
        println!("key:      {key}\napi-keys = [\"{}\"]", batchllm_host::serve::tenants::key_digest_line(&key));
        return ExitCode::from(exit::OK);
    }
    if let Some(Command::Plugin { command: PluginCommand::New { name, lang, dir } }) = &args.command {
        return match batchllm_host::scaffold::new_plugin(name, *lang, dir.as_deref()) {
            Ok(made) => {
                print!("{}", made.summary(name, *lang));
                ExitCode::from(exit::OK)
            }
            Err(e) => {
                eprintln!("error: {}", error_chain(&e));
                ExitCode::from(exit::USAGE)
            }
        };
    }
    if let Some(Command::Plugin { command: PluginCommand::Check { plugin, cache_dir } }) = &args.command {
        let cache = CompileCache::new(cache_dir.clone().or_else(CompileCache::default_dir));
        let report = batchllm_host::check::check_plugin(plugin, cache).await;
        print!("{}", report.table());
        return ExitCode::from(if report.passed() { exit::OK } else { exit::SOME_FAILED });
    }
    if let Some(Command::Report { results, events, output }) = &args.command {
        return match batchllm_host::report::write_report(results, events.as_deref(), output) {
            Ok(data) => {
                println!(
                    "wrote {} ({} records: {} succeeded, {} failed)",
                    output.display(),
                    data.totals.items,
                    data.totals.succeeded,
                    data.totals.failed
                );
                ExitCode::from(exit::OK)
            }
            Err(e) => {
                eprintln!("error: {}", error_chain(&e));
                ExitCode::from(exit::USAGE)
            }
        };
    }
    // Signals are caught from here on, before anything slow (validation,
    // compiling the plugin) can run: a stop that comes early still ends the
    // run the documented way.
    let stop = StopHandle::default();
    let first_signal = std::sync::Arc::new(std::sync::OnceLock::new());
    let signals = tokio::spawn(watch_signals(stop.clone(), first_signal.clone()));
    let quiet = args.once.quiet;
    let summary_json = args.once.summary_json.clone();
    let dry = args.once.dry_run;
    let (extras, mock) = match start_mock(args.once.mock_provider).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(exit::ABORTED);
        }
    };
    let config = match args.into_config(extras) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            return ExitCode::from(exit::USAGE);
        }
    };
    let output = config.output.clone();
    if dry {
        let result = run::dry_run(&config, &stop).await;
        signals.abort();
        if let Some(mock) = mock {
            mock.shutdown().await;
        }
        return match result {
            Err(e) if e.is_stopped() => {
                eprintln!("error: {}", error_chain(&e));
                ExitCode::from(first_signal.get().copied().unwrap_or(exit::SIGINT))
            }
            Ok(report) => {
                eprintln!("{}", report.human());
                match summary_json.map(|p| write_json(&p, &report)).transpose() {
                    Ok(_) => ExitCode::from(exit::OK),
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        ExitCode::from(exit::ABORTED)
                    }
                }
            }
            Err(e) => run_error(&e),
        };
    }
    let result = if config.cluster.is_some() {
        batchllm_host::cluster::run(config, stop).await
    } else {
        run::run(config, stop).await
    };
    signals.abort();
    let signal = first_signal.get().copied();
    if let Some(mock) = mock {
        mock.shutdown().await;
    }
    match result {
        Err(e) if e.is_stopped() => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(signal.unwrap_or(exit::SIGINT))
        }
        Ok(report) => {
            if !quiet || report.termination == Termination::Failed {
                eprintln!("{}\nresults: {}", report.human(), output.display());
            }
            if let Some(path) = summary_json
                && let Err(e) = write_json(&path, &report)
            {
                eprintln!("error: {e:#}");
                return ExitCode::from(exit::HOST_FAILURE);
            }
            ExitCode::from(exit::code(&report, signal.unwrap_or(exit::SIGINT)))
        }
        Err(e) => run_error(&e),
    }
}

/// SIGINT, SIGTERM and SIGHUP (what Ctrl-C, `docker stop`, Kubernetes,
/// systemd, `timeout` and a closed terminal send) all stop the run the same
/// way: waits end, nothing new starts, requests on the wire may answer
/// within `--stop-grace`, `cleanup` runs. A second signal drops the requests
/// on the wire at once. `first` gets the exit code of the first signal.
async fn watch_signals(stop: StopHandle, first: std::sync::Arc<std::sync::OnceLock<u8>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
    else {
        tracing::warn!("cannot listen for signals; Ctrl-C will kill the run without cleanup");
        return;
    };
    let next = async |int: &mut tokio::signal::unix::Signal,
                      term: &mut tokio::signal::unix::Signal,
                      hup: &mut tokio::signal::unix::Signal| {
        tokio::select! {
            _ = int.recv() => ("SIGINT", exit::SIGINT),
            _ = term.recv() => ("SIGTERM", exit::SIGTERM),
            _ = hup.recv() => ("SIGHUP", exit::SIGHUP),
        }
    };
    let (name, code) = next(&mut int, &mut term, &mut hup).await;
    tracing::warn!(
        signal = name,
        "stopping: no new requests; requests on the wire may still answer (a second signal drops them)"
    );
    let _ = first.set(code);
    stop.stop();
    let _ = next(&mut int, &mut term, &mut hup).await;
    tracing::error!("second signal: dropping the requests on the wire");
    stop.stop_now();
}

fn write_json(path: &std::path::Path, report: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(report).context("serialising the summary")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing the summary to {}", path.display()))
}

/// Reports a run that could not start or had to stop.
fn run_error(e: &run::RunError) -> ExitCode {
    eprintln!("error: {}", error_chain(e));
    ExitCode::from(if e.is_usage() { exit::USAGE } else { exit::ABORTED })
}

/// Starts the bundled mock provider when asked, with a generated API key that
/// reaches the plugin only as a secret placeholder.
async fn start_mock(enabled: bool) -> anyhow::Result<(Extras, Option<batchllm_mock::MockServer>)> {
    if !enabled {
        return Ok((Extras::default(), None));
    }
    let key = format!("sk-mock-{:032x}", rand::random::<u128>());
    let config = batchllm_mock::MockConfig { api_key: Some(key.clone()), ..Default::default() };
    let server = batchllm_mock::MockServer::start(config).await.context("starting the bundled mock provider")?;
    let addr = server.addr();
    tracing::info!(base_url = %server.base_url(), "bundled mock provider started");
    let extras = Extras {
        grants: vec![HostGrant::exact(&addr.ip().to_string(), addr.port())],
        plugin_config: vec![("base_url".into(), server.base_url().into())],
        secrets: vec![("api-key".into(), key)],
    };
    Ok((extras, Some(server)))
}

fn init_tracing(args: &Args) {
    use tracing_subscriber::EnvFilter;
    let default = match (args.once.quiet, args.once.verbose) {
        (true, _) => "error",
        (false, 0) => "warn,batchllm=info,batchllm_host=info",
        (false, 1) => "info,batchllm=debug,batchllm_host=debug",
        (false, _) => "debug,batchllm=trace,batchllm_host=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Log lines go above the progress bar, never through it.
    let writer = || batchllm_host::run::SuspendingStderr;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_target(false).init();
}
