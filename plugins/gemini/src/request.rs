//! Building the `generateContent` request: URL, body and headers.

use crate::config::{Config, bare_model};
use batchllm_plugin_sdk::http::{self, Request};
use batchllm_plugin_sdk::serde_json::{Map, Value, json};
use batchllm_plugin_sdk::text::json_kind;
use batchllm_plugin_sdk::{Item, StateEntry, StrategyError, body, state};

/// The API version of the default paths (a `base_url` with a path replaces it).
pub const API_VERSION_PATH: &str = "/v1beta";

/// Checks the item's endpoint: none, or one naming `generateContent`.
pub fn check_endpoint(endpoint: Option<&str>) -> Result<(), StrategyError> {
    match endpoint {
        None => Ok(()),
        Some(raw) if raw.trim().is_empty() || raw.trim_end_matches('/').ends_with(":generateContent") => Ok(()),
        Some(raw) => Err(StrategyError::client_error(format!(
            "unsupported endpoint {raw:?}: the gemini strategy supports models/{{model}}:generateContent"
        ))),
    }
}

/// The request body and model for `item`: `default_params`, the item's
/// params over them (shallow), the retry-state `param.*` overrides, then the
/// prompt as a user turn (the only one without `contents`, appended with
/// them) and `cachedContent` when a cache is in use. A `model` field names
/// the model (it is not part of a Gemini body, so it is taken out).
pub fn build_body(
    config: &Config,
    item: &Item,
    state: &[StateEntry],
    cached_content: Option<&str>,
) -> Result<(String, Map<String, Value>), StrategyError> {
    let mut body = body::merge_params(&config.common.default_params, item)?;
    state::apply_param_overrides(&mut body, state);
    let model = match body.remove("model") {
        None | Some(Value::Null) => config.common.model.clone(),
        Some(Value::String(m)) if !m.trim().is_empty() => bare_model(&m).to_owned(),
        Some(other) => {
            return Err(StrategyError::client_error(format!(
                "item {:?}: model must be a non-empty string, got {}",
                item.id,
                json_kind(&other)
            )));
        }
    };
    body::add_prompt_turn(&mut body, item, "contents", || json!({"role": "user", "parts": [{"text": item.prompt}]}))?;
    if let Some(name) = cached_content {
        body::set_default(&mut body, "cachedContent", name);
    }
    Ok((model, body))
}

/// The request headers: `x-goog-api-key` with the secret placeholder, then
/// `extra_headers`.
pub fn headers(config: &Config) -> Vec<(String, String)> {
    config.common.headers("x-goog-api-key", "", &[])
}

/// `base_url` + `/v1beta` + `path`, as Google's SDK joins them (a gateway
/// base such as `https://gw.example/gemini` is a prefix); a base ending in a
/// version (`http://h/v1`) uses that version instead of `/v1beta`.
pub fn url(config: &Config, path: &str) -> String {
    config.common.prefix_url(&format!("{API_VERSION_PATH}{path}"))
}

/// The complete request for one attempt.
pub fn build_request(
    config: &Config,
    item: &Item,
    state: &[StateEntry],
    cached_content: Option<&str>,
    timeout_ms: u64,
) -> Result<Request, StrategyError> {
    check_endpoint(item.endpoint.as_deref())?;
    let (model, body) = build_body(config, item, state, cached_content)?;
    let url = url(config, &format!("/models/{model}:generateContent"));
    Ok(http::json_request("POST", &url, &headers(config), &Value::Object(body), Some(timeout_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use batchllm_plugin_sdk::ErrorClass;

    fn config(value: Value) -> Config {
        Config::from_value(&value).unwrap()
    }

    fn item(prompt: &str, params: &str) -> Item {
        Item { id: "a".into(), prompt: prompt.into(), params: params.into(), context: None, endpoint: None }
    }

    #[test]
    fn prompt_only_body() {
        let (model, body) = build_body(&config(json!({})), &item("Hi", "{}"), &[], None).unwrap();
        assert_eq!(model, "gemini-2.5-flash");
        assert_eq!(Value::Object(body), json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}));
    }

    #[test]
    fn params_model_overrides_and_cache() {
        let c = config(json!({"default_params": {"generationConfig": {"temperature": 0}}}));
        let params = r#"{"model": "models/gemini-pro", "contents": [{"role": "user", "parts": [{"text": "Q1"}]}],
            "systemInstruction": {"parts": [{"text": "s"}]}}"#;
        let state = vec![("param.generationConfig".to_owned(), r#"{"temperature": 1}"#.to_owned())];
        let (model, body) = build_body(&c, &item("Q2", params), &state, Some("cachedContents/abc")).unwrap();
        assert_eq!(model, "gemini-pro");
        assert_eq!(body["contents"].as_array().map(Vec::len), Some(2));
        assert_eq!(body["generationConfig"], json!({"temperature": 1}));
        assert_eq!(body["cachedContent"], "cachedContents/abc");
        assert!(body.get("model").is_none());
        let state = vec![("param.model".to_owned(), "gemini-flash-lite".to_owned())];
        let (model, _) = build_body(&c, &item("Q", "{}"), &state, None).unwrap();
        assert_eq!(model, "gemini-flash-lite");
    }

    #[test]
    fn bad_items_are_client_errors() {
        let c = config(json!({}));
        for (prompt, params) in [("", "{}"), ("x", r#"{"contents": "x"}"#), ("x", r#"{"model": 3}"#), ("x", "[]")] {
            let e = build_body(&c, &item(prompt, params), &[], None).unwrap_err();
            assert_eq!(e.class, ErrorClass::ClientError, "{params}");
        }
        assert!(check_endpoint(Some("/v1beta/models/gemini-2.5-flash:generateContent")).is_ok());
        assert!(check_endpoint(Some("/v1/chat/completions")).is_err());
    }

    #[test]
    fn urls_and_headers() {
        let r = build_request(&config(json!({})), &item("Hi", "{}"), &[], None, 10).unwrap();
        assert_eq!(r.url, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent");
        assert_eq!(batchllm_plugin_sdk::http::header(&r.headers, "x-goog-api-key"), Some("{{secret:api-key}}"));
        let c = config(json!({"base_url": "http://127.0.0.1:9/v1"}));
        assert_eq!(url(&c, "/cachedContents"), "http://127.0.0.1:9/v1/cachedContents");
        let c = config(json!({"base_url": "http://127.0.0.1:9"}));
        assert_eq!(url(&c, "/cachedContents/x"), "http://127.0.0.1:9/v1beta/cachedContents/x");
        // Like Google's SDK: a gateway base is a prefix to the versioned path.
        let c = config(json!({"base_url": "https://gateway.example/gemini"}));
        assert_eq!(
            build_request(&c, &item("Hi", "{}"), &[], None, 10).unwrap().url,
            "https://gateway.example/gemini/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(url(&c, "/cachedContents"), "https://gateway.example/gemini/v1beta/cachedContents");
        let c = config(json!({"base_url": "https://gateway.example/google/v1alpha/"}));
        assert_eq!(url(&c, "/cachedContents"), "https://gateway.example/google/v1alpha/cachedContents");
    }
}
