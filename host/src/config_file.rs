//! The `--config` file: every run option in TOML, under the flag's name.
//!
//! ```toml
//! plugin = "openai"
//! concurrency = 32
//! allow-host = ["api.openai.com"]
//! api-key-env = "OPENAI_API_KEY"
//! rpm = 500
//! tpm = 200000
//! fail-fast = ["auth", "quota_exhausted"]
//!
//! [plugin-config]
//! model = "gpt-4o-mini"
//! ```
//!
//! Flags win over the file; the file wins over built-in defaults. Unknown
//! keys are errors, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::model::FailureClass;
use crate::run::AbortMode;

/// Everything a config file may set. Keys are the long flag names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub plugin: Option<String>,
    pub output: Option<PathBuf>,
    pub concurrency: Option<u16>,
    #[serde(default)]
    pub plugin_config: Map<String, Value>,
    #[serde(default)]
    pub allow_host: Vec<String>,
    #[serde(default)]
    pub allow_internal_host: Vec<String>,
    pub api_key_env: Option<String>,
    /// `NAME=env:VAR` or `NAME=file:PATH` entries.
    #[serde(default)]
    pub secret: Vec<String>,
    /// `NAME=HOST[:PORT]` entries restricting where a secret may go.
    #[serde(default)]
    pub secret_host: Vec<String>,
    pub plugin_sha256: Option<String>,
    pub max_attempts: Option<u32>,
    pub max_rate_limit_retries: Option<u32>,
    pub attempt_timeout: Option<f64>,
    pub item_timeout: Option<f64>,
    pub batch_timeout: Option<f64>,
    pub stop_grace: Option<f64>,
    pub backoff_initial: Option<f64>,
    pub backoff_max: Option<f64>,
    pub max_server_wait: Option<f64>,
    pub cooldown: Option<f64>,
    pub cooldown_multiplier: Option<f64>,
    pub cooldown_max: Option<f64>,
    pub slow_start_attempts: Option<u32>,
    pub slow_start_spacing: Option<f64>,
    pub rpm: Option<f64>,
    pub tpm: Option<f64>,
    pub burst: Option<f64>,
    pub default_max_output_tokens: Option<u64>,
    pub fail_fast: Option<Vec<FailureClass>>,
    pub max_total_tokens: Option<u64>,
    pub preserve_order: Option<bool>,
    pub max_cost: Option<f64>,
    pub prices: Option<PathBuf>,
    pub events: Option<PathBuf>,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub schema: Option<PathBuf>,
    pub abort_mode: Option<AbortMode>,
    pub max_memory_mb: Option<u32>,
    pub max_cpu_per_call: Option<f64>,
    pub max_requests_per_call: Option<u32>,
    pub cache_dir: Option<PathBuf>,
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl FileConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read { path: path.into(), source })?;
        Self::parse(&text).map_err(|message| ConfigFileError::Parse { path: path.into(), message })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_of_value() {
        let c = FileConfig::parse(
            r#"
            plugin = "openai"
            concurrency = 32
            allow-host = ["api.openai.com", "*.example.com:8443"]
            rpm = 500
            fail-fast = ["auth", "quota-exhausted"]
            abort-mode = "cancel"
            [plugin-config]
            model = "gpt-4o-mini"
            temperature = 0.2
            "#,
        )
        .expect("valid");
        assert_eq!(c.plugin.as_deref(), Some("openai"));
        assert_eq!(c.concurrency, Some(32));
        assert_eq!(c.allow_host.len(), 2);
        assert_eq!(c.rpm, Some(500.0));
        assert_eq!(c.fail_fast, Some(vec![FailureClass::Auth, FailureClass::QuotaExhausted]));
        assert_eq!(c.abort_mode, Some(AbortMode::Cancel));
        assert_eq!(c.plugin_config["temperature"], 0.2);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = FileConfig::parse("concurency = 3").expect_err("typo");
        assert!(e.contains("concurency"), "{e}");
        let e = FileConfig::parse("fail-fast = [\"nope\"]").expect_err("bad class");
        assert!(e.contains("unknown failure class"), "{e}");
    }
}
