//! The command line: the jobs file, `--config`, the subcommands, and the
//! run options of [`crate::options`] (where each flag is defined, checked
//! and turned into a [`crate::run::RunConfig`]).
//!
//! `--help` is the derived text plus what only exists at run time: each
//! option's built-in default and the list of built-in plugins, both read
//! from where they are defined, so the help cannot drift from them.

use std::path::PathBuf;

use clap::{CommandFactory as _, FromArgMatches as _, Parser};

pub use crate::options::Extras;
use crate::options::{Given, Invocation, OptionsError, RunOptions};
use crate::run::RunConfig;

/// Run a batch of LLM requests through a sandboxed WebAssembly provider plugin.
///
/// Each line of JOBS is one request, either an OpenAI Batch input line
/// {"custom_id", "method", "url", "body"} or a simple line {"id", "prompt",
/// "params"?, "context"?}. Every line ends as exactly one line of the results
/// file, in the OpenAI Batch output shape plus a `batchllm` block.
///
/// The results file is the checkpoint: running the same command again skips
/// every item that already has a record, so an interrupted or killed run
/// resumes where it stopped.
///
/// Every run option can also be set in a TOML file (--config) under its long
/// name; flags win over the file, the file over the defaults. The switches
/// listed under "This invocation only" are flags only.
///
/// Exit codes: 0 all items succeeded; 1 some failed; 2 usage or input error;
/// 3 aborted (fail-fast class, batch deadline, or the plugin's prepare
/// failed); 130 interrupted.
#[derive(Debug, Parser)]
#[command(
    name = "batchllm-host",
    version,
    about,
    long_about,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Args {
    /// Other tasks than running a batch.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The jobs (JSONL): a file, `-` for stdin, or a pipe; gzip-compressed
    /// input is recognised and read as such.
    #[arg(required = true)]
    pub jobs: Option<PathBuf>,

    /// Read run options from this TOML file (keys are the long flag names).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub run: RunOptions,

    #[command(flatten)]
    pub once: Invocation,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Work with plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Write one self-contained HTML page about a run (throughput and 429s
    /// over time, latency, cost and tokens by model, failures by class, the
    /// cooldowns); it needs no network to view.
    Report {
        /// The results file a run wrote (plain or .gz).
        results: PathBuf,
        /// The file the run wrote with --events: 429s as they happened and
        /// the cooldown timeline.
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
        /// Where to write the page.
        #[arg(short, long, value_name = "FILE", default_value = "report.html")]
        output: PathBuf,
    },
    /// Run the multi-tenant batch server: the OpenAI Files and Batches API
    /// (`/v1/files`, `/v1/batches`) for the tenants of a TOML file, each
    /// batch a run of this engine; a status page on `/`. SIGHUP reloads the
    /// tenants file; SIGINT/SIGTERM stop (batches resume at the next start).
    Serve(ServeArgs),
    /// Make a new tenant API key: prints the key (give it to the tenant) and
    /// the `api-keys` entry for the tenants file (its SHA-256).
    ServeKey,
}

/// `batchllm-host serve ...`
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The tenants file (TOML): [operator] and [tenants.NAME] sections.
    #[arg(long, value_name = "FILE")]
    pub tenants: PathBuf,
    /// Where files and batch state are kept (created if missing).
    #[arg(long, value_name = "DIR", default_value = "batchllm-data")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Where compiled plugins are cached [default: DATA_DIR/plugin-cache].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Share every tenant's limits (RPM/TPM, cooldowns, learned budgets)
    /// with the other `serve` instances started with this Redis URL.
    #[arg(long, value_name = "URL")]
    pub cluster: Option<crate::cluster::ClusterUrl>,
}

/// `batchllm-host plugin ...`
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Check that a plugin keeps the contract before you publish it: it loads
    /// (world, imports), and against the bundled mock provider it reports
    /// success with usage, classifies 429 (with the wait), 500, 400 and a
    /// malformed body, sends exactly one request per execute, and answers
    /// within the time it is given. Exit code 0 when every check passes.
    Check {
        /// A built-in name or a path to a component.
        plugin: String,
        /// Where compiled plugins are cached [default: ~/.cache/batchllm-host].
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Start a plugin: write a project from the template for LANG (embedded
    /// in this binary, the WIT contract included) that builds with its own
    /// ./build.sh wherever it is.
    New {
        /// The plugin's name: lowercase letters, digits and dashes (e.g. my-plugin).
        name: String,
        /// The template's language.
        #[arg(long, value_enum)]
        lang: crate::scaffold::Lang,
        /// The project folder to create (new or empty) [default: ./NAME].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

const EXAMPLES: &str = "Examples:
  batchllm-host --plugin openai --mock-provider examples/jobs.jsonl
  batchllm-host --plugin openai --api-key-env OPENAI_API_KEY --rpm 500 jobs.jsonl -o out.jsonl
  batchllm-host --config examples/openai.toml jobs.jsonl
  batchllm-host plugin new my-plugin --lang rust
  batchllm-host plugin check ./my-strategy.wasm
  batchllm-host report results.jsonl --events events.jsonl -o report.html
  batchllm-host serve --tenants tenants.toml --data-dir /var/lib/batchllm --listen 127.0.0.1:8080
  batchllm-host --plugin openai --plugin-config base_url=http://127.0.0.1:8000/v1 \\
      --plugin-config api_key_secret=null --allow-host 127.0.0.1:8000 jobs.jsonl";

/// The command, with each option's default and the built-in plugins added
/// to its help.
pub fn command() -> clap::Command {
    let defaults: std::collections::HashMap<&str, String> = RunOptions::shown_defaults().into_iter().collect();
    let builtins: Vec<String> =
        crate::providers::BUILTINS.iter().map(|p| format!("{} ({})", p.name, p.summary)).collect();
    // In place, so the help keeps the order of the definitions.
    Args::command().mut_args(|mut arg| {
        let id = arg.get_id().as_str().to_string();
        // A number option takes the next word as its value even when it
        // starts with `-` (`--rpm -1`, `--rpm -1e-9`), so the option's own
        // parser or check reports it, naming the option, instead of clap
        // reading an unknown flag `-1`.
        if RunOptions::CHECKED.contains(&id.as_str()) || id == "progress_interval" {
            arg = arg.allow_hyphen_values(true);
        }
        if let Some(shown) = defaults.get(id.as_str()) {
            let suffix = format!(" [default: {shown}]");
            if let Some(help) = arg.get_help().map(|h| format!("{h}{suffix}")) {
                arg = arg.help(help);
            }
            if let Some(long) = arg.get_long_help().map(|h| format!("{h}{suffix}")) {
                arg = arg.long_help(long);
            }
        }
        if id == "plugin" {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            arg = arg.help(format!("{help}. Built-ins: {}.", builtins.join(", ")));
        }
        arg
    })
}

impl Args {
    /// Parses the process's arguments; exits with the usage error (code 2)
    /// or the help.
    pub fn parse_env() -> Self {
        Self::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the first is the program name).
    pub fn try_parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::from_arg_matches(&command().try_get_matches_from(args)?)
    }

    /// Builds the run configuration: flags over the `--config` file over
    /// defaults. `extras` come from the binary (the bundled mock provider).
    pub fn into_config(self, extras: Extras) -> Result<RunConfig, OptionsError> {
        let given = Given { jobs: self.jobs, config: self.config, flags: self.run, once: self.once };
        crate::options::build(given, extras)
    }
}

#[cfg(test)]
mod tests;
