//! Every option, once: its flag and `--help` text, its `--config` key (the
//! long flag name), its default and its accepted range.
//!
//! To add a run option, add an entry to [`options!`] below and pass its
//! value on in [`Settings::into_run_config`], at the end of this file; the
//! flag, the config key, the check, the merge and the `--help` default come
//! with the entry. An option that belongs to one invocation only (a switch
//! like `--overwrite`) goes in [`Invocation`] instead, which has no config
//! key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::OptionsError;
use super::access::Access;
use super::check;
use super::table::options;
use super::values::{ClassList, InternalGrant, key_values, parse_key_value, parsed_list};
use crate::cluster::{ClusterSettings, ClusterUrl, ShardSpec};
use crate::egress::{HostGrant, SecretHost, SecretSpec};
use crate::plugin::PluginSource;
use crate::results::ResumeOptions;
use crate::run::{AbortMode, AdmissionLimits, CooldownPolicy, ItemSettings, ProgressMode, RetryPolicy, RunConfig};
use crate::sandbox::{CompileCache, SandboxLimits};

options! {
    /// The provider plugin: a built-in name or a path to a WebAssembly
    /// component implementing batchllm:strategy.
    #[arg(long, value_name = "NAME|PATH")]
    plugin: Option<String>;

    /// Where to write results; also the checkpoint a re-run resumes from.
    /// A name ending in .gz is written gzip-compressed (and still resumes).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf> = PathBuf::from("results.jsonl");

    /// Write results in input order (default: as items finish). Records that
    /// finish behind a slow item wait in memory.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    preserve_order: Option<bool> = false;

    /// How many items are processed at once, 1-16384 (each holds a plugin instance).
    #[arg(short = 'j', long, value_name = "N")]
    concurrency: Option<i64> = 8, check check::CONCURRENCY;

    /// A plugin setting, KEY=VALUE (VALUE is parsed as JSON when it can be,
    /// else taken as a string). Repeatable. E.g. base_url=http://localhost:8000/v1
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    #[serde(deserialize_with = "key_values")]
    plugin_config: Vec<(String, Value)>;

    /// Allow the plugin to reach HOST[:PORT] (`*.example.com` allowed). A
    /// bare HOST allows https on port 443 only; HOST:PORT allows that port
    /// over https or http; plain http on port 80 is http://HOST. A name must
    /// resolve to public addresses (see --allow-internal-host); an IP
    /// literal is reached as given, e.g. 127.0.0.1:8000 for a local server.
    /// Repeatable. A built-in plugin is granted its provider's API host
    /// (https) when it uses its default base URL.
    #[arg(long, value_name = "HOST[:PORT]")]
    #[serde(deserialize_with = "parsed_list")]
    allow_host: Vec<HostGrant>;

    /// Like --allow-host, for an exact name that may resolve to internal
    /// addresses (loopback, LAN, link-local), e.g. vllm.lan:8000. Repeatable.
    #[arg(long, value_name = "HOST[:PORT]")]
    #[serde(deserialize_with = "parsed_list")]
    allow_internal_host: Vec<InternalGrant>;

    /// Read the API key (secret `api-key`) from this environment variable of
    /// the host. The plugin never sees it: the host inserts it into requests
    /// to granted hosts. Built-in plugins read their provider's variable
    /// (OPENAI_API_KEY, ANTHROPIC_API_KEY, GOOGLE_API_KEY or GEMINI_API_KEY)
    /// without this flag, for their provider's own host only.
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>;

    /// A named secret, NAME=env:VAR or NAME=file:PATH. Plugins refer to it as
    /// `{{secret:NAME}}` in a header. Repeatable.
    #[arg(long, value_name = "NAME=SOURCE")]
    #[serde(deserialize_with = "parsed_list")]
    secret: Vec<SecretSpec>;

    /// Restrict secret NAME to HOST[:PORT] (same grammar as --allow-host; the
    /// host must also be granted). Repeatable; a secret with no entry may go
    /// to every host granted by name (not to wildcard grants). A secret goes
    /// over plain http only to loopback, or to an entry written http://HOST.
    /// E.g. api-key=api.openai.com
    #[arg(long, value_name = "NAME=HOST[:PORT]")]
    #[serde(deserialize_with = "parsed_list")]
    secret_host: Vec<SecretHost>;

    /// Refuse the plugin unless its SHA-256 is this (hex).
    #[arg(long, value_name = "HEX")]
    plugin_sha256: Option<String>;

    /// A price table (TOML, US dollars per million tokens per model) whose
    /// models replace the shipped ones.
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>;

    /// Every output must be JSON matching this JSON Schema (a code fence
    /// around it is accepted); a mismatch is an invalid_response, retried
    /// without backoff, its message passed to the plugin's on-error.
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>;

    /// Write lifecycle events (attempts, rate limits, cooldowns, items,
    /// aborts) to FILE as JSON lines.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>;

    /// Serve Prometheus metrics on http://ADDR/metrics while the run lasts
    /// (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>;

    /// Attempts per item for failures other than rate limits, 1-1000.
    #[arg(long, value_name = "N", help_heading = "Retries")]
    max_attempts: Option<i64> = 3, check check::ATTEMPTS;

    /// Rate-limit retries per item; they do not use attempts.
    #[arg(long, value_name = "N", help_heading = "Retries")]
    max_rate_limit_retries: Option<i64> = 20, check check::RATE_LIMIT_RETRIES;

    /// First retry backoff in seconds; doubles per failure, with jitter.
    #[arg(long, value_name = "SECS", help_heading = "Retries")]
    backoff_initial: Option<f64> = 1.0, check check::SECS;

    /// Longest retry backoff in seconds. A --backoff-initial above the
    /// default raises it; above a --backoff-max you set is an error.
    #[arg(long, value_name = "SECS", help_heading = "Retries")]
    backoff_max: Option<f64> = 60.0, check check::SECS;

    /// Longest server-requested wait (retry-after) honoured as given, in
    /// seconds; longer hints are capped.
    #[arg(long, value_name = "SECS", help_heading = "Retries")]
    max_server_wait: Option<f64> = 120.0, check check::SECS;

    /// Items ending in one of these classes abort the run: queued items end
    /// as `aborted` without calls, exit code 3. Comma-separated; `none`
    /// disables.
    #[arg(long, value_name = "CLASSES", help_heading = "Retries")]
    fail_fast: Option<ClassList> = ClassList::default_fail_fast();

    /// On abort, let in-flight attempts finish (drain) or cancel them.
    #[arg(long, value_name = "MODE", help_heading = "Retries")]
    abort_mode: Option<AbortMode> = AbortMode::Drain;

    /// Stop the run (exit code 3) once this many tokens, input plus output,
    /// failed attempts included, have been used; remaining items end `aborted`.
    #[arg(long, value_name = "N", help_heading = "Retries")]
    max_total_tokens: Option<i64>, check check::TOKEN_BUDGET;

    /// Stop the run (exit code 3) once this many US dollars are spent,
    /// priced with the shipped table or --prices.
    #[arg(long, value_name = "USD", help_heading = "Retries")]
    max_cost: Option<f64>, check check::USD;

    /// Coordinated pause of every attempt to a provider after a rate limit,
    /// in seconds, when the server gives no longer hint.
    #[arg(long, value_name = "SECS", help_heading = "Rate limits")]
    cooldown: Option<f64> = 1.0, check check::SECS;

    /// Growth of the cooldown per consecutive rate limit, 1-100.
    #[arg(long, value_name = "X", help_heading = "Rate limits")]
    cooldown_multiplier: Option<f64> = 2.0, check check::MULTIPLIER;

    /// Cap on the cooldown's policy part, in seconds. A --cooldown above the
    /// default raises it; above a --cooldown-max you set is an error.
    #[arg(long, value_name = "SECS", help_heading = "Rate limits")]
    cooldown_max: Option<f64> = 60.0, check check::SECS;

    /// Attempts spaced out after a cooldown (0 disables).
    #[arg(long, value_name = "N", help_heading = "Rate limits")]
    slow_start_attempts: Option<i64> = 16, check check::SLOW_START_ATTEMPTS;

    /// Spacing before the first attempt after a cooldown, shrinking to 0
    /// over the slow-start attempts, in seconds.
    #[arg(long, value_name = "SECS", help_heading = "Rate limits")]
    slow_start_spacing: Option<f64> = 0.1, check check::SECS;

    /// Requests per minute admitted (paced, burst of --burst seconds); at
    /// least about one a year.
    #[arg(long, value_name = "N", help_heading = "Rate limits")]
    rpm: Option<f64>, check check::PER_MINUTE;

    /// Tokens per minute admitted: prompt estimate + max output tokens,
    /// corrected by the usage each response reports.
    #[arg(long, value_name = "N", help_heading = "Rate limits")]
    tpm: Option<f64>, check check::PER_MINUTE;

    /// Learn the limit of a provider that announces none (no rate-limit
    /// headers) from the requests it accepts and refuses, and pace to it;
    /// `--adaptive-rate false` only backs off after each 429.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", help_heading = "Rate limits")]
    adaptive_rate: Option<bool> = true;

    /// Over the first SECS of the run, grow the attempts in flight from one
    /// to --concurrency, so a fresh quota is not hit by the whole pool at
    /// once (off by default).
    #[arg(long, value_name = "SECS", help_heading = "Rate limits")]
    startup_ramp: Option<f64>, check check::SECS;

    /// Seconds of rate the RPM/TPM buckets may burst.
    #[arg(long, value_name = "SECS", help_heading = "Rate limits")]
    burst: Option<f64> = 1.0, check check::POSITIVE_SECS;

    /// Output tokens charged for a job that sets no max_tokens.
    #[arg(long, value_name = "N", help_heading = "Rate limits")]
    default_max_output_tokens: Option<i64> = 1024, check check::OUTPUT_TOKENS;

    /// Time limit for one attempt, plugin CPU and HTTP together, in seconds.
    #[arg(long, value_name = "SECS", help_heading = "Time")]
    attempt_timeout: Option<f64> = 120.0, check check::POSITIVE_SECS;

    /// Time limit for an item across all its attempts and waits, in seconds.
    #[arg(long, value_name = "SECS", help_heading = "Time")]
    item_timeout: Option<f64>, check check::POSITIVE_SECS;

    /// Time limit for the whole run, in seconds; unfinished items end as
    /// `batch_deadline_exceeded` (exit code 3).
    #[arg(long, value_name = "SECS", help_heading = "Time")]
    batch_timeout: Option<f64>, check check::POSITIVE_SECS;

    /// After a stop signal (SIGINT, SIGTERM, SIGHUP), how long requests
    /// already on the wire may still answer before they are dropped and
    /// recorded `outcome_unknown`, in seconds.
    #[arg(long, value_name = "SECS", help_heading = "Time")]
    stop_grace: Option<f64> = 20.0, check check::SECS;

    /// Linear memory per plugin instance, in MiB, 16-65536.
    #[arg(long, value_name = "MIB", help_heading = "Sandbox")]
    max_memory_mb: Option<i64> = 512, check check::MEMORY_MB;

    /// Plugin CPU time per call, in seconds.
    #[arg(long, value_name = "SECS", help_heading = "Sandbox")]
    max_cpu_per_call: Option<f64> = 30.0, check check::POSITIVE_SECS;

    /// HTTP requests one plugin call may make, 1-10000; more are denied.
    #[arg(long, value_name = "N", help_heading = "Sandbox")]
    max_requests_per_call: Option<i64> = 16, check check::REQUESTS_PER_CALL;

    /// Where compiled plugins are cached [default: ~/.cache/batchllm-host].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache", help_heading = "Sandbox")]
    cache_dir: Option<PathBuf>;

    /// Run only shard I of N of the input (ids whose SHA-256 modulo N is I),
    /// with its own results file; `auto/N` reads I from JOB_COMPLETION_INDEX
    /// (a Kubernetes Indexed Job). Every host validates the whole file.
    #[arg(long, value_name = "I/N", help_heading = "Scale-out", conflicts_with = "cluster")]
    shard: Option<ShardSpec>;

    /// Run the batch together with every host started with the same jobs
    /// file, results path, plugin and URL: one shared provider limit, the
    /// input split into chunks that hosts claim with leases, a dead host's
    /// chunks taken over. redis://[:PASSWORD@]HOST[:PORT][/DB].
    #[arg(long, value_name = "URL", help_heading = "Scale-out")]
    cluster: Option<ClusterUrl>;

    /// With --cluster: a host that has not renewed its claim on a chunk for
    /// this long (it renews every third of it) is taken to be dead, and
    /// its chunk is taken over.
    #[arg(long, value_name = "SECS", help_heading = "Scale-out")]
    cluster_lease: Option<f64> = 30.0, check check::LEASE_SECS;

    /// With --cluster: input lines per chunk (the unit hosts claim).
    #[arg(long, value_name = "N", help_heading = "Scale-out")]
    cluster_chunk: Option<i64> = 1000, check check::CHUNK_LINES;
}

