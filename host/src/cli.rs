//! The command line, and its translation into a [`RunConfig`].
//!
//! Every run option exists as a flag and as a key of the `--config` TOML
//! file ([`crate::config_file`]); a flag wins over the file, the file over
//! the defaults in [`defaults`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde_json::Value;

use crate::config_file::{ConfigFileError, FileConfig};
use crate::egress::{Egress, EgressLimits, EgressPolicy, HostGrant, SecretHost, SecretSource, SecretSpec, Secrets};
use crate::plugin::PluginSource;
use crate::results::ResumeOptions;
use crate::run::{
    AbortMode, AdmissionLimits, CooldownPolicy, FailureClass, ItemSettings, ProgressMode, RetryPolicy, RunConfig,
};
use crate::sandbox::{CompileCache, SandboxLimits};

/// Defaults, chosen for real providers: short cooldowns that follow the
/// server's own hint (OpenAI and Anthropic ask for seconds, not minutes),
/// the SDKs' retry budget, and generous sandbox limits for JS/Python plugins.
pub mod defaults {
    pub const OUTPUT: &str = "results.jsonl";
    pub const CONCURRENCY: u16 = 8;
    pub const MAX_ATTEMPTS: u32 = 3;
    pub const MAX_RATE_LIMIT_RETRIES: u32 = 20;
    pub const ATTEMPT_TIMEOUT_SECS: f64 = 120.0;
    pub const BACKOFF_INITIAL_SECS: f64 = 1.0;
    pub const BACKOFF_MAX_SECS: f64 = 60.0;
    /// The OpenAI SDK's cap on an honoured `retry-after`.
    pub const MAX_SERVER_WAIT_SECS: f64 = 120.0;
    pub const COOLDOWN_SECS: f64 = 1.0;
    pub const COOLDOWN_MULTIPLIER: f64 = 2.0;
    pub const COOLDOWN_MAX_SECS: f64 = 60.0;
    pub const SLOW_START_ATTEMPTS: u32 = 16;
    pub const SLOW_START_SPACING_SECS: f64 = 0.1;
    pub const BURST_SECS: f64 = 1.0;
    pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 1024;
    pub const MAX_MEMORY_MB: u32 = 512;
    pub const MAX_CPU_PER_CALL_SECS: f64 = 30.0;
}

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
/// Every run setting can also be set in a TOML file (--config) under its
/// long name; flags win over the file. Switches for one invocation
/// (--overwrite, --retry-failed, --force, --fsync, --dry-run, --summary-json,
/// --mock-provider, --no-cache, --quiet, --verbose, --progress-interval) are
/// flags only.
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

    /// The jobs file (JSONL).
    #[arg(required = true)]
    pub jobs: Option<PathBuf>,

    /// Read options from this TOML file (keys are the long flag names).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The provider plugin: a built-in name (openai, anthropic, gemini, mock) or a path to a
    /// WebAssembly component implementing batchllm:strategy.
    #[arg(long, value_name = "NAME|PATH")]
    pub plugin: Option<String>,

    /// Where to write results [default: results.jsonl].
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Discard an existing results file instead of resuming from it.
    #[arg(long, conflicts_with_all = ["retry_failed", "force"])]
    pub overwrite: bool,

    /// When resuming, run items whose record is a failure again (their old
    /// records are replaced).
    #[arg(long)]
    pub retry_failed: bool,

    /// Resume even though the input lines, the plugin or its configuration
    /// differ from the ones existing records were made with.
    #[arg(long)]
    pub force: bool,

    /// Write results in input order (default: as items finish). Records that
    /// finish behind a slow item wait in memory.
    #[arg(long)]
    pub preserve_order: bool,

    /// fsync the results file after every record (slower; survives power loss).
    #[arg(long)]
    pub fsync: bool,

    /// How many items are processed at once [default: 8].
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=16384))]
    pub concurrency: Option<u16>,

    /// A plugin setting, KEY=VALUE (VALUE is parsed as JSON when it can be,
    /// else taken as a string). Repeatable. E.g. base_url=http://localhost:8000/v1
    #[arg(long = "plugin-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub plugin_config: Vec<(String, Value)>,

    /// Allow the plugin to reach HOST[:PORT] (`*.example.com` allowed). Without
    /// a port only the scheme's default port is allowed. A name must resolve
    /// to public addresses unless it is granted with its port (or as an IP
    /// literal): use e.g. 127.0.0.1:8000 or vllm.lan:8000 for local servers.
    /// Repeatable. The built-in openai, anthropic and gemini plugins are
    /// granted api.openai.com, api.anthropic.com and
    /// generativelanguage.googleapis.com by default.
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    pub allow_hosts: Vec<HostGrant>,

    /// Read the API key from this environment variable of the host. The plugin
    /// never sees it: the host inserts it into requests to granted hosts.
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,

    /// A named secret, NAME=env:VAR or NAME=file:PATH. Plugins refer to it as
    /// `{{secret:NAME}}` in a header. Repeatable.
    #[arg(long = "secret", value_name = "NAME=SOURCE")]
    pub secrets: Vec<SecretSpec>,

    /// Restrict secret NAME to HOST[:PORT] (same grammar as --allow-host; the
    /// host must also be granted). Repeatable; a secret with no entry may go
    /// to every granted host. E.g. api-key=api.openai.com
    #[arg(long = "secret-host", value_name = "NAME=HOST[:PORT]")]
    pub secret_hosts: Vec<SecretHost>,

    /// Start the bundled mock provider on 127.0.0.1, grant it, and point the
    /// plugin at it (base_url) with a generated API key. For demos and trying
    /// the tool without an account.
    #[arg(long)]
    pub mock_provider: bool,

    /// Refuse the plugin unless its SHA-256 is this (hex).
    #[arg(long, value_name = "HEX")]
    pub plugin_sha256: Option<String>,

    /// Attempts per item for failures other than rate limits [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Retries")]
    pub max_attempts: Option<u32>,

    /// Rate-limit retries per item; they do not use attempts [default: 20].
    #[arg(long, value_name = "N", help_heading = "Retries")]
    pub max_rate_limit_retries: Option<u32>,

    /// First retry backoff in seconds; doubles per failure, with jitter [default: 1].
    #[arg(long, value_name = "SECS", value_parser = non_negative_secs, help_heading = "Retries")]
    pub backoff_initial: Option<f64>,

    /// Longest retry backoff in seconds [default: 60].
    #[arg(long, value_name = "SECS", value_parser = non_negative_secs, help_heading = "Retries")]
    pub backoff_max: Option<f64>,

    /// Longest server-requested wait (retry-after) honoured as given, in
    /// seconds; longer hints are capped [default: 120].
    #[arg(long, value_name = "SECS", value_parser = non_negative_secs, help_heading = "Retries")]
    pub max_server_wait: Option<f64>,

    /// Items ending in one of these classes abort the run: queued items end
    /// as `aborted` without calls, exit code 3. Comma-separated; `none`
    /// disables [default: auth,quota_exhausted].
    #[arg(long, value_name = "CLASSES", value_parser = parse_classes, help_heading = "Retries")]
    pub fail_fast: Option<ClassList>,

    /// Stop the run (exit code 3) once this many tokens, input plus output,
    /// failed attempts included, have been used; remaining items end `aborted`.
    #[arg(long, value_name = "N", help_heading = "Retries")]
    pub max_total_tokens: Option<u64>,

    /// Stop the run (exit code 3) once this many US dollars are spent,
    /// priced with the shipped table or --prices.
    #[arg(long, value_name = "USD", value_parser = positive_number, help_heading = "Retries")]
    pub max_cost: Option<f64>,

    /// A price table (TOML, US dollars per million tokens per model) whose
    /// models replace the shipped ones.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,

    /// On abort, let in-flight attempts finish (drain) or cancel them [default: drain].
    #[arg(long, value_name = "MODE", help_heading = "Retries")]
    pub abort_mode: Option<AbortMode>,

    /// Coordinated pause of every attempt to a provider after a rate limit,
    /// in seconds, when the server gives no longer hint [default: 1].
    #[arg(long, value_name = "SECS", value_parser = non_negative_secs, help_heading = "Rate limits")]
    pub cooldown: Option<f64>,

    /// Growth of the cooldown per consecutive rate limit [default: 2].
    #[arg(long, value_name = "X", value_parser = at_least_one, help_heading = "Rate limits")]
    pub cooldown_multiplier: Option<f64>,

    /// Cap on the cooldown's policy part, in seconds [default: 60].
    #[arg(long, value_name = "SECS", value_parser = non_negative_secs, help_heading = "Rate limits")]
    pub cooldown_max: Option<f64>,

    /// Attempts spaced out after a cooldown (0 disables) [default: 16].
    #[arg(long, value_name = "N", help_heading = "Rate limits")]
    pub slow_start_attempts: Option<u32>,

    /// Spacing before the first attempt after a cooldown, shrinking to 0
    /// over the slow-start attempts, in seconds [default: 0.1].
    #[arg(long, value_name = "SECS", value_parser = non_negative_secs, help_heading = "Rate limits")]
    pub slow_start_spacing: Option<f64>,

    /// Requests per minute admitted (paced, burst of --burst seconds).
    #[arg(long, value_name = "N", value_parser = positive_number, help_heading = "Rate limits")]
    pub rpm: Option<f64>,

    /// Tokens per minute admitted: prompt estimate + max output tokens,
    /// corrected by the usage each response reports.
    #[arg(long, value_name = "N", value_parser = positive_number, help_heading = "Rate limits")]
    pub tpm: Option<f64>,

    /// Seconds of rate the RPM/TPM buckets may burst [default: 1].
    #[arg(long, value_name = "SECS", value_parser = positive_secs, help_heading = "Rate limits")]
    pub burst: Option<f64>,

    /// Output tokens charged for a job that sets no max_tokens [default: 1024].
    #[arg(long, value_name = "N", help_heading = "Rate limits")]
    pub default_max_output_tokens: Option<u64>,

    /// Time limit for one attempt, plugin CPU and HTTP together, in seconds [default: 120].
    #[arg(long, value_name = "SECS", value_parser = positive_secs, help_heading = "Time")]
    pub attempt_timeout: Option<f64>,

    /// Time limit for an item across all its attempts and waits, in seconds.
    #[arg(long, value_name = "SECS", value_parser = positive_secs, help_heading = "Time")]
    pub item_timeout: Option<f64>,

    /// Time limit for the whole run, in seconds; unfinished items end as
    /// `batch_deadline_exceeded` (exit code 3).
    #[arg(long, value_name = "SECS", value_parser = positive_secs, help_heading = "Time")]
    pub batch_timeout: Option<f64>,

    /// Linear memory per plugin instance, in MiB [default: 512].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(16..=65536), help_heading = "Sandbox")]
    pub max_memory_mb: Option<u32>,

    /// Plugin CPU time per call, in seconds [default: 30].
    #[arg(long, value_name = "SECS", value_parser = positive_secs, help_heading = "Sandbox")]
    pub max_cpu_per_call: Option<f64>,

    /// Where compiled plugins are cached [default: ~/.cache/batchllm-host].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache", help_heading = "Sandbox")]
    pub cache_dir: Option<PathBuf>,

    /// Compile the plugin every run.
    #[arg(long, help_heading = "Sandbox")]
    pub no_cache: bool,

    /// Every output must be JSON matching this JSON Schema (a code fence
    /// around it is accepted); a mismatch is an invalid_response, retried
    /// without backoff, its message passed to the plugin's on-error.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,

    /// Write lifecycle events (attempts, rate limits, cooldowns, items,
    /// aborts) to FILE as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,

    /// Serve Prometheus metrics on http://ADDR/metrics while the run lasts
    /// (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Validate the input and the plugin and estimate tokens; send nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Also write the run summary as JSON to FILE (counts by status and
    /// failure class, retries, rate limits and cooldown, tokens, timing).
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,

    /// When stderr is not a terminal, print a progress line this often (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    pub progress_interval: f64,

    /// Only errors on stderr.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Work with plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
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
  batchllm-host --plugin openai --plugin-config base_url=http://127.0.0.1:8000/v1 \\
      --plugin-config api_key_secret=null --allow-host 127.0.0.1:8000 jobs.jsonl";

