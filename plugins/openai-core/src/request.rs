//! Building the provider request: endpoint, URL, body and headers.

use crate::config::Config;
use batchllm_plugin_sdk::http::{self, Request};
use batchllm_plugin_sdk::text::json_kind;
use batchllm_plugin_sdk::{Item, StateEntry, StrategyError, body, classify, serde_json, state};
use serde_json::{Map, Value, json};

/// The endpoints this strategy speaks: every endpoint the OpenAI Batch API
/// accepts that answers with text or vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    /// The Responses API, OpenAI's primary API (`input`, `output[]` items).
    Responses,
    /// Legacy text completions (`prompt`, `choices[].text`), which local
    /// servers (llama.cpp, vLLM) still serve.
    Completions,
    Embeddings,
}

impl Endpoint {
    /// The endpoint an item targets: `/v1/chat/completions` when it names
    /// none. The paths are accepted without their `/v1` too (`/responses`);
    /// anything else is a `client-error` naming the endpoint.
    pub fn resolve(endpoint: Option<&str>) -> Result<Endpoint, StrategyError> {
        let Some(raw) = endpoint else {
            return Ok(Endpoint::ChatCompletions);
        };
        let path = raw.trim().trim_end_matches('/');
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_prefix("v1/").unwrap_or(path);
        match path {
            "" | "chat/completions" => Ok(Endpoint::ChatCompletions),
            "responses" => Ok(Endpoint::Responses),
            "completions" => Ok(Endpoint::Completions),
            "embeddings" => Ok(Endpoint::Embeddings),
            _ => Err(StrategyError::client_error(format!(
                "unsupported endpoint {raw:?}: the openai strategy supports \
                 /v1/chat/completions, /v1/responses, /v1/completions and /v1/embeddings"
            ))),
        }
    }

    /// The API whose answers this endpoint gives (for [`classify::answer`]).
    pub fn api(self) -> classify::Api {
        match self {
            Endpoint::ChatCompletions => classify::Api::OpenAiChat,
            Endpoint::Responses => classify::Api::OpenAiResponses,
            Endpoint::Completions => classify::Api::OpenAiCompletions,
            Endpoint::Embeddings => classify::Api::OpenAiEmbeddings,
        }
    }

    /// The endpoint's path, with its `/v1` prefix.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Responses => "/v1/responses",
            Endpoint::Completions => "/v1/completions",
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
/// Every endpoint gets `model` when missing. Chat: without `messages` the
/// prompt becomes the one user message; with `messages` a non-empty prompt
/// is appended as a user message. Responses: `input` defaults to the prompt;
/// a non-empty prompt is appended to an `input` list as a user message (a
/// string `input` becomes the first of two). Completions: `prompt` defaults
/// to the item's prompt, which is appended after a blank line to a string
/// `prompt`. Embeddings: `input` defaults to the prompt.
pub fn build_body(
    config: &Config,
    item: &Item,
    endpoint: Endpoint,
    state: &[StateEntry],
) -> Result<Map<String, Value>, StrategyError> {
    let mut body = body::merge_params(&config.common.default_params, item)?;
    body::set_default(&mut body, "model", config.common.model.as_str());
    match endpoint {
        Endpoint::ChatCompletions => body::add_prompt_message(&mut body, item)?,
        Endpoint::Responses => add_prompt_input(&mut body, item)?,
        Endpoint::Completions => add_prompt_text(&mut body, item)?,
        Endpoint::Embeddings => {
            if body.get("input").is_none_or(Value::is_null) {
                if item.prompt.is_empty() {
                    return Err(neither(item, "input"));
                }
                body.insert("input".to_owned(), Value::String(item.prompt.clone()));
            }
        }
    }
    state::apply_param_overrides(&mut body, state);
    body::reject_streaming(&body, item)?;
    // A background response answers "queued" and must be polled: there is
    // nothing to translate, and the host polls nothing.
    if endpoint == Endpoint::Responses && body.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(StrategyError::client_error(format!(
            "item {:?}: background responses are not supported; leave out \"background\": true",
            item.id
        )));
    }
    Ok(body)
}

/// The Responses API's `input` with the item's prompt: the prompt itself
/// when the body has none, appended as a user message to a list, or after
/// a string `input` (which becomes the first user message).
fn add_prompt_input(body: &mut Map<String, Value>, item: &Item) -> Result<(), StrategyError> {
    let prompt = || json!({"role": "user", "content": item.prompt});
    match body.get_mut("input") {
        None | Some(Value::Null) => {
            if item.prompt.is_empty() {
                return Err(neither(item, "input"));
            }
            body.insert("input".to_owned(), Value::String(item.prompt.clone()));
        }
        Some(Value::Array(turns)) => {
            if !item.prompt.is_empty() {
                turns.push(prompt());
            }
        }
        Some(Value::String(first)) => {
            if !item.prompt.is_empty() {
                let first = json!({"role": "user", "content": std::mem::take(first)});
                body.insert("input".to_owned(), json!([first, prompt()]));
            }
        }
        Some(other) => {
            return Err(StrategyError::client_error(format!(
                "item {:?}: params.input must be a string or an array, got {}",
                item.id,
                json_kind(other)
            )));
        }
    }
    Ok(())
}

