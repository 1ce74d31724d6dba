//! The plugin configuration: the shared provider keys with Gemini defaults,
//! plus the optional explicit context `cache`.

use batchllm_plugin_sdk::StrategyError;
use batchllm_plugin_sdk::provider_config::{self, CommonConfig, Defaults, invalid};
use batchllm_plugin_sdk::serde_json::{Map, Value, json};
use batchllm_plugin_sdk::text::json_kind;

/// The defaults of the shared keys.
pub const DEFAULTS: Defaults =
    Defaults { plugin: "gemini", base_url: "https://generativelanguage.googleapis.com", model: "gemini-2.5-flash" };

/// The keys of the `cache` object.
const CACHE_KEYS: [&str; 7] =
    ["contents", "system_instruction", "tools", "ttl_seconds", "renew_before_seconds", "keep", "display_name"];

/// Default cache lifetime: one hour, as the API's own default.
pub const DEFAULT_TTL_SECONDS: f64 = 3600.0;

/// Default renewal margin: renew when less than five minutes are left.
pub const DEFAULT_RENEW_BEFORE_SECONDS: f64 = 300.0;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `base_url`, `model`, `api_key_secret`, `default_params`, `extra_headers`.
    pub common: CommonConfig,
    /// The explicit context cache created in `prepare`, when configured.
    pub cache: Option<CacheConfig>,
}

/// `cache`: content cached once for the whole run and referenced by every
/// request.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// `contents` (a `Content` list; a string is one user turn).
    pub contents: Option<Value>,
    /// `systemInstruction` (a `Content`; a string is one text part).
    pub system_instruction: Option<Value>,
    /// `tools`, passed through.
    pub tools: Option<Value>,
    /// The cache's time to live, set at creation and at every renewal.
    pub ttl_seconds: f64,
    /// Renew when the cache expires within this many seconds.
    pub renew_before_seconds: f64,
    /// Leave the cache in place at the end of the run (default: delete it).
    pub keep: bool,
    /// `displayName`, when given.
    pub display_name: Option<String>,
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
        let mut common = CommonConfig::from_object(obj, DEFAULTS, &["cache"])?;
        common.model = bare_model(&common.model).to_owned();
        let cache = match obj.get("cache").filter(|v| !v.is_null()) {
            None => None,
            Some(Value::Object(cache)) => Some(CacheConfig::from_object(cache)?),
            Some(v) => return Err(bad(format!("cache must be an object, got {}", json_kind(v)))),
        };
        Ok(Config { common, cache })
    }
}

impl CacheConfig {
    fn from_object(obj: &Map<String, Value>) -> Result<CacheConfig, StrategyError> {
        if let Some(key) = obj.keys().find(|k| !CACHE_KEYS.contains(&k.as_str())) {
            return Err(bad(format!("unknown key cache.{key} (known keys: {})", CACHE_KEYS.join(", "))));
        }
        let contents = match obj.get("contents").filter(|v| !v.is_null()) {
            None => None,
            Some(Value::String(text)) => Some(json!([{"role": "user", "parts": [{"text": text}]}])),
            Some(list @ Value::Array(_)) => Some(list.clone()),
            Some(v) => return Err(bad(format!("cache.contents must be an array or a string, got {}", json_kind(v)))),
        };
        let system_instruction = match obj.get("system_instruction").filter(|v| !v.is_null()) {
            None => None,
            Some(Value::String(text)) => Some(json!({"parts": [{"text": text}]})),
            Some(content @ Value::Object(_)) => Some(content.clone()),
            Some(v) => {
                return Err(bad(format!(
                    "cache.system_instruction must be an object or a string, got {}",
                    json_kind(v)
                )));
            }
        };
        if contents.is_none() && system_instruction.is_none() {
            return Err(bad("cache needs contents or system_instruction"));
        }
        let plugin = DEFAULTS.plugin;
        let ttl_seconds = provider_config::seconds(obj, "ttl_seconds", DEFAULT_TTL_SECONDS, plugin)?;
        let renew_before_seconds =
            provider_config::seconds(obj, "renew_before_seconds", DEFAULT_RENEW_BEFORE_SECONDS, plugin)?;
        if ttl_seconds <= 0.0 || renew_before_seconds >= ttl_seconds {
            return Err(bad(format!(
                "cache.renew_before_seconds ({renew_before_seconds}) must be below cache.ttl_seconds ({ttl_seconds}), \
                 which must be positive"
            )));
        }
        let display_name = match obj.get("display_name").filter(|v| !v.is_null()) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => return Err(bad(format!("cache.display_name must be a string, got {}", json_kind(v)))),
        };
        Ok(CacheConfig {
            contents,
            system_instruction,
            tools: obj.get("tools").filter(|v| !v.is_null()).cloned(),
            ttl_seconds,
            renew_before_seconds,
            keep: provider_config::boolean(obj, "keep", false, plugin)?,
            display_name,
        })
    }

    /// The renewal margin in milliseconds.
    pub fn renew_before_ms(&self) -> i64 {
        // Bounded by validation (< 1e9 s), so the cast cannot overflow.
        (self.renew_before_seconds * 1000.0).round() as i64
    }
}