fn parse_key_value(s: &str) -> Result<(String, Value), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))?;
    if k.is_empty() {
        return Err(format!("empty key in `{s}`"));
    }
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

/// A comma-separated list of failure classes (`none` for empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassList(pub Vec<FailureClass>);

fn parse_classes(s: &str) -> Result<ClassList, String> {
    if s.trim().eq_ignore_ascii_case("none") || s.trim().is_empty() {
        return Ok(ClassList(Vec::new()));
    }
    s.split(',').map(str::parse).collect::<Result<_, _>>().map(ClassList)
}

/// Parses a finite number that `ok` accepts, else says what was expected.
fn number(s: &str, ok: impl Fn(f64) -> bool, expected: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && ok(v) => Ok(v),
        _ => Err(format!("expected {expected}, got `{s}`")),
    }
}

fn positive_secs(s: &str) -> Result<f64, String> {
    number(s, |v| v > 0.0 && v < 1e9, "a positive number of seconds")
}

fn non_negative_secs(s: &str) -> Result<f64, String> {
    number(s, |v| (0.0..1e9).contains(&v), "a number of seconds >= 0")
}

fn positive_number(s: &str) -> Result<f64, String> {
    number(s, |v| v > 0.0, "a positive number")
}

fn at_least_one(s: &str) -> Result<f64, String> {
    number(s, |v| v >= 1.0, "a number >= 1")
}

