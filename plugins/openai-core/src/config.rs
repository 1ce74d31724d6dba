//! The plugin configuration: parsing and validation.

use batchllm_plugin_sdk::text::json_kind;
use batchllm_plugin_sdk::{StrategyError, serde_json};
use serde_json::{Map, Value};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
pub const DEFAULT_API_KEY_SECRET: &str = "api-key";

const KNOWN_KEYS: [&str; 5] = ["base_url", "model", "api_key_secret", "default_params", "extra_headers"];

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Absolute http(s) URL without a trailing slash.
    pub base_url: String,
    /// Whether `base_url` has a path (e.g. `/v1`, `/api/v1`), in which case
    /// endpoints are appended without their `/v1` prefix.
    pub base_has_path: bool,
    pub model: String,
    /// The secret named in the `authorization` header; `None` sends none.
    pub api_key_secret: Option<String>,
    pub default_params: Map<String, Value>,
    pub extra_headers: Vec<(String, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            base_url: DEFAULT_BASE_URL.to_owned(),
            base_has_path: true,
            model: DEFAULT_MODEL.to_owned(),
            api_key_secret: Some(DEFAULT_API_KEY_SECRET.to_owned()),
            default_params: Map::new(),
            extra_headers: Vec::new(),
        }
    }
}

fn invalid(message: impl std::fmt::Display) -> StrategyError {
    StrategyError::client_error(format!("invalid openai plugin configuration: {message}"))
}

impl Config {
    /// Parses and validates the configuration document (a JSON object; empty
    /// text or `null` means all defaults).
    pub fn parse(text: &str) -> Result<Config, StrategyError> {
        let value = batchllm_plugin_sdk::parse_config(text)?;
        Self::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<Config, StrategyError> {
        let Some(obj) = value.as_object() else {
            return Err(invalid(format_args!("expected a JSON object, got {}", json_kind(value))));
        };
        if let Some(key) = obj.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(invalid(format_args!("unknown key {key:?} (known keys: {})", KNOWN_KEYS.join(", "))));
        }
        let mut config = Config::default();

        if let Some(v) = obj.get("base_url").filter(|v| !v.is_null()) {
            let url =
                v.as_str().ok_or_else(|| invalid(format_args!("base_url must be a string, got {}", json_kind(v))))?;
            let (base, has_path) = validate_base_url(url).map_err(invalid)?;
            config.base_url = base;
            config.base_has_path = has_path;
        }

        if let Some(v) = obj.get("model").filter(|v| !v.is_null()) {
            match v.as_str() {
                Some(m) if !m.trim().is_empty() => config.model = m.to_owned(),
                _ => return Err(invalid("model must be a non-empty string")),
            }
        }

        if let Some(v) = obj.get("api_key_secret") {
            config.api_key_secret = match v {
                Value::Null => None,
                Value::String(s) if s.is_empty() => None,
                Value::String(s) => {
                    if s.chars().any(|c| c.is_whitespace() || c == '{' || c == '}') {
                        return Err(invalid(format_args!(
                            "api_key_secret {s:?} must not contain whitespace or braces"
                        )));
                    }
                    Some(s.clone())
                }
                other => {
                    return Err(invalid(format_args!(
                        "api_key_secret must be a string or null, got {}",
                        json_kind(other)
                    )));
                }
            };
        }

        if let Some(v) = obj.get("default_params").filter(|v| !v.is_null()) {
            config.default_params = v
                .as_object()
                .ok_or_else(|| invalid(format_args!("default_params must be an object, got {}", json_kind(v))))?
                .clone();
        }

        if let Some(v) = obj.get("extra_headers").filter(|v| !v.is_null()) {
            let headers = v
                .as_object()
                .ok_or_else(|| invalid(format_args!("extra_headers must be an object, got {}", json_kind(v))))?;
            for (name, value) in headers {
                if !is_header_name(name) {
                    return Err(invalid(format_args!("extra_headers: {name:?} is not a valid header name")));
                }
                let Some(value) = value.as_str() else {
                    return Err(invalid(format_args!(
                        "extra_headers.{name} must be a string, got {}",
                        json_kind(value)
                    )));
                };
                if value.contains(['\r', '\n']) {
                    return Err(invalid(format_args!("extra_headers.{name} must not contain line breaks")));
                }
                config.extra_headers.push((name.clone(), value.to_owned()));
            }
        }
        Ok(config)
    }
}

/// Shared with the other provider strategies.
pub use batchllm_plugin_sdk::provider_config::validate_base_url;

/// An RFC 9110 token.
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

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
