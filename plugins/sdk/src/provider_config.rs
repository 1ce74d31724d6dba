//! The configuration keys every HTTP provider plugin shares (`base_url`,
//! `model`, `api_key_secret`, `default_params`, `extra_headers`), parsed and
//! validated once, plus helpers for the keys a plugin adds.
//!
//! Unknown keys are an error naming the key, so typos are never silent.

use crate::text::json_kind;
use crate::{StrategyError, secret_placeholder};
use serde_json::{Map, Value};

/// The shared keys, in the order error messages list them.
pub const COMMON_KEYS: [&str; 5] = ["base_url", "model", "api_key_secret", "default_params", "extra_headers"];

/// A plugin's defaults for the shared keys.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// The plugin's name, used in error messages (`invalid <name> plugin configuration: ...`).
    pub plugin: &'static str,
    /// The default `base_url`.
    pub base_url: &'static str,
    /// The default `model`.
    pub model: &'static str,
}

/// The validated shared keys.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonConfig {
    /// Absolute http(s) URL without a trailing slash.
    pub base_url: String,
    /// Whether `base_url` has a path (e.g. `/v1`): under the OpenAI rule
    /// ([`CommonConfig::url`]) it then already names the API version, and a
    /// plugin appends its endpoints without theirs.
    pub base_has_path: bool,
    /// The model used when a job names none.
    pub model: String,
    /// The secret named in the API-key header; `None` sends no key.
    pub api_key_secret: Option<String>,
    /// Parameters merged under each job's params.
    pub default_params: Map<String, Value>,
    /// Headers added to (or replacing) the plugin's own.
    pub extra_headers: Vec<(String, String)>,
}

impl CommonConfig {
    /// The shared keys of `obj`, with `defaults`. Keys that are neither
    /// shared nor in `extra_keys` are an error.
    pub fn from_object(
        obj: &Map<String, Value>,
        defaults: Defaults,
        extra_keys: &[&str],
    ) -> Result<CommonConfig, StrategyError> {
        let invalid = |m: String| invalid(defaults.plugin, m);
        if let Some(key) = obj.keys().find(|k| !COMMON_KEYS.contains(&k.as_str()) && !extra_keys.contains(&k.as_str()))
        {
            let known: Vec<&str> = COMMON_KEYS.iter().chain(extra_keys).copied().collect();
            return Err(invalid(format!("unknown key {key:?} (known keys: {})", known.join(", "))));
        }
        let (base_url, base_has_path) = match obj.get("base_url").filter(|v| !v.is_null()) {
            None => validate_base_url(defaults.base_url).map_err(invalid)?,
            Some(Value::String(url)) => validate_base_url(url).map_err(invalid)?,
            Some(v) => return Err(invalid(format!("base_url must be a string, got {}", json_kind(v)))),
        };
        let model = match obj.get("model").filter(|v| !v.is_null()) {
            None => defaults.model.to_owned(),
            Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
            Some(_) => return Err(invalid("model must be a non-empty string".to_owned())),
        };
        let api_key_secret = match obj.get("api_key_secret") {
            None => Some("api-key".to_owned()),
            Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) if s.chars().any(|c| c.is_whitespace() || c == '{' || c == '}') => {
                return Err(invalid(format!("api_key_secret {s:?} must not contain whitespace or braces")));
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => return Err(invalid(format!("api_key_secret must be a string or null, got {}", json_kind(v)))),
        };
        let default_params = match obj.get("default_params").filter(|v| !v.is_null()) {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(v) => return Err(invalid(format!("default_params must be an object, got {}", json_kind(v)))),
        };
        let extra_headers = match obj.get("extra_headers").filter(|v| !v.is_null()) {
            None => Vec::new(),
            Some(Value::Object(headers)) => parse_headers(headers).map_err(invalid)?,
            Some(v) => return Err(invalid(format!("extra_headers must be an object, got {}", json_kind(v)))),
        };
        Ok(CommonConfig { base_url, base_has_path, model, api_key_secret, default_params, extra_headers })
    }

