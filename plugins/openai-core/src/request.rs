//! Building the provider request: endpoint, URL, body and headers.

use crate::config::Config;
use batchllm_plugin_sdk::http::{self, Request};
use batchllm_plugin_sdk::{Item, StateEntry, StrategyError, body, serde_json, state};
use serde_json::{Map, Value};

/// The endpoints this strategy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Embeddings,
}

impl Endpoint {
    /// The endpoint an item targets: `/v1/chat/completions` when it names
    /// none. `/chat/completions` and `/embeddings` (no version) are accepted
    /// too; anything else is a `client-error` naming the endpoint.
    pub fn resolve(endpoint: Option<&str>) -> Result<Endpoint, StrategyError> {
        let Some(raw) = endpoint else {
            return Ok(Endpoint::ChatCompletions);
        };
        let path = raw.trim().trim_end_matches('/');
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_prefix("v1/").unwrap_or(path);
        match path {
            "" | "chat/completions" => Ok(Endpoint::ChatCompletions),
            "embeddings" => Ok(Endpoint::Embeddings),
            _ => Err(StrategyError::client_error(format!(
                "unsupported endpoint {raw:?}: the openai strategy supports \
                 /v1/chat/completions and /v1/embeddings"
            ))),
        }
    }

    /// The endpoint's path, with its `/v1` prefix.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Embeddings => "/v1/embeddings",
        }
    }
}

/// `base_url` joined with the endpoint path without doubling the version:
/// a base with a path (`http://h/v1`, `https://openrouter.ai/api/v1`,
/// `…/v1beta/openai`) already names the API version, so the endpoint is
/// appended without its `/v1` (as the OpenAI SDKs do); a bare origin
/// (`http://h:1`) gets the full `/v1/...` path.
pub fn join_url(config: &Config, endpoint: Endpoint) -> String {
    config.common.url(endpoint.path())
}

/// The request body for `item`: `default_params`, then the item's params
/// over them (a shallow merge), then the endpoint's defaults, then the
/// retry-state overrides.
///
/// Chat: `model` is set when missing; without `messages` the prompt becomes
/// the one user message; with `messages` a non-empty prompt is appended as a
/// user message. Embeddings: `model` is set when missing, `input` defaults to
/// the prompt.
pub fn build_body(
    config: &Config,
    item: &Item,
    endpoint: Endpoint,
    state: &[StateEntry],
) -> Result<Map<String, Value>, StrategyError> {
    let mut body = body::merge_params(&config.common.default_params, item)?;
    body::set_default(&mut body, "model", config.common.model.as_str());
    match endpoint {
        Endpoint::ChatCompletions => {
            body::add_prompt_message(&mut body, item)?;
        }
        Endpoint::Embeddings => {
            if body.get("input").is_none_or(Value::is_null) {
                if item.prompt.is_empty() {
                    return Err(StrategyError::client_error(format!(
                        "item {:?} has neither a prompt nor params.input",
                        item.id
                    )));
                }
                body.insert("input".to_owned(), Value::String(item.prompt.clone()));
            }
        }
    }
    state::apply_param_overrides(&mut body, state);
    body::reject_streaming(&body, item)?;
    Ok(body)
}

/// The request headers: `content-type`, `authorization` with the secret
/// placeholder (unless disabled), then `extra_headers`, which replace a
/// header of the same name.
pub fn headers(config: &Config) -> Vec<(String, String)> {
    config.common.headers("authorization", "Bearer ", &[])
}

