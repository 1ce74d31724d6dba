//! Strategy plugin for the Gemini API (`models/{model}:generateContent`),
//! with explicit context caching.
//!
//! Configuration (a JSON object, every key optional; unknown keys are an
//! error): `base_url` (default `https://generativelanguage.googleapis.com`;
//! a prefix for `/v1beta/...` as in Google's SDK, e.g.
//! `https://gateway.example/gemini`; a base ending in a version, e.g.
//! `http://h/v1`, uses that version instead of `/v1beta`),
//! `model` (default `gemini-2.5-flash`), `api_key_secret` (default
//! `"api-key"`, sent as `x-goog-api-key: {{secret:<name>}}`), `default_params`,
//! `extra_headers`, and `cache`:
//!
//! ```json
//! "cache": {"contents": [...] | "text", "system_instruction": {...} | "text",
//!           "ttl_seconds": 3600, "renew_before_seconds": 300, "keep": false}
//! ```
//!
//! With `cache`, `prepare` creates one cached content for the whole run and
//! records it in the run state; every `execute` references it
//! (`cachedContent`), and the worker that wins a compare-and-swap renews its
//! TTL when it expires within `renew_before_seconds`; `cleanup` deletes it
//! unless `keep` (see [`cache`]).
//!
//! Jobs: `prompt` and/or `params` (a `GenerateContentRequest`: `contents`,
//! `generationConfig`, `systemInstruction`, `safetySettings`, `tools`, ...,
//! plus `model` to pick another model). Retry-state `param.<field>` entries
//! override top-level fields. Usage: input is `promptTokenCount` (cached
//! content included, reported as cached), output `candidatesTokenCount +
//! thoughtsTokenCount`.

pub mod cache;
pub mod config;
pub mod request;

use batchllm_plugin_sdk::http::{HttpError, Request, Response};
use batchllm_plugin_sdk::{
    Attempt, ConfigCell, Guest, Item, StateChange, StateEntry, StrategyError, Success, classify, http, log, run_state,
    time,
};
use config::Config;

/// The configuration, parsed once per instance (the same for the whole run).
static CONFIG: ConfigCell<Config> = ConfigCell::new();

fn config() -> Result<&'static Config, StrategyError> {
    CONFIG.get_or_parse(Config::from_value)
}

/// [`cache::Env`] backed by the host imports.
struct HostEnv;

impl cache::Env for HostEnv {
    fn get(&self, key: &str) -> Option<String> {
        run_state::get(key)
    }
    fn set(&self, key: &str, value: &str) {
        run_state::set(key, value);
    }
    fn compare_and_swap(&self, key: &str, expected: Option<&str>, new: Option<&str>) -> bool {
        run_state::compare_and_swap(key, expected, new)
    }
    fn send(&self, request: &Request) -> Result<Response, HttpError> {
        http::send(request)
    }
    fn now_ms(&self) -> Option<i64> {
        time::now_unix_ms()
    }
    fn warn(&self, message: String) {
        log::warn(message);
    }
}

struct Gemini;

impl Guest for Gemini {
    fn prepare(config: String) -> Result<(), StrategyError> {
        let parsed = Config::parse(&config)?;
        log::info(format!("gemini strategy: base_url={} model={}", parsed.common.base_url, parsed.common.model));
        if let Some(settings) = &parsed.cache {
            let live = cache::create(&HostEnv, &parsed, settings)?;
            log::info(format!("created context cache {} (expires {})", live.name, live.expire_time));
        }
        CONFIG.set(parsed);
        Ok(())
    }

    fn execute(item: Item, attempt: Attempt, state: Vec<StateEntry>) -> Result<Success, StrategyError> {
        let config = config()?;
        let live = match &config.cache {
            Some(settings) => Some(cache::current(&HostEnv, config, settings).ok_or_else(|| {
                StrategyError::client_error("the context cache is configured but prepare recorded none")
            })?),
            None => None,
        };
        let name = live.as_ref().map(|l| l.name.as_str());
        let request = request::build_request(config, &item, &state, name, attempt.time_left_ms)?;
        log::trace(format!("POST {} (attempt {})", request.url, attempt.number));
        let response = http::send(&request).map_err(classify::from_http_error)?;
        classify::answer(classify::Api::GeminiGenerateContent, response.status, &response.headers, &response.body)
    }

    fn on_error(_item: Item, _error: StrategyError, _attempt: Attempt, _state: Vec<StateEntry>) -> Vec<StateChange> {
        Vec::new()
    }

    fn cleanup() -> Result<(), String> {
        let config = config().map_err(|e| e.message)?;
        let Some(settings) = &config.cache else { return Ok(()) };
        if settings.keep {
            if let Some(name) = run_state::get(cache::NAME_KEY) {
                log::info(format!("keeping context cache {name} (cache.keep)"));
            }
            return Ok(());
        }
        if let Some(name) = cache::delete(&HostEnv, config)? {
            log::info(format!("deleted context cache {name}"));
        }
        Ok(())
    }
}

batchllm_plugin_sdk::export_strategy!(Gemini);
