//! Building the Messages API request: URL, body and headers.

use crate::config::{ANTHROPIC_VERSION, Config, DEFAULT_MAX_TOKENS};
use batchllm_plugin_sdk::http::{self, Request};
use batchllm_plugin_sdk::serde_json::{Map, Value};
use batchllm_plugin_sdk::{Item, StateEntry, StrategyError, body, state};

/// The one endpoint this strategy speaks.
pub const MESSAGES_PATH: &str = "/v1/messages";

/// Checks the item's endpoint: none, `/v1/messages` or `/messages`.
pub fn check_endpoint(endpoint: Option<&str>) -> Result<(), StrategyError> {
    let Some(raw) = endpoint else { return Ok(()) };
    let path = raw.trim().trim_end_matches('/');
    if matches!(path, "" | "/v1/messages" | "v1/messages" | "/messages" | "messages") {
        Ok(())
    } else {
        Err(StrategyError::client_error(format!(
            "unsupported endpoint {raw:?}: the anthropic strategy supports /v1/messages"
        )))
    }
}

/// The request body for `item`: `default_params`, the item's params over
/// them (shallow), `model` and `max_tokens` when missing, the prompt as a
/// user message (the only one without `messages`, appended with them), then
/// the retry-state `param.*` overrides.
pub fn build_body(config: &Config, item: &Item, state: &[StateEntry]) -> Result<Map<String, Value>, StrategyError> {
    let mut body = body::merge_params(&config.common.default_params, item)?;
    body::set_default(&mut body, "model", config.common.model.as_str());
    body::set_default(&mut body, "max_tokens", DEFAULT_MAX_TOKENS);
    body::add_prompt_message(&mut body, item)?;
    state::apply_param_overrides(&mut body, state);
    body::reject_streaming(&body, item)?;
    Ok(body)
}

/// The request headers: `x-api-key` with the secret placeholder,
/// `anthropic-version`, then `extra_headers`.
pub fn headers(config: &Config) -> Vec<(String, String)> {
    config.common.headers("x-api-key", "", &[("anthropic-version", ANTHROPIC_VERSION)])
}

/// The complete request for one attempt.
pub fn build_request(
    config: &Config,
    item: &Item,
    state: &[StateEntry],
    timeout_ms: u64,
) -> Result<Request, StrategyError> {
    check_endpoint(item.endpoint.as_deref())?;
    let body = Value::Object(build_body(config, item, state)?);
    Ok(http::json_request("POST", &config.common.prefix_url(MESSAGES_PATH), &headers(config), &body, Some(timeout_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use batchllm_plugin_sdk::ErrorClass;
    use batchllm_plugin_sdk::serde_json::json;

    fn config(value: Value) -> Config {
        Config::from_value(&value).unwrap()
    }

    fn item(prompt: &str, params: &str) -> Item {
        Item { id: "a".into(), prompt: prompt.into(), params: params.into(), context: None, endpoint: None }
    }

    #[test]
    fn prompt_only_body_has_defaults() {
        let body = build_body(&config(json!({})), &item("Hi", "{}"), &[]).unwrap();
        assert_eq!(
            Value::Object(body),
            json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hi"}]})
        );
    }

    #[test]
    fn params_system_and_overrides() {
        let c = config(json!({"default_params": {"temperature": 0.1, "max_tokens": 50}, "model": "claude-x"}));
        let params = r#"{"system": "Be brief.", "messages": [{"role": "user", "content": "Q1"}], "max_tokens": 7}"#;
        let state = vec![("param.temperature".to_owned(), "0.9".to_owned())];
        let body = build_body(&c, &item("Q2", params), &state).unwrap();
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["max_tokens"], 7);
        assert_eq!(body["temperature"], 0.9);
        assert_eq!(body["model"], "claude-x");
        assert_eq!(body["messages"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn bad_items_are_client_errors() {
        let c = config(json!({}));
        for (prompt, params) in [("", "{}"), ("x", r#"{"messages": {}}"#), ("x", r#"{"stream": true}"#), ("x", "[]")] {
            let e = build_body(&c, &item(prompt, params), &[]).unwrap_err();
            assert_eq!(e.class, ErrorClass::ClientError, "{params}");
        }
        assert!(check_endpoint(Some("/v1/messages")).is_ok());
        assert!(check_endpoint(Some("/v1/chat/completions")).is_err());
    }

    #[test]
    fn request_url_and_headers() {
        let r = build_request(&config(json!({})), &item("Hi", "{}"), &[], 5000).unwrap();
        assert_eq!(r.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(r.timeout_ms, Some(5000));
        let h = |name: &str| batchllm_plugin_sdk::http::header(&r.headers, name).map(str::to_owned);
        assert_eq!(h("x-api-key").as_deref(), Some("{{secret:api-key}}"));
        assert_eq!(h("anthropic-version").as_deref(), Some("2023-06-01"));
        assert!(h("authorization").is_none());
        let url =
            |base: &str| build_request(&config(json!({ "base_url": base })), &item("Hi", "{}"), &[], 1).unwrap().url;
        // Like the Anthropic SDK: the base is a prefix, `/v1/messages` goes after it.
        assert_eq!(url("http://127.0.0.1:9"), "http://127.0.0.1:9/v1/messages");
        assert_eq!(url("https://gateway.example/anthropic"), "https://gateway.example/anthropic/v1/messages");
        assert_eq!(url("http://127.0.0.1:8000/anthropic/"), "http://127.0.0.1:8000/anthropic/v1/messages");
        // A base that ends in the version (as configurations written for earlier releases do).
        assert_eq!(url("http://127.0.0.1:9/v1"), "http://127.0.0.1:9/v1/messages");
    }
}