/// Legacy completions' `prompt` with the item's prompt: the prompt itself
/// when the body has none, appended after a blank line to a string
/// `prompt` (as chat appends a message; an adapting strategy's feedback
/// lands there). A list of prompts has no one place for it.
fn add_prompt_text(body: &mut Map<String, Value>, item: &Item) -> Result<(), StrategyError> {
    match body.get_mut("prompt") {
        None | Some(Value::Null) => {
            if item.prompt.is_empty() {
                return Err(neither(item, "prompt"));
            }
            body.insert("prompt".to_owned(), Value::String(item.prompt.clone()));
        }
        Some(_) if item.prompt.is_empty() => {}
        Some(Value::String(text)) => {
            text.push_str("\n\n");
            text.push_str(&item.prompt);
        }
        Some(other) => {
            return Err(StrategyError::client_error(format!(
                "item {:?}: its prompt cannot be added to params.prompt, which is {}; send params.prompt as one string",
                item.id,
                json_kind(other)
            )));
        }
    }
    Ok(())
}

/// The `client-error` for an item with nothing to send.
fn neither(item: &Item, field: &str) -> StrategyError {
    StrategyError::client_error(format!("item {:?} has neither a prompt nor params.{field}", item.id))
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
    let body = match usual_body(config, item, endpoint, state) {
        Some(body) => body,
        None => http::json_bytes(&Value::Object(build_body(config, item, endpoint, state)?)),
    };
    let request =
        http::json_request_from("POST".to_owned(), join_url(config, endpoint), headers(config), body, Some(timeout_ms));
    Ok((endpoint, request))
}

