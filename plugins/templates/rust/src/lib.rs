//! A minimal batchllm strategy plugin in Rust: one OpenAI-compatible chat
//! completion per attempt.
//!
//! Copy this folder, then edit:
//! - [`parse_config`] for your settings (here `base_url` and `model`);
//! - [`request_body`] and [`send`] for your provider's request;
//! - the [`Api`] the host's classifier reads your provider's answers as
//!   (OpenAI, Anthropic, Gemini, or `Api::Generic` for any JSON API, whose
//!   errors it still classifies by status), or your own reading of them.
//!
//! What the host guarantees, and what a strategy must never do, is in
//! `docs/writing-a-plugin.md` of the batchllm-host repository. In short: the
//! host owns every policy (retries, backoff, cooldowns, deadlines,
//! accounting). A strategy translates one job into one provider request,
//! translates the answer, and classifies failures honestly. It never
//! retries, never sleeps and keeps no per-item facts in globals.
//!
//! Nothing here panics on input: every unexpected shape becomes a classified
//! error (a panic would trap, and the host would discard the instance and
//! record the attempt as `plugin_trap`).

// Generates, from the WIT contract: the types (`Item`, `Attempt`, `Success`,
// `StrategyError`, ...), the imports (`host`, `http`, `classify`), the
// `Guest` trait for the export, and the `export!` macro.
wit_bindgen::generate!({
    // The WIT folder, relative to this crate's Cargo.toml: the contract
    // ships with the plugin (a copy of the batchllm-host repository's
    // `wit/strategy.wit`), so the folder builds wherever it is.
    path: "wit",
    world: "strategy",
});

use batchllm::strategy::classify::{self, Api};
use batchllm::strategy::host::{self, LogLevel};
use batchllm::strategy::http::{self, HttpError, Request, Response};
use batchllm::strategy::types::{Attempt, ErrorClass, Item, StateChange, StateEntry, StrategyError, Success};
use exports::batchllm::strategy::llm_strategy::Guest;
use serde_json::{Map, Value, json};

/// Where requests go unless the configuration says otherwise.
const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The model used when neither the job nor the configuration names one.
const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// The host's name for the key given with `--api-key-env VAR` (or
/// `--secret api-key=env:VAR`). The plugin never sees the key: it writes
/// `{{secret:api-key}}` into a header and the host substitutes it, only for
/// hosts the secret is granted for.
const API_KEY_SECRET: &str = "api-key";

/// The strategy. It holds no state: the configuration is read from the host
/// on each call, and per-item facts would go in the retry state.
struct Template;

impl Guest for Template {
    /// Runs once per run, before any `execute`, in one instance. Check the
    /// configuration here: an error stops the run before any item is sent.
    /// Run-wide set-up (a provider-side cache, a resolved model) would be
    /// recorded with `host::run_state_set` so every instance can read it.
    fn prepare(config: String) -> Result<(), StrategyError> {
        let config = parse_config(&config).map_err(|e| error(ErrorClass::ClientError, e))?;
        host::log(LogLevel::Info, &format!("template strategy: base_url={} model={}", config.base_url, config.model));
        Ok(())
    }

    /// Runs for each attempt of each item, in any instance: exactly one
    /// provider request, never a retry, never a sleep. The host decides
    /// whether there is another attempt, from the class of the error.
    fn execute(item: Item, attempt: Attempt, _state: Vec<StateEntry>) -> Result<Success, StrategyError> {
        // `prepare` ran in another instance; every instance reads the same
        // configuration from the host. Parsing it is cheap next to the call.
        let config = parse_config(&host::config()).map_err(|e| error(ErrorClass::ClientError, e))?;
        let body = request_body(&config, &item)?;
        let response = send(&config, &body, &attempt)?;
        // The host reads the answer, with the code its own plugins use: the
        // output (the first choice's text), usage, metadata; or the
        // failure's class (the status, the provider's error code, an answer
        // with no content), message, wait and billed tokens. Classify
        // honestly if you read answers yourself: the host's retry policy is
        // keyed on the class.
        classify::classify(Api::OpenaiChat, response.status, &response.headers, &response.body)
    }

    /// Runs after a failed `execute` that the host will try again, before the
    /// next attempt. It returns changes to the item's retry state (`(key,
    /// Some(value))` sets, `(key, None)` removes), which the next `execute`
    /// receives as `state`. This strategy does not adapt, so it changes
    /// nothing. (An adapting one might raise the temperature after an
    /// `invalid-response`, or switch to a bigger model.)
    fn on_error(_item: Item, _error: StrategyError, _attempt: Attempt, _state: Vec<StateEntry>) -> Vec<StateChange> {
        Vec::new()
    }

    /// Runs once at the end of the run when `prepare` succeeded (after
    /// success, failure, abort or Ctrl-C). Nothing was set up, so nothing to
    /// tear down. An error here is only logged.
    fn cleanup() -> Result<(), String> {
        Ok(())
    }
}

export!(Template);