/// A model name without its `models/` prefix.
pub fn bare_model(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}

fn bad(message: impl std::fmt::Display) -> StrategyError {
    invalid(DEFAULTS.plugin, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use batchllm_plugin_sdk::ErrorClass;

    #[test]
    fn defaults_without_cache() {
        let c = Config::parse("{}").unwrap();
        assert_eq!(c.common.base_url, "https://generativelanguage.googleapis.com");
        assert_eq!(c.common.model, "gemini-2.5-flash");
        assert_eq!(c.cache, None);
        let c = Config::from_value(&json!({"model": "models/gemini-x"})).unwrap();
        assert_eq!(c.common.model, "gemini-x");
    }

    #[test]
    fn cache_settings() {
        let c = Config::from_value(&json!({"cache": {"contents": "A long document", "system_instruction": "Be brief.",
            "ttl_seconds": 2, "renew_before_seconds": 1.5, "keep": true, "display_name": "run"}}))
        .unwrap();
        let cache = c.cache.unwrap();
        assert_eq!(cache.contents, Some(json!([{"role": "user", "parts": [{"text": "A long document"}]}])));
        assert_eq!(cache.system_instruction, Some(json!({"parts": [{"text": "Be brief."}]})));
        assert_eq!((cache.ttl_seconds, cache.renew_before_ms(), cache.keep), (2.0, 1500, true));
        let c = Config::from_value(&json!({"cache": {"system_instruction": {"parts": [{"text": "s"}]}}})).unwrap();
        let cache = c.cache.unwrap();
        assert_eq!((cache.ttl_seconds, cache.renew_before_seconds, cache.keep), (3600.0, 300.0, false));
    }

    #[test]
    fn bad_cache_settings_are_client_errors() {
        for bad in [
            json!({"cache": 1}),
            json!({"cache": {}}),
            json!({"cache": {"contents": 5}}),
            json!({"cache": {"system_instruction": [1]}}),
            json!({"cache": {"contents": "x", "ttl": 5}}),
            json!({"cache": {"contents": "x", "ttl_seconds": 10, "renew_before_seconds": 10}}),
            json!({"cache": {"contents": "x", "ttl_seconds": 0, "renew_before_seconds": 0}}),
            json!({"cache": {"contents": "x", "keep": "yes"}}),
            json!({"cache": {"contents": "x", "display_name": 1}}),
            json!({"cachee": {}}),
        ] {
            let e = Config::from_value(&bad).unwrap_err();
            assert_eq!(e.class, ErrorClass::ClientError, "{bad}");
            assert!(e.message.starts_with("invalid gemini plugin configuration: "), "{}", e.message);
        }
    }
}