/// The body of the usual item, written directly: a prompt, no params (`{}`
/// or none), no `default_params` and no retry-state overrides. Exactly the
/// text [`build_body`] gives then, the prompt and the model in the one
/// field each endpoint puts them (in the sorted order the map writes its
/// keys); `None` for any other item, which [`build_body`] builds.
fn usual_body(config: &Config, item: &Item, endpoint: Endpoint, state: &[StateEntry]) -> Option<Vec<u8>> {
    // As `Item::params_object` reads them: blank (Unicode whitespace), or
    // an empty object with only JSON whitespace around it.
    let json_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let no_params = item.params.trim().is_empty() || item.params.trim_matches(json_space) == "{}";
    if !no_params
        || state::has_param_overrides(state)
        || item.prompt.is_empty()
        || !config.common.default_params.is_empty()
    {
        return None;
    }
    let (model, prompt) = (config.common.model.as_str(), item.prompt.as_str());
    let mut out = Vec::with_capacity(prompt.len() + model.len() + 64);
    let string = |out: &mut Vec<u8>, text: &str| serde_json::to_writer(out, text).ok();
    match endpoint {
        Endpoint::ChatCompletions => {
            out.extend_from_slice(br#"{"messages":[{"content":"#);
            string(&mut out, prompt)?;
            out.extend_from_slice(br#","role":"user"}],"model":"#);
            string(&mut out, model)?;
        }
        Endpoint::Responses | Endpoint::Embeddings => {
            out.extend_from_slice(br#"{"input":"#);
            string(&mut out, prompt)?;
            out.extend_from_slice(br#","model":"#);
            string(&mut out, model)?;
        }
        Endpoint::Completions => {
            out.extend_from_slice(br#"{"model":"#);
            string(&mut out, model)?;
            out.extend_from_slice(br#","prompt":"#);
            string(&mut out, prompt)?;
        }
    }
    out.push(b'}');
    Some(out)
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
        assert_eq!(Endpoint::resolve(Some("/v1/responses")).unwrap(), Endpoint::Responses);
        assert_eq!(Endpoint::resolve(Some("responses")).unwrap(), Endpoint::Responses);
        assert_eq!(Endpoint::resolve(Some("/v1/completions")).unwrap(), Endpoint::Completions);
        let e = Endpoint::resolve(Some("/v1/images/generations")).unwrap_err();
        assert_eq!(e.class, ErrorClass::ClientError);
        assert!(e.message.contains("\"/v1/images/generations\""), "{}", e.message);
        assert!(e.message.contains("/v1/responses, /v1/completions"), "{}", e.message);
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
        let (endpoint, r) = build_request(&c, &item("Hi", "{}", Some("/v1/completions")), &[], 1).unwrap();
        assert_eq!((endpoint, r.url.as_str()), (Endpoint::Completions, "http://127.0.0.1:9/v1/completions"));
        let (_, r) = build_request(&c, &item("", r#"{"input":"Hi"}"#, Some("/v1/responses")), &[], 1).unwrap();
        assert_eq!(r.url, "http://127.0.0.1:9/v1/responses");
        let e = build_request(&c, &item("Hi", "{}", Some("/v1/audio/speech")), &[], 1).unwrap_err();
        assert_eq!(e.class, ErrorClass::ClientError);
    }

    #[test]
    fn responses_body() {
        let c = config(json!({"model": "gpt-4.1-mini", "default_params": {"max_output_tokens": 16}}));
        let body = |prompt: &str, params: &str| build_body(&c, &item(prompt, params, None), Endpoint::Responses, &[]);
        assert_eq!(
            Value::Object(body("Hi", "{}").unwrap()),
            json!({"model": "gpt-4.1-mini", "input": "Hi", "max_output_tokens": 16})
        );
        // An OpenAI Batch line: the body as it is.
        let line = r#"{"model":"gpt-4o","instructions":"Be brief.","input":[{"role":"user","content":"Q1"}]}"#;
        let b = body("", line).unwrap();
        assert_eq!((b["model"].clone(), b["input"].as_array().map(Vec::len)), (json!("gpt-4o"), Some(1)));
        assert_eq!(body("Q2", line).unwrap()["input"][1], json!({"role": "user", "content": "Q2"}));
        assert_eq!(
            body("Q2", r#"{"input":"Q1"}"#).unwrap()["input"],
            json!([{"role": "user", "content": "Q1"}, {"role": "user", "content": "Q2"}])
        );
        for (prompt, params) in
            [("", "{}"), ("x", r#"{"input": 5}"#), ("x", r#"{"stream": true}"#), ("x", r#"{"background": true}"#)]
        {
            assert_eq!(body(prompt, params).unwrap_err().class, ErrorClass::ClientError, "{params}");
        }
        let s = state(&[("param.max_output_tokens", "64")]);
        let b = build_body(&c, &item("Hi", "{}", None), Endpoint::Responses, &s).unwrap();
        assert_eq!(b["max_output_tokens"], 64);
    }

    /// The usual item's body, written directly, is the text the map gives;
    /// any other item is left to the map.
    #[test]
    fn usual_bodies_are_the_maps() {
        let endpoints = [Endpoint::ChatCompletions, Endpoint::Responses, Endpoint::Completions, Endpoint::Embeddings];
        let configs = [
            Config::default(),
            config(json!({"model": "m \"quoted\" \u{7f} é\n"})),
            config(json!({"default_params": {"temperature": 0}})),
        ];
        let prompts = ["Hi", "", "multi\nline \"q\" \\ \u{1} \u{1f} </script> é 中 😀 \u{2028}", " "];
        let params = [
            "{}",
            " {} ",
            "",
            "\n",
            "\u{2003}",
            "{ }",
            "\u{a0}{}",
            "{}\u{2003}",
            r#"{"temperature":1}"#,
            r#"{"stream":true}"#,
            "[]",
            "{",
        ];
        let states = [state(&[]), state(&[("mock.x", "1"), ("param.", "x")]), state(&[("param.model", "m2")])];
        let mut usual = 0;
        for endpoint in endpoints {
            for c in &configs {
                for prompt in prompts {
                    for p in params {
                        for s in &states {
                            let i = item(prompt, p, None);
                            let built = build_body(c, &i, endpoint, s).map(|b| http::json_bytes(&Value::Object(b)));
                            if let Some(direct) = usual_body(c, &i, endpoint, s) {
                                assert_eq!(Ok(&direct), built.as_ref(), "{endpoint:?} {prompt:?} {p:?}");
                                usual += 1;
                            }
                        }
                    }
                }
            }
        }
        // Four endpoints, two configurations, three prompts, five params
        // and two states.
        assert_eq!(usual, 4 * 2 * 3 * 5 * 2);
        let (_, r) = build_request(&configs[1], &item("Hi", "{}", None), &[], 1).unwrap();
        assert_eq!(r.body, usual_body(&configs[1], &item("Hi", "", None), Endpoint::ChatCompletions, &[]).unwrap());
        assert_eq!(r.headers, headers(&configs[1]));
    }

    #[test]
    fn completions_body() {
        let c = config(json!({"model": "llama"}));
        let body = |prompt: &str, params: &str| build_body(&c, &item(prompt, params, None), Endpoint::Completions, &[]);
        assert_eq!(Value::Object(body("Once upon", "{}").unwrap()), json!({"model": "llama", "prompt": "Once upon"}));
        let b = body("", r#"{"prompt":["a","b"],"max_tokens":5}"#).unwrap();
        assert_eq!((b["prompt"].clone(), b["max_tokens"].clone()), (json!(["a", "b"]), json!(5)));
        assert!(b.get("messages").is_none());
        assert_eq!(body("and then", r#"{"prompt":"Once"}"#).unwrap()["prompt"], "Once\n\nand then");
        for (prompt, params) in [("", "{}"), ("", r#"{"prompt":null}"#), ("x", r#"{"prompt":["a","b"]}"#)] {
            assert_eq!(body(prompt, params).unwrap_err().class, ErrorClass::ClientError, "{params}");
        }
        assert!(body("x", r#"{"prompt":["a"]}"#).unwrap_err().message.contains("which is an array"));
    }
}