/// Errors turning arguments into a run configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    #[error(transparent)]
    Secret(#[from] crate::egress::SecretError),
    #[error(transparent)]
    File(#[from] ConfigFileError),
    #[error(transparent)]
    Prices(#[from] crate::cost::PriceError),
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    #[error("building the HTTP client: {0}")]
    Http(String),
    #[error("{0}")]
    Invalid(String),
}

/// Facts from the environment the CLI layer set up (e.g. a started mock).
#[derive(Debug, Default)]
pub struct Extras {
    /// Additional grants.
    pub grants: Vec<HostGrant>,
    /// Plugin settings applied before the user's `--plugin-config`.
    pub plugin_config: Vec<(String, Value)>,
    /// Literal secrets (e.g. the generated key of the bundled mock).
    pub secrets: Vec<(String, String)>,
}

fn invalid(what: &str, value: f64) -> Result<f64, ConfigError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(ConfigError::Invalid(format!("`{what}` must be a number >= 0, got {value}")))
    }
}

fn secs(what: &str, value: f64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs_f64(invalid(what, value)?.min(1e9)))
}

impl Args {
    /// Builds the run configuration: flags over the `--config` file over
    /// defaults. `extras` come from the binary (the bundled mock provider).
    pub fn into_config(self, extras: Extras) -> Result<RunConfig, ConfigError> {
        let jobs_path = self.jobs.clone().ok_or_else(|| ConfigError::Invalid("no jobs file given".into()))?;
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let plugin_spec = self.plugin.clone().or(file.plugin.clone()).ok_or_else(|| {
            ConfigError::Invalid("no plugin given: pass --plugin NAME|PATH (or `plugin = ...` in --config)".into())
        })?;
        let plugin = PluginSource::resolve(&plugin_spec)?;
        if let Some(expected) = self.plugin_sha256.as_ref().or(file.plugin_sha256.as_ref()) {
            plugin.verify_digest(expected)?;
        }
        let egress = self.egress(&file, &plugin, extras.grants, extras.secrets)?;
        // The user's settings identify the run's answers (for resuming); the
        // ones the host injects (the bundled mock's address) do not.
        let mut user_config = file.plugin_config.clone();
        user_config.extend(self.plugin_config.clone());
        let mut plugin_config: serde_json::Map<String, Value> = extras.plugin_config.into_iter().collect();
        plugin_config.extend(user_config.clone());
        let item = self.item_settings(&file)?;
        let cooldown = self.cooldown_policy(&file)?;
        let admission = AdmissionLimits {
            rpm: self.rpm.or(file.rpm),
            tpm: self.tpm.or(file.tpm),
            burst_secs: self.burst.or(file.burst).unwrap_or(defaults::BURST_SECS),
        };
        let fail_fast = self
            .fail_fast
            .clone()
            .map(|l| l.0)
            .or(file.fail_fast.clone())
            .unwrap_or_else(|| vec![FailureClass::Auth, FailureClass::QuotaExhausted]);
        let sandbox = SandboxLimits {
            max_memory_bytes: usize::try_from(
                self.max_memory_mb.or(file.max_memory_mb).unwrap_or(defaults::MAX_MEMORY_MB),
            )
            .unwrap_or(512)
                << 20,
            max_cpu_per_call: secs(
                "max-cpu-per-call",
                self.max_cpu_per_call.or(file.max_cpu_per_call).unwrap_or(defaults::MAX_CPU_PER_CALL_SECS),
            )?,
            ..SandboxLimits::default()
        };
        let cache_dir = self.cache_dir.clone().or(file.cache_dir.clone()).or_else(CompileCache::default_dir);
        let cache = CompileCache::new(if self.no_cache { None } else { cache_dir });
        let batch_timeout = self.batch_timeout.or(file.batch_timeout).map(|s| secs("batch-timeout", s)).transpose()?;
        let progress = self.progress_mode();
        Ok(RunConfig {
            jobs: jobs_path,
            output: self.output.or(file.output).unwrap_or_else(|| defaults::OUTPUT.into()),
            resume: ResumeOptions {
                overwrite: self.overwrite,
                retry_failed: self.retry_failed,
                force: self.force,
                fsync: self.fsync,
            },
            plugin,
            plugin_config,
            identity_config: user_config,
            concurrency: usize::from(self.concurrency.or(file.concurrency).unwrap_or(defaults::CONCURRENCY).max(1)),
            item,
            cooldown,
            admission,
            fail_fast,
            abort_mode: self.abort_mode.or(file.abort_mode).unwrap_or_default(),
            batch_timeout,
            max_total_tokens: self.max_total_tokens.or(file.max_total_tokens),
            preserve_order: self.preserve_order || file.preserve_order.unwrap_or(false),
            prices: crate::cost::PriceTable::load(self.prices.as_deref().or(file.prices.as_deref()))?,
            max_cost: self.max_cost.or(file.max_cost),
            events: self.events.clone().or(file.events.clone()),
            metrics_addr: self.metrics_addr.or(file.metrics_addr),
            schema: match self.schema.as_deref().or(file.schema.as_deref()) {
                Some(path) => Some(std::sync::Arc::new(crate::schema::OutputSchema::load(path)?)),
                None => None,
            },
            progress,
            sandbox,
            egress,
            cache,
        })
    }