/// Where `--help` lists the switches that have no `--config` key.
pub const INVOCATION_HEADING: &str = "This invocation only (not read from --config)";

/// Switches that belong to one invocation: starting over, resuming past a
/// change, how this run reports. A config file shared by many runs must not
/// turn them on for all of them, so they are flags only.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = INVOCATION_HEADING)]
pub struct Invocation {
    /// Discard an existing results file instead of resuming from it.
    #[arg(long, conflicts_with_all = ["retry_failed", "force", "strict_resume", "prune"])]
    pub overwrite: bool,

    /// When resuming, run items whose record is a failure again (their old
    /// records are replaced).
    #[arg(long)]
    pub retry_failed: bool,

    /// Resume keeping every existing record, even those whose input line,
    /// plugin or plugin configuration changed since, and those whose id is
    /// no longer in the input.
    #[arg(long, conflicts_with = "strict_resume")]
    pub force: bool,

    /// When resuming, refuse if any input line changed since its record
    /// (by default the changed lines run again and the others keep their
    /// records).
    #[arg(long)]
    pub strict_resume: bool,

    /// When resuming, drop the records whose id is no longer in the input
    /// (by default such a results file is refused: it may belong to another
    /// input).
    #[arg(long)]
    pub prune: bool,

    /// fsync the results file after every record (slower; survives power loss).
    #[arg(long)]
    pub fsync: bool,