/// The complete request for one attempt.
pub fn build_request(
    config: &Config,
    item: &Item,
    state: &[StateEntry],
    timeout_ms: u64,
) -> Result<(Endpoint, Request), StrategyError> {
    let endpoint = Endpoint::resolve(item.endpoint.as_deref())?;
    let body = Value::Object(build_body(config, item, endpoint, state)?);
    Ok((endpoint, http::json_request("POST", &join_url(config, endpoint), &headers(config), &body, Some(timeout_ms))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use batchllm_plugin_sdk::ErrorClass;
    use serde_json::json;

    fn config(value: Value) -> Config {
        Config::from_value(&value).unwrap()
    }

    fn item(prompt: &str, params: &str, endpoint: Option<&str>) -> Item {
        Item {
            id: "job-1".to_owned(),
            prompt: prompt.to_owned(),
            params: params.to_owned(),
            context: None,
            endpoint: endpoint.map(str::to_owned),
        }
    }

    fn state(pairs: &[(&str, &str)]) -> Vec<StateEntry> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn chat(c: &Config, i: &Item, s: &[StateEntry]) -> Value {
        Value::Object(build_body(c, i, Endpoint::ChatCompletions, s).unwrap())
    }

    #[test]
    fn url_joining() {
        let chat = Endpoint::ChatCompletions;
        let url = |base: &str, e| join_url(&config(json!({ "base_url": base })), e);
        assert_eq!(url("http://h:1/v1", chat), "http://h:1/v1/chat/completions");
        assert_eq!(url("http://h:1/v1/", chat), "http://h:1/v1/chat/completions");
        assert_eq!(url("http://h:1", chat), "http://h:1/v1/chat/completions");
        assert_eq!(url("http://h:1/", Endpoint::Embeddings), "http://h:1/v1/embeddings");
        assert_eq!(url("https://openrouter.ai/api/v1", chat), "https://openrouter.ai/api/v1/chat/completions");
        assert_eq!(
            url("https://generativelanguage.googleapis.com/v1beta/openai/", chat),
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"
        );
        assert_eq!(join_url(&Config::default(), Endpoint::Embeddings), "https://api.openai.com/v1/embeddings");
    }

    #[test]
    fn endpoint_resolution() {
        assert_eq!(Endpoint::resolve(None).unwrap(), Endpoint::ChatCompletions);
        assert_eq!(Endpoint::resolve(Some("/v1/chat/completions")).unwrap(), Endpoint::ChatCompletions);
        assert_eq!(Endpoint::resolve(Some("/v1/embeddings")).unwrap(), Endpoint::Embeddings);
        assert_eq!(Endpoint::resolve(Some("/embeddings/")).unwrap(), Endpoint::Embeddings);
        let e = Endpoint::resolve(Some("/v1/responses")).unwrap_err();
        assert_eq!(e.class, ErrorClass::ClientError);
        assert!(e.message.contains("\"/v1/responses\""), "{}", e.message);
    }

    #[test]
    fn prompt_only_chat_body() {
        let body = chat(&Config::default(), &item("Hi", "{}", None), &[]);
        assert_eq!(body, json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}));
    }

    #[test]
    fn params_merge_over_defaults() {
        let c = config(json!({
            "model": "m-default",
            "default_params": {"temperature": 0.2, "max_tokens": 10, "model": "from-defaults"}
        }));
        let body = chat(&c, &item("Hi", r#"{"temperature": 0.9}"#, None), &[]);
        assert_eq!(body["temperature"], 0.9);
        assert_eq!(body["max_tokens"], 10);
        assert_eq!(body["model"], "from-defaults");
        let c = config(json!({"model": "m-default"}));
        let body = chat(&c, &item("Hi", r#"{"model": "job-model"}"#, None), &[]);
        assert_eq!(body["model"], "job-model");
        let body = chat(&c, &item("Hi", r#"{"model": null}"#, None), &[]);
        assert_eq!(body["model"], "m-default");
    }

    #[test]
    fn batch_line_messages_and_prompt_append() {
        let params =
            r#"{"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Q1"}]}"#;
        let body = chat(&Config::default(), &item("", params, Some("/v1/chat/completions")), &[]);
        assert_eq!(body["messages"].as_array().unwrap().len(), 2);
        assert_eq!(body["model"], "gpt-4o");
        let body = chat(&Config::default(), &item("Q2", params, None), &[]);
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[2], json!({"role": "user", "content": "Q2"}));
    }

    #[test]
    fn bad_params_are_client_errors() {
        let c = Config::default();
        for (prompt, params) in [("Hi", "[1]"), ("Hi", "{"), ("Hi", r#"{"messages": "x"}"#), ("", "{}")] {
            let e = build_body(&c, &item(prompt, params, None), Endpoint::ChatCompletions, &[]).unwrap_err();
            assert_eq!(e.class, ErrorClass::ClientError, "{params}");
        }
        let e = build_body(&c, &item("Hi", r#"{"stream":true}"#, None), Endpoint::ChatCompletions, &[]).unwrap_err();
        assert!(e.message.contains("stream"));
    }

    #[test]
    fn state_overrides() {
        let s = state(&[
            ("param.temperature", "1.1"),
            ("param.model", "gpt-4o"),
            ("param.response_format", r#"{"type":"json_object"}"#),
            ("param.stop", "not json"),
            ("mock.failures", "3"),
            ("param.", "ignored"),
        ]);
        let body = chat(&Config::default(), &item("Hi", r#"{"temperature":0}"#, None), &s);
        assert_eq!(body["temperature"], 1.1);
        assert_eq!(body["model"], "gpt-4o");
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
        assert_eq!(body["stop"], "not json");
        assert!(body.get("failures").is_none());
        assert!(body.get("").is_none());
    }

    #[test]
    fn embeddings_body() {
        let c = config(json!({"model": "text-embedding-3-small", "default_params": {"dimensions": 8}}));
        let body = build_body(&c, &item("hello", "{}", Some("/v1/embeddings")), Endpoint::Embeddings, &[]).unwrap();
        assert_eq!(Value::Object(body), json!({"model": "text-embedding-3-small", "input": "hello", "dimensions": 8}));
        let body =
            build_body(&c, &item("", r#"{"input":["a","b"],"model":"e5"}"#, None), Endpoint::Embeddings, &[]).unwrap();
        assert_eq!(body["input"], json!(["a", "b"]));
        assert_eq!(body["model"], "e5");
        assert!(body.get("messages").is_none());
        assert!(build_body(&c, &item("", "{}", None), Endpoint::Embeddings, &[]).is_err());
    }

    #[test]
    fn headers_and_secrets() {
        let h = headers(&Config::default());
        assert_eq!(
            h,
            vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("authorization".to_owned(), "Bearer {{secret:api-key}}".to_owned()),
            ]
        );
        let c = config(json!({
            "api_key_secret": null,
            "extra_headers": {"api-key": "{{secret:azure}}", "Content-Type": "application/json; charset=utf-8"}
        }));
        let h = headers(&c);
        assert!(!h.iter().any(|(k, _)| k == "authorization"));
        assert_eq!(h.len(), 2);
        assert!(h.contains(&("api-key".to_owned(), "{{secret:azure}}".to_owned())));
        assert!(h.contains(&("Content-Type".to_owned(), "application/json; charset=utf-8".to_owned())));
    }

    #[test]
    fn full_request() {
        let c = config(json!({"base_url": "http://127.0.0.1:9/v1"}));
        let (endpoint, r) = build_request(&c, &item("Hi", "{}", None), &[], 1234).unwrap();
        assert_eq!(endpoint, Endpoint::ChatCompletions);
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "http://127.0.0.1:9/v1/chat/completions");
        assert_eq!(r.timeout_ms, Some(1234));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["messages"][0]["content"], "Hi");
        let e = build_request(&c, &item("Hi", "{}", Some("/v1/completions")), &[], 1).unwrap_err();
        assert_eq!(e.class, ErrorClass::ClientError);
    }
}