    fn egress(
        &self,
        file: &FileConfig,
        plugin: &PluginSource,
        extra_grants: Vec<HostGrant>,
        extra_secrets: Vec<(String, String)>,
    ) -> Result<Egress, ConfigError> {
        let mut grants = Vec::new();
        for g in &file.allow_host {
            grants.push(g.parse::<HostGrant>().map_err(|e| ConfigError::Invalid(format!("allow-host: {e}")))?);
        }
        grants.extend(self.allow_hosts.iter().cloned());
        grants.extend(extra_grants);
        let default_host = match plugin.name.as_str() {
            "openai" | "smart-retry" => Some("api.openai.com"),
            "anthropic" => Some("api.anthropic.com"),
            "gemini" => Some("generativelanguage.googleapis.com"),
            _ => None,
        };
        if let Some(host) = default_host.filter(|_| plugin.builtin) {
            grants.push(host.parse().map_err(|e| ConfigError::Invalid(format!("{e}")))?);
        }
        let policy = EgressPolicy::new(grants);
        let mut specs = Vec::new();
        for s in &file.secret {
            specs.push(s.parse::<SecretSpec>()?);
        }
        specs.extend(self.secrets.iter().cloned());
        if let Some(var) = self.api_key_env.as_ref().or(file.api_key_env.as_ref()) {
            specs.push(SecretSpec { name: "api-key".into(), source: SecretSource::Env(var.clone()) });
        }
        let mut secrets = Secrets::load(&specs, policy.clone())?;
        for (name, value) in extra_secrets {
            secrets.insert(name, value);
        }
        let mut secret_hosts = Vec::new();
        for s in &file.secret_host {
            secret_hosts.push(s.parse::<SecretHost>().map_err(|e| ConfigError::Invalid(format!("secret-host: {e}")))?);
        }
        secret_hosts.extend(self.secret_hosts.iter().cloned());
        secrets.restrict(&secret_hosts)?;
        Egress::new(policy, secrets, EgressLimits::default()).map_err(|e| ConfigError::Http(e.to_string()))
    }