    /// Validate the input and the plugin and estimate tokens; send nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Also write the run summary as JSON to FILE (counts by status and
    /// failure class, retries, rate limits and cooldown, tokens, timing).
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,

    /// Start the bundled mock provider on 127.0.0.1, grant it, and point the
    /// plugin at it (base_url) with a generated API key. For demos and trying
    /// the tool without an account.
    #[arg(long)]
    pub mock_provider: bool,

    /// Compile the plugin every run.
    #[arg(long)]
    pub no_cache: bool,

    /// When stderr is not a terminal, print a progress line this often (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 10.0,
          value_parser = check::flag_parser::<f64, _>(check::POSITIVE_SECS))]
    pub progress_interval: f64,

    /// Only errors on stderr.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Settings {
    /// The engine's configuration: each setting where the engine reads it.
    pub fn into_run_config(
        self,
        jobs: PathBuf,
        plugin: PluginSource,
        access: Access,
        once: &Invocation,
    ) -> Result<RunConfig, OptionsError> {
        let s = self;
        let cache =
            CompileCache::new(if once.no_cache { None } else { s.cache_dir.or_else(CompileCache::default_dir) });
        Ok(RunConfig {
            jobs: jobs.into(),
            output: s.output,
            resume: ResumeOptions {
                overwrite: once.overwrite,
                retry_failed: once.retry_failed,
                force: once.force,
                strict: once.strict_resume,
                prune: once.prune,
                fsync: once.fsync,
            },
            plugin,
            plugin_config: access.plugin_config,
            identity_config: access.identity_config,
            concurrency: count(s.concurrency),
            item: ItemSettings {
                retry: RetryPolicy {
                    max_attempts: count(s.max_attempts),
                    max_rate_limit_retries: count(s.max_rate_limit_retries),
                    initial_backoff: secs(s.backoff_initial),
                    max_backoff: secs(s.backoff_max),
                    max_server_wait: secs(s.max_server_wait),
                    ..RetryPolicy::default()
                },
                attempt_timeout: secs(s.attempt_timeout),
                item_timeout: s.item_timeout.map(secs),
                default_max_output_tokens: count(s.default_max_output_tokens),
            },
            cooldown: CooldownPolicy {
                base: secs(s.cooldown),
                multiplier: s.cooldown_multiplier,
                max: secs(s.cooldown_max),
                slow_start_attempts: count(s.slow_start_attempts),
                slow_start_spacing: secs(s.slow_start_spacing),
            },
            admission: AdmissionLimits { rpm: s.rpm, tpm: s.tpm, burst_secs: s.burst },
            adaptive_rate: s.adaptive_rate,
            startup_ramp: s.startup_ramp.map(secs).filter(|d| !d.is_zero()),
            fail_fast: s.fail_fast.0,
            abort_mode: s.abort_mode,
            batch_timeout: s.batch_timeout.map(secs),
            stop_grace: secs(s.stop_grace),
            max_total_tokens: s.max_total_tokens.map(count),
            preserve_order: s.preserve_order,
            prices: crate::cost::PriceTable::load(s.prices.as_deref())?,
            max_cost: s.max_cost,
            events: s.events,
            metrics_addr: s.metrics_addr,
            schema: match s.schema.as_deref() {
                Some(path) => Some(std::sync::Arc::new(crate::schema::OutputSchema::load(path)?)),
                None => None,
            },
            progress: progress_mode(once),
            sandbox: SandboxLimits {
                max_memory_bytes: count::<usize>(s.max_memory_mb).saturating_mul(1 << 20),
                max_cpu_per_call: secs(s.max_cpu_per_call),
                ..SandboxLimits::default()
            },
            egress: access.egress,
            cache,
            // Resolved with the environment by `options::build_with_env`.
            shard: None,
            cluster: s.cluster.map(|url| ClusterSettings {
                url,
                lease: secs(s.cluster_lease),
                chunk_lines: count(s.cluster_chunk),
            }),
        })
    }
}

/// A checked count in the engine's type. The checks keep it in range, so
/// the fallback is never taken; it is there so no input can make this panic.
fn count<T: TryFrom<i64> + Default>(value: i64) -> T {
    T::try_from(value).unwrap_or_default()
}

/// A checked number of seconds (finite, 0 to a year) as a duration.
fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::ZERO)
}

/// A bar on a terminal, periodic lines otherwise, nothing with --quiet.
fn progress_mode(once: &Invocation) -> ProgressMode {
    use std::io::IsTerminal;
    if once.quiet {
        ProgressMode::Off
    } else if std::io::stderr().is_terminal() {
        ProgressMode::Bar
    } else {
        ProgressMode::Lines { interval: secs(once.progress_interval) }
    }
}
