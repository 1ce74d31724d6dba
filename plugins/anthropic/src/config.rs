//! The plugin configuration: the shared provider keys with Anthropic defaults.

use batchllm_plugin_sdk::StrategyError;
use batchllm_plugin_sdk::provider_config::{self, CommonConfig, Defaults};
use batchllm_plugin_sdk::serde_json::Value;

/// The defaults of the shared keys.
pub const DEFAULTS: Defaults =
    Defaults { plugin: "anthropic", base_url: "https://api.anthropic.com", model: "claude-sonnet-4-5" };

/// The `anthropic-version` header sent unless `extra_headers` replaces it.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` when neither the job nor `default_params` sets it (the
/// Messages API requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 1024;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `base_url`, `model`, `api_key_secret`, `default_params`, `extra_headers`.
    pub common: CommonConfig,
}

impl Config {
    /// Parses and validates the configuration document (a JSON object; empty
    /// text or `null` means all defaults).
    pub fn parse(text: &str) -> Result<Config, StrategyError> {
        Self::from_value(&batchllm_plugin_sdk::parse_config(text)?)
    }

    /// Validates a configuration value.
    pub fn from_value(value: &Value) -> Result<Config, StrategyError> {
        let obj = provider_config::object(value, DEFAULTS.plugin)?;
        Ok(Config { common: CommonConfig::from_object(obj, DEFAULTS, &[])? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use batchllm_plugin_sdk::ErrorClass;
    use batchllm_plugin_sdk::serde_json::json;

    #[test]
    fn defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.common.base_url, "https://api.anthropic.com");
        assert_eq!(c.common.model, "claude-sonnet-4-5");
        assert_eq!(c.common.api_key_secret.as_deref(), Some("api-key"));
    }

    #[test]
    fn unknown_keys_and_bad_documents_are_client_errors() {
        let e = Config::from_value(&json!({"max_token": 5})).unwrap_err();
        assert_eq!(e.class, ErrorClass::ClientError);
        assert!(e.message.starts_with("invalid anthropic plugin configuration: unknown key"), "{}", e.message);
        assert!(Config::from_value(&json!([1])).is_err());
        assert!(Config::parse("{").is_err());
    }
}