    /// A bar on a terminal, periodic lines otherwise, nothing with --quiet.
    fn progress_mode(&self) -> ProgressMode {
        use std::io::IsTerminal;
        if self.quiet {
            ProgressMode::Off
        } else if std::io::stderr().is_terminal() {
            ProgressMode::Bar
        } else {
            ProgressMode::Lines { interval: Duration::from_secs_f64(self.progress_interval) }
        }
    }

    fn item_settings(&self, file: &FileConfig) -> Result<ItemSettings, ConfigError> {
        let initial = self.backoff_initial.or(file.backoff_initial).unwrap_or(defaults::BACKOFF_INITIAL_SECS);
        let max = self.backoff_max.or(file.backoff_max).unwrap_or(defaults::BACKOFF_MAX_SECS);
        if max < initial {
            return Err(ConfigError::Invalid("backoff-max must be at least backoff-initial".into()));
        }
        let max_attempts = self.max_attempts.or(file.max_attempts).unwrap_or(defaults::MAX_ATTEMPTS);
        if max_attempts == 0 {
            return Err(ConfigError::Invalid("max-attempts must be at least 1".into()));
        }
        let server_wait = self.max_server_wait.or(file.max_server_wait).unwrap_or(defaults::MAX_SERVER_WAIT_SECS);
        Ok(ItemSettings {
            retry: RetryPolicy {
                max_attempts,
                max_rate_limit_retries: self
                    .max_rate_limit_retries
                    .or(file.max_rate_limit_retries)
                    .unwrap_or(defaults::MAX_RATE_LIMIT_RETRIES),
                initial_backoff: secs("backoff-initial", initial)?,
                max_backoff: secs("backoff-max", max)?,
                max_server_wait: secs("max-server-wait", server_wait)?,
                ..RetryPolicy::default()
            },
            attempt_timeout: secs(
                "attempt-timeout",
                self.attempt_timeout.or(file.attempt_timeout).unwrap_or(defaults::ATTEMPT_TIMEOUT_SECS),
            )?,
            item_timeout: self.item_timeout.or(file.item_timeout).map(|s| secs("item-timeout", s)).transpose()?,
            default_max_output_tokens: self
                .default_max_output_tokens
                .or(file.default_max_output_tokens)
                .unwrap_or(defaults::DEFAULT_MAX_OUTPUT_TOKENS),
        })
    }