    /// `base_url` plus `path` the way the OpenAI SDKs join them: a base with
    /// a path already names the API version (`http://h:1/v1`,
    /// `https://openrouter.ai/api/v1`), so the first segment of `path` (e.g.
    /// `/v1`) is dropped; a bare origin gets `path` whole.
    pub fn url(&self, path: &str) -> String {
        // `concat` rather than `format!`: one exact allocation, and this
        // runs for every request.
        if self.base_has_path { [&self.base_url, without_version(path)].concat() } else { self.prefix_url(path) }
    }

    /// `base_url` plus `path` the way the Anthropic and Google SDKs join
    /// them: the base is a prefix and `path` is appended whole, version
    /// included (`https://gateway.example/anthropic` + `/v1/messages`), so a
    /// gateway or proxy path (Cloudflare AI Gateway, LiteLLM, a mock) works
    /// as it does with those SDKs.
    ///
    /// One exception keeps the configurations these plugins always accepted:
    /// a base whose last path segment is itself an API version (`/v1`,
    /// `/v1beta`, `/v1alpha`, `/v2`) names the version, which replaces the
    /// first segment of `path` (`http://h:1/v1` + `/v1beta/models/m` →
    /// `http://h:1/v1/models/m`) instead of doubling it.
    pub fn prefix_url(&self, path: &str) -> String {
        if self.base_path().rsplit('/').next().is_some_and(is_version_segment) {
            [&self.base_url, without_version(path)].concat()
        } else {
            [&self.base_url, path].concat()
        }
    }

    /// The path of `base_url` (`""` for a bare origin).
    fn base_path(&self) -> &str {
        let rest = self.base_url.split_once("://").map_or(self.base_url.as_str(), |(_, rest)| rest);
        rest.find('/').map_or("", |i| &rest[i..])
    }

    /// Request headers: `content-type: application/json`, `key_header` set
    /// to `prefix` + the secret placeholder (unless `api_key_secret` is
    /// unset), then `fixed` headers, then `extra_headers`, each replacing a
    /// header of the same name.
    pub fn headers(&self, key_header: &str, prefix: &str, fixed: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(secret) = &self.api_key_secret {
            headers.push((key_header.to_owned(), [prefix, &secret_placeholder(secret)].concat()));
        }
        let extra = self.extra_headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        for (name, value) in fixed.iter().copied().chain(extra) {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.push((name.to_owned(), value.to_owned()));
        }
        headers
    }
}

/// The configuration document as an object, the shape every plugin's
/// configuration has; anything else is an `invalid <plugin> plugin
/// configuration: expected a JSON object, got …` client error.
pub fn object<'a>(value: &'a Value, plugin: &str) -> Result<&'a Map<String, Value>, StrategyError> {
    value.as_object().ok_or_else(|| invalid(plugin, format!("expected a JSON object, got {}", json_kind(value))))
}

/// A `client-error` for a bad configuration of `plugin`.
pub fn invalid(plugin: &str, message: impl std::fmt::Display) -> StrategyError {
    StrategyError::client_error(format!("invalid {plugin} plugin configuration: {message}"))
}

/// Checks that `url` is an absolute http(s) URL with a host and no query or
/// fragment; returns it without trailing slashes, and whether it has a path.
pub fn validate_base_url(url: &str) -> Result<(String, bool), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("base_url {url:?} must be an absolute http:// or https:// URL"))?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("base_url {url:?} must not contain whitespace"));
    }
    if url.contains(['?', '#']) {
        return Err(format!("base_url {url:?} must not have a query or fragment"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("base_url {url:?} has no host"));
    }
    Ok((url.trim_end_matches('/').to_owned(), !path.trim_matches('/').is_empty()))
}

/// `path` without its first segment (`/v1/messages` → `/messages`).
fn without_version(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    rest.find('/').map_or("", |i| &rest[i..])
}

/// An API version as providers spell it in paths: `v` and a number,
/// optionally followed by `alpha` or `beta` and a number (`v1`, `v1beta`,
/// `v1beta3`, `v2alpha`).
pub fn is_version_segment(segment: &str) -> bool {
    let Some(rest) = segment.strip_prefix('v') else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let tail = &rest[digits..];
    let tail = tail.strip_prefix("alpha").or_else(|| tail.strip_prefix("beta")).unwrap_or(tail);
    tail.bytes().all(|b| b.is_ascii_digit())
}

