//! The plugin configuration: the shared provider keys
//! ([`CommonConfig`]) with OpenAI defaults.

use batchllm_plugin_sdk::provider_config::{self, CommonConfig, Defaults};
use batchllm_plugin_sdk::{StrategyError, serde_json};
use serde_json::{Map, Value};
use std::ops::Deref;

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
pub const DEFAULT_API_KEY_SECRET: &str = "api-key";

/// The defaults of the shared keys.
pub const DEFAULTS: Defaults = Defaults { plugin: "openai", base_url: DEFAULT_BASE_URL, model: DEFAULT_MODEL };

/// The validated configuration: exactly the shared keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `base_url`, `model`, `api_key_secret`, `default_params`, `extra_headers`.
    pub common: CommonConfig,
}

/// The fields read through the configuration itself (`config.model`), as the
/// `openai` plugin and the strategies built on this crate read them.
impl Deref for Config {
    type Target = CommonConfig;

    fn deref(&self) -> &CommonConfig {
        &self.common
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            common: CommonConfig {
                base_url: DEFAULT_BASE_URL.to_owned(),
                base_has_path: true,
                model: DEFAULT_MODEL.to_owned(),
                api_key_secret: Some(DEFAULT_API_KEY_SECRET.to_owned()),
                default_params: Map::new(),
                extra_headers: Vec::new(),
            },
        }
    }
}

impl Config {
    /// Parses and validates the configuration document (a JSON object; empty
    /// text or `null` means all defaults).
    pub fn parse(text: &str) -> Result<Config, StrategyError> {
        let value = batchllm_plugin_sdk::parse_config(text)?;
        Self::from_value(&value)
    }

    /// Validates a configuration value; unknown keys are an error naming the key.
    pub fn from_value(value: &Value) -> Result<Config, StrategyError> {
        let obj = provider_config::object(value, DEFAULTS.plugin)?;
        Ok(Config { common: CommonConfig::from_object(obj, DEFAULTS, &[])? })
    }
}

/// Shared with the other provider strategies.
pub use batchllm_plugin_sdk::provider_config::validate_base_url;

#[cfg(test)]
mod tests {
    use super::*;
    use batchllm_plugin_sdk::ErrorClass;
    use serde_json::json;

    #[test]
    fn defaults() {
        let c = Config::parse("{}").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert_eq!(c.base_url, "https://api.openai.com/v1");
        assert_eq!(c.api_key_secret.as_deref(), Some("api-key"));
    }

    #[test]
    fn full_config() {
        let c = Config::from_value(&json!({
            "base_url": "http://127.0.0.1:8080/",
            "model": "llama",
            "api_key_secret": null,
            "default_params": {"temperature": 0},
            "extra_headers": {"x-title": "batch"}
        }))
        .unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:8080");
        assert!(!c.base_has_path);
        assert_eq!(c.model, "llama");
        assert_eq!(c.api_key_secret, None);
        assert_eq!(c.default_params["temperature"], 0);
        assert_eq!(c.extra_headers, vec![("x-title".to_owned(), "batch".to_owned())]);
        let c = Config::from_value(&json!({"api_key_secret": ""})).unwrap();
        assert_eq!(c.api_key_secret, None);
        let c = Config::from_value(&json!({"api_key_secret": "openrouter"})).unwrap();
        assert_eq!(c.api_key_secret.as_deref(), Some("openrouter"));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_value(&json!({"base_ulr": "http://x"})).unwrap_err();
        assert_eq!(e.class, ErrorClass::ClientError);
        assert!(e.message.contains("\"base_ulr\""), "{}", e.message);
    }

    #[test]
    fn invalid_values() {
        for bad in [
            json!({"base_url": "api.openai.com/v1"}),
            json!({"base_url": "ftp://h/v1"}),
            json!({"base_url": "http://"}),
            json!({"base_url": "http:///v1"}),
            json!({"base_url": "http://h/v1?x=1"}),
            json!({"base_url": "http://h /v1"}),
            json!({"base_url": 5}),
            json!({"model": ""}),
            json!({"model": 3}),
            json!({"api_key_secret": 1}),
            json!({"api_key_secret": "a}}b"}),
            json!({"default_params": []}),
            json!({"extra_headers": {"bad header": "x"}}),
            json!({"extra_headers": {"x-a": 1}}),
            json!({"extra_headers": {"x-a": "a\r\nb"}}),
            json!([]),
        ] {
            let e = Config::from_value(&bad).unwrap_err();
            assert_eq!(e.class, ErrorClass::ClientError, "{bad}");
            assert!(e.message.starts_with("invalid openai plugin configuration: "));
        }
        assert!(Config::parse("{").is_err());
    }

    #[test]
    fn base_url_paths() {
        assert_eq!(validate_base_url("http://h:1/v1").unwrap(), ("http://h:1/v1".to_owned(), true));
        assert_eq!(validate_base_url("http://h:1").unwrap(), ("http://h:1".to_owned(), false));
        assert_eq!(validate_base_url("http://h:1/").unwrap(), ("http://h:1".to_owned(), false));
        assert_eq!(
            validate_base_url("https://openrouter.ai/api/v1/").unwrap(),
            ("https://openrouter.ai/api/v1".to_owned(), true)
        );
    }
}