    fn cooldown_policy(&self, file: &FileConfig) -> Result<CooldownPolicy, ConfigError> {
        let multiplier = self.cooldown_multiplier.or(file.cooldown_multiplier).unwrap_or(defaults::COOLDOWN_MULTIPLIER);
        if !(multiplier.is_finite() && multiplier >= 1.0) {
            return Err(ConfigError::Invalid(format!("cooldown-multiplier must be >= 1, got {multiplier}")));
        }
        Ok(CooldownPolicy {
            base: secs("cooldown", self.cooldown.or(file.cooldown).unwrap_or(defaults::COOLDOWN_SECS))?,
            multiplier,
            max: secs("cooldown-max", self.cooldown_max.or(file.cooldown_max).unwrap_or(defaults::COOLDOWN_MAX_SECS))?,
            slow_start_attempts: self
                .slow_start_attempts
                .or(file.slow_start_attempts)
                .unwrap_or(defaults::SLOW_START_ATTEMPTS),
            slow_start_spacing: secs(
                "slow-start-spacing",
                self.slow_start_spacing.or(file.slow_start_spacing).unwrap_or(defaults::SLOW_START_SPACING_SECS),
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_parse_json_or_string() {
        assert_eq!(parse_key_value("a=1").expect("ok"), ("a".into(), Value::from(1)));
        assert_eq!(parse_key_value("a=null").expect("ok"), ("a".into(), Value::Null));
        assert_eq!(parse_key_value("u=http://x:1/v1").expect("ok"), ("u".into(), Value::from("http://x:1/v1")));
        assert!(parse_key_value("novalue").is_err());
    }

    #[test]
    fn class_lists_parse() {
        assert_eq!(parse_classes("none").expect("ok"), ClassList(vec![]));
        assert_eq!(
            parse_classes("auth,too-large").expect("ok"),
            ClassList(vec![FailureClass::Auth, FailureClass::TooLarge])
        );
        assert!(parse_classes("auth,bogus").is_err());
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("run.toml");
        std::fs::write(
            &cfg,
            "plugin = \"mock\"\nconcurrency = 5\nmax-attempts = 7\nrpm = 60\n[plugin-config]\nk = 1\n",
        )
        .expect("write");
        let args = Args::parse_from([
            "batchllm-host",
            "jobs.jsonl",
            "--config",
            cfg.to_str().expect("utf8"),
            "--concurrency",
            "9",
            "--plugin-config",
            "k=2",
        ]);
        let run = args.into_config(Extras::default()).expect("config");
        assert_eq!(run.concurrency, 9, "flag wins");
        assert_eq!(run.item.retry.max_attempts, 7, "file wins over default");
        assert_eq!(run.admission.rpm, Some(60.0));
        assert_eq!(run.plugin_config["k"], 2);
        assert_eq!(run.item.retry.max_rate_limit_retries, defaults::MAX_RATE_LIMIT_RETRIES);
        assert_eq!(run.fail_fast, vec![FailureClass::Auth, FailureClass::QuotaExhausted]);
    }

    #[test]
    fn a_plugin_is_required() {
        let args = Args::parse_from(["batchllm-host", "jobs.jsonl"]);
        let err = args.into_config(Extras::default()).expect_err("no plugin");
        assert!(err.to_string().contains("no plugin given"), "{err}");
    }

    #[test]
    fn help_renders() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
