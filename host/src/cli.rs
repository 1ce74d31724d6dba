//! The command line, and its translation into a [`RunConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde_json::{Map, Value};

use crate::egress::{Egress, EgressLimits, EgressPolicy, HostGrant, SecretSource, SecretSpec, Secrets};
use crate::plugin::PluginSource;
use crate::run::{ItemSettings, RetryPolicy, RunConfig};
use crate::sandbox::{CompileCache, SandboxLimits};

/// Run a batch of LLM requests through a sandboxed WebAssembly provider plugin.
///
/// Each line of JOBS is one request, either an OpenAI Batch input line
/// {"custom_id", "method", "url", "body"} or a simple line {"id", "prompt",
/// "params"?, "context"?}. Every line ends as exactly one line of the results
/// file, in the OpenAI Batch output shape plus a `batchllm` block.
///
/// Exit codes: 0 all items succeeded; 1 some failed; 2 usage or input error;
/// 3 aborted (plugin prepare failed); 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "batchllm-host", version, about, long_about, after_help = EXAMPLES)]
pub struct Args {
    /// The jobs file (JSONL).
    pub jobs: PathBuf,

    /// The provider plugin: a built-in name (openai, mock) or a path to a
    /// WebAssembly component implementing batchllm:strategy.
    #[arg(long, value_name = "NAME|PATH")]
    pub plugin: String,

    /// Where to write results.
    #[arg(short, long, value_name = "FILE", default_value = "results.jsonl")]
    pub output: PathBuf,

    /// Replace an existing, non-empty results file.
    #[arg(long)]
    pub overwrite: bool,

    /// How many items are processed at once.
    #[arg(short = 'j', long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub concurrency: u16,

    /// A plugin setting, KEY=VALUE (VALUE is parsed as JSON when it can be,
    /// else taken as a string). Repeatable. E.g. base_url=http://localhost:8000/v1
    #[arg(long = "plugin-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub plugin_config: Vec<(String, Value)>,

    /// Allow the plugin to reach HOST[:PORT] (`*.example.com` allowed). Without
    /// a port only the scheme's default port is allowed. Repeatable. The
    /// built-in openai plugin is granted api.openai.com by default.
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

    /// Start the bundled mock provider on 127.0.0.1, grant it, and point the
    /// plugin at it (base_url) with a generated API key. For demos and trying
    /// the tool without an account.
    #[arg(long)]
    pub mock_provider: bool,

    /// Refuse the plugin unless its SHA-256 is this (hex).
    #[arg(long, value_name = "HEX")]
    pub plugin_sha256: Option<String>,

    /// Attempts per item for failures other than rate limits.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,

    /// Rate-limit retries per item (they do not use attempts).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_rate_limit_retries: u32,

    /// Time limit for one attempt, plugin CPU and HTTP together (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 120.0, value_parser = positive_secs)]
    pub attempt_timeout: f64,

    /// Time limit for an item across all its attempts and waits (seconds).
    #[arg(long, value_name = "SECS", value_parser = positive_secs)]
    pub item_timeout: Option<f64>,

    /// First retry backoff (seconds); doubles per failure, with jitter.
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = non_negative_secs)]
    pub backoff_initial: f64,

    /// Longest retry backoff (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = non_negative_secs)]
    pub backoff_max: f64,

    /// Linear memory per plugin instance (MiB).
    #[arg(long, value_name = "MIB", default_value_t = 512, value_parser = clap::value_parser!(u32).range(16..=65536))]
    pub max_memory_mb: u32,

    /// Plugin CPU time per call (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = positive_secs)]
    pub max_cpu_per_call: f64,

    /// Where compiled plugins are cached (default: ~/.cache/batchllm-host).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,

    /// Compile the plugin every run.
    #[arg(long)]
    pub no_cache: bool,

    /// Only errors on stderr.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

const EXAMPLES: &str = "Examples:
  batchllm-host --plugin openai --mock-provider examples/jobs.jsonl
  batchllm-host --plugin openai --api-key-env OPENAI_API_KEY jobs.jsonl -o out.jsonl
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

fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(v),
        _ => Err(format!("expected a positive number of seconds, got `{s}`")),
    }
}

fn non_negative_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..1e9).contains(&v) => Ok(v),
        _ => Err(format!("expected a number of seconds >= 0, got `{s}`")),
    }
}

/// Errors turning arguments into a run configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    #[error(transparent)]
    Secret(#[from] crate::egress::SecretError),
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

impl Args {
    /// Builds the run configuration. `extras` come from the binary (the
    /// bundled mock provider).
    pub fn into_config(self, extras: Extras) -> Result<RunConfig, ConfigError> {
        let plugin = PluginSource::resolve(&self.plugin)?;
        if let Some(expected) = &self.plugin_sha256 {
            plugin.verify_digest(expected)?;
        }
        let mut grants = self.allow_hosts.clone();
        grants.extend(extras.grants);
        if plugin.builtin && plugin.name == "openai" {
            grants.push("api.openai.com".parse().map_err(|e| ConfigError::Invalid(format!("{e}")))?);
        }
        let policy = EgressPolicy::new(grants);
        let mut specs = self.secrets.clone();
        if let Some(var) = &self.api_key_env {
            specs.push(SecretSpec { name: "api-key".into(), source: SecretSource::Env(var.clone()) });
        }
        let mut secrets = Secrets::load(&specs, policy.clone())?;
        for (name, value) in extras.secrets {
            secrets.insert(name, value);
        }
        let egress =
            Egress::new(policy, secrets, EgressLimits::default()).map_err(|e| ConfigError::Http(e.to_string()))?;

        let mut plugin_config = Map::new();
        for (k, v) in extras.plugin_config.into_iter().chain(self.plugin_config) {
            plugin_config.insert(k, v);
        }
        if self.backoff_max < self.backoff_initial {
            return Err(ConfigError::Invalid("--backoff-max must be at least --backoff-initial".into()));
        }
        let item = ItemSettings {
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                max_rate_limit_retries: self.max_rate_limit_retries,
                initial_backoff: Duration::from_secs_f64(self.backoff_initial),
                max_backoff: Duration::from_secs_f64(self.backoff_max),
                ..RetryPolicy::default()
            },
            attempt_timeout: Duration::from_secs_f64(self.attempt_timeout),
            item_timeout: self.item_timeout.map(Duration::from_secs_f64),
        };
        let sandbox = SandboxLimits {
            max_memory_bytes: usize::try_from(self.max_memory_mb).unwrap_or(512) << 20,
            max_cpu_per_call: Duration::from_secs_f64(self.max_cpu_per_call),
            ..SandboxLimits::default()
        };
        let cache =
            CompileCache::new(if self.no_cache { None } else { self.cache_dir.or_else(CompileCache::default_dir) });
        Ok(RunConfig {
            jobs: self.jobs,
            output: self.output,
            overwrite: self.overwrite,
            plugin,
            plugin_config,
            concurrency: usize::from(self.concurrency),
            item,
            sandbox,
            egress,
            cache,
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
    fn help_renders() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