/// The plugin's settings, from `--plugin-config KEY=VALUE` and the
/// `[plugin-config]` table of the config file.
struct Config {
    /// The API root, without a trailing slash, e.g. `https://api.openai.com/v1`.
    base_url: String,
    /// The default model.
    model: String,
}

/// Parses the configuration JSON object. Unknown keys are refused so that a
/// misspelt setting is an error instead of being silently ignored.
fn parse_config(text: &str) -> Result<Config, String> {
    let parsed = if text.trim().is_empty() { Ok(Value::Null) } else { serde_json::from_str::<Value>(text) };
    let map = match parsed {
        Ok(Value::Null) => Map::new(),
        Ok(Value::Object(map)) => map,
        Ok(other) => return Err(format!("invalid plugin configuration: expected a JSON object, got {other}")),
        Err(e) => return Err(format!("invalid plugin configuration: not valid JSON: {e}")),
    };
    if let Some(key) = map.keys().find(|k| !matches!(k.as_str(), "base_url" | "model")) {
        return Err(format!("invalid plugin configuration: unknown key {key:?} (known keys: base_url, model)"));
    }
    let text_setting = |key: &str, default: &str| match map.get(key) {
        None | Some(Value::Null) => Ok(default.to_string()),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(other) => Err(format!("invalid plugin configuration: {key} must be a non-empty string, got {other}")),
    };
    let base_url = text_setting("base_url", DEFAULT_BASE_URL)?;
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(format!(
            "invalid plugin configuration: base_url must start with http:// or https://, got {base_url:?}"
        ));
    }
    Ok(Config { base_url: base_url.trim_end_matches('/').to_string(), model: text_setting("model", DEFAULT_MODEL)? })
}

/// The chat-completions request body for `item`.
///
/// Both input shapes work: a simple line gives a `prompt` (and maybe
/// `params` such as `temperature`); an OpenAI Batch line gives the whole
/// request body in `params` (with `messages`) and an empty prompt. The
/// job's `params` win over the configuration; the prompt is appended as the
/// last user message.
fn request_body(config: &Config, item: &Item) -> Result<Value, StrategyError> {
    if let Some(endpoint) = &item.endpoint
        && !endpoint.ends_with("/chat/completions")
    {
        return Err(error(
            ErrorClass::ClientError,
            format!("this plugin only serves /v1/chat/completions, not {endpoint}"),
        ));
    }
    let mut body = match serde_json::from_str::<Value>(&item.params) {
        Ok(Value::Object(map)) => map,
        _ => return Err(error(ErrorClass::ClientError, "the job's params must be a JSON object")),
    };
    if body.get("stream") == Some(&Value::Bool(true)) {
        // One request, one whole answer: streaming is not supported.
        return Err(error(ErrorClass::ClientError, "\"stream\": true is not supported"));
    }
    body.entry("model").or_insert_with(|| json!(config.model));
    if !item.prompt.is_empty() {
        match body.entry("messages").or_insert_with(|| json!([])) {
            Value::Array(messages) => messages.push(json!({"role": "user", "content": item.prompt})),
            _ => return Err(error(ErrorClass::ClientError, "the job's params.messages must be an array")),
        }
    }
    if !body.contains_key("messages") {
        return Err(error(ErrorClass::ClientError, "the job has neither a prompt nor params.messages"));
    }
    Ok(Value::Object(body))
}

/// Sends the one request of this attempt through the host's `http.send`.
///
/// The host checks the destination against the hosts granted with
/// `--allow-host`, substitutes the `{{secret:...}}` placeholder, and sees
/// every status and rate-limit header. The attempt's time left is passed on
/// as the HTTP timeout, so a hung provider ends as a `timeout` in time.
fn send(config: &Config, body: &Value, attempt: &Attempt) -> Result<Response, StrategyError> {
    let request = Request {
        method: "POST".into(),
        url: format!("{}/chat/completions", config.base_url),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("authorization".into(), format!("Bearer {{{{secret:{API_KEY_SECRET}}}}}")),
        ],
        body: body.to_string().into_bytes(),
        timeout_ms: Some(attempt.time_left_ms),
    };
    http::send(&request).map_err(|e| {
        let (class, what, detail) = match e {
            // Refused by the egress policy (host not granted, or a secret
            // not allowed for it); the host records it as `egress_denied`.
            HttpError::Denied(m) => (ErrorClass::ClientError, "egress denied", m),
            HttpError::Timeout(m) => (ErrorClass::Timeout, "request timed out", m),
            HttpError::Network(m) => (ErrorClass::Network, "network error", m),
            HttpError::InvalidRequest(m) => (ErrorClass::ClientError, "invalid request", m),
            HttpError::TooLarge(m) => (ErrorClass::TooLarge, "body too large", m),
        };
        error(class, format!("{what}: {detail}"))
    })
}

/// A failure of `class` with only a message.
fn error(class: ErrorClass, message: impl Into<String>) -> StrategyError {
    StrategyError {
        class,
        message: message.into(),
        http_status: None,
        retry_after_ms: None,
        usage: None,
        response_body: None,
    }
}