/// Validates an `extra_headers` object: RFC 9110 names, string values
/// without line breaks.
fn parse_headers(headers: &Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        if !is_header_name(name) {
            return Err(format!("extra_headers: {name:?} is not a valid header name"));
        }
        let Some(value) = value.as_str() else {
            return Err(format!("extra_headers.{name} must be a string, got {}", json_kind(value)));
        };
        if value.contains(['\r', '\n']) {
            return Err(format!("extra_headers.{name} must not contain line breaks"));
        }
        out.push((name.clone(), value.to_owned()));
    }
    Ok(out)
}

/// An RFC 9110 token.
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A non-negative number of seconds from `obj[key]` (integer or fraction),
/// or `default` when absent or `null`.
pub fn seconds(obj: &Map<String, Value>, key: &str, default: f64, plugin: &str) -> Result<f64, StrategyError> {
    match obj.get(key).filter(|v| !v.is_null()) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
            .ok_or_else(|| invalid(plugin, format!("{key} must be a non-negative number of seconds"))),
    }
}

/// A boolean from `obj[key]`, or `default` when absent or `null`.
pub fn boolean(obj: &Map<String, Value>, key: &str, default: bool, plugin: &str) -> Result<bool, StrategyError> {
    match obj.get(key).filter(|v| !v.is_null()) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(invalid(plugin, format!("{key} must be true or false, got {}", json_kind(v)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use serde_json::json;

    const DEFAULTS: Defaults = Defaults { plugin: "demo", base_url: "https://api.example.com", model: "m1" };

    fn parse(value: Value) -> Result<CommonConfig, StrategyError> {
        CommonConfig::from_object(value.as_object().unwrap(), DEFAULTS, &["cache"])
    }

    #[test]
    fn defaults_and_overrides() {
        let c = parse(json!({})).unwrap();
        assert_eq!(c.base_url, "https://api.example.com");
        assert!(!c.base_has_path);
        assert_eq!(c.model, "m1");
        assert_eq!(c.api_key_secret.as_deref(), Some("api-key"));
        let c = parse(json!({"base_url": "http://127.0.0.1:9/v1/", "model": "m2", "api_key_secret": null,
            "default_params": {"a": 1}, "extra_headers": {"x-a": "b"}, "cache": {}}))
        .unwrap();
        assert_eq!((c.base_url.as_str(), c.base_has_path), ("http://127.0.0.1:9/v1", true));
        assert_eq!(c.api_key_secret, None);
        assert_eq!(c.default_params["a"], 1);
        assert_eq!(c.extra_headers, [("x-a".to_owned(), "b".to_owned())]);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse(json!({"modle": "x"})).unwrap_err();
        assert_eq!(e.class, ErrorClass::ClientError);
        assert!(e.message.starts_with("invalid demo plugin configuration: unknown key \"modle\""), "{}", e.message);
        assert!(e.message.contains("cache"), "{}", e.message);
        for bad in [
            json!({"base_url": "ftp://x"}),
            json!({"base_url": "http://h/?q"}),
            json!({"base_url": 3}),
            json!({"model": ""}),
            json!({"api_key_secret": "a b"}),
            json!({"api_key_secret": 1}),
            json!({"default_params": []}),
            json!({"extra_headers": {"bad name": "x"}}),
            json!({"extra_headers": {"x": "a\nb"}}),
            json!({"extra_headers": []}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_drop_the_version_of_a_base_with_a_path() {
        let bare = parse(json!({"base_url": "http://h:1"})).unwrap();
        assert_eq!(bare.url("/v1/messages"), "http://h:1/v1/messages");
        let versioned = parse(json!({"base_url": "http://h:1/v1"})).unwrap();
        assert_eq!(versioned.url("/v1/messages"), "http://h:1/v1/messages");
        assert_eq!(versioned.url("/v1beta/models/g:generateContent"), "http://h:1/v1/models/g:generateContent");
        let gateway = parse(json!({"base_url": "https://gw.example/openai"})).unwrap();
        assert_eq!(gateway.url("/v1/chat/completions"), "https://gw.example/openai/chat/completions");
    }

    #[test]
    fn prefix_urls_append_the_whole_path_like_the_anthropic_and_google_sdks() {
        let url = |base: &str, path: &str| parse(json!({ "base_url": base })).unwrap().prefix_url(path);
        // A gateway or proxy prefix: the SDK path goes after it, version included.
        assert_eq!(url("https://gw.example/anthropic", "/v1/messages"), "https://gw.example/anthropic/v1/messages");
        assert_eq!(
            url("http://127.0.0.1:8000/gemini/", "/v1beta/models/m"),
            "http://127.0.0.1:8000/gemini/v1beta/models/m"
        );
        assert_eq!(
            url("https://gateway.ai.cloudflare.com/v1/acct/gw/anthropic", "/v1/messages"),
            "https://gateway.ai.cloudflare.com/v1/acct/gw/anthropic/v1/messages"
        );
        assert_eq!(url("http://h:1", "/v1/messages"), "http://h:1/v1/messages");
        // A base ending in a version names it (configurations written for the older rule).
        assert_eq!(url("http://h:1/v1", "/v1/messages"), "http://h:1/v1/messages");
        assert_eq!(url("http://h:1/v1/", "/v1beta/models/m"), "http://h:1/v1/models/m");
        assert_eq!(
            url("https://gw.example/google/v1alpha", "/v1beta/models/m"),
            "https://gw.example/google/v1alpha/models/m"
        );
        // Only the last segment counts, and only a real version.
        assert_eq!(
            url("https://gw.example/v1/anthropic", "/v1/messages"),
            "https://gw.example/v1/anthropic/v1/messages"
        );
        assert_eq!(url("https://gw.example/vertex", "/v1/messages"), "https://gw.example/vertex/v1/messages");
    }

    #[test]
    fn version_segments() {
        for yes in ["v1", "v2", "v1beta", "v1alpha", "v1beta3", "v10"] {
            assert!(is_version_segment(yes), "{yes}");
        }
        for no in ["", "v", "vertex", "v1x", "1", "V1", "v1-beta", "api", "v1beta-x"] {
            assert!(!is_version_segment(no), "{no}");
        }
    }

    #[test]
    fn headers_replace_by_name() {
        let c = parse(json!({"extra_headers": {"Anthropic-Version": "2099-01-01"}})).unwrap();
        let h = c.headers("x-api-key", "", &[("anthropic-version", "2023-06-01")]);
        assert_eq!(
            h,
            [
                ("content-type".to_owned(), "application/json".to_owned()),
                ("x-api-key".to_owned(), "{{secret:api-key}}".to_owned()),
                ("Anthropic-Version".to_owned(), "2099-01-01".to_owned()),
            ]
        );
        let none = parse(json!({"api_key_secret": ""})).unwrap();
        assert_eq!(none.headers("authorization", "Bearer ", &[]).len(), 1);
    }

    #[test]
    fn configurations_are_objects() {
        assert_eq!(object(&json!({"a": 1}), "demo").unwrap().len(), 1);
        let e = object(&json!([1]), "demo").unwrap_err();
        assert_eq!(e.class, ErrorClass::ClientError);
        assert_eq!(e.message, "invalid demo plugin configuration: expected a JSON object, got an array");
    }

    #[test]
    fn number_and_bool_helpers() {
        let obj = json!({"ttl": 1.5, "neg": -1, "keep": true, "s": "x"});
        let obj = obj.as_object().unwrap();
        assert_eq!(seconds(obj, "ttl", 9.0, "p").unwrap(), 1.5);
        assert_eq!(seconds(obj, "none", 9.0, "p").unwrap(), 9.0);
        assert!(seconds(obj, "neg", 9.0, "p").is_err());
        assert!(seconds(obj, "s", 9.0, "p").is_err());
        assert!(boolean(obj, "keep", false, "p").unwrap());
        assert!(!boolean(obj, "none", false, "p").unwrap());
        assert!(boolean(obj, "s", false, "p").is_err());
    }
}
