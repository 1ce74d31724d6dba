//! Strategy plugin for the Anthropic Messages API (`POST /v1/messages`).
//!
//! Configuration (a JSON object, every key optional; unknown keys are an
//! error): `base_url` (default `https://api.anthropic.com`; a prefix for
//! `/v1/messages` as in the Anthropic SDK, e.g.
//! `https://gateway.example/anthropic`; a base ending in a version, e.g.
//! `http://h/v1`, is taken as naming it), `model` (default
//! `claude-sonnet-4-5`), `api_key_secret` (default `"api-key"`, sent as
//! `x-api-key: {{secret:<name>}}`; `null` or `""` sends none),
//! `default_params` (merged under each job's params), `extra_headers`
//! (replace a default header of the same name, e.g. `anthropic-version`).
//!
//! Jobs: `prompt` and/or `params` (a Messages body: `messages`, `system`,
//! `max_tokens` (default 1024), `temperature`, `tools`, ...). Retry-state
//! entries `param.<field>` override top-level body fields.
//!
//! Usage: input is `input_tokens + cache_read_input_tokens +
//! cache_creation_input_tokens`; cached and cache-write tokens are reported
//! separately. Metadata carries `model`, `id`, `stop_reason` and the
//! `anthropic-ratelimit-*` headers as `rate_limits`.

pub mod config;
pub mod request;

use batchllm_plugin_sdk::{
    Attempt, ConfigCell, Guest, Item, StateChange, StateEntry, StrategyError, Success, classify, http, log,
};
use config::Config;

/// The configuration, parsed once per instance (the same for the whole run).
static CONFIG: ConfigCell<Config> = ConfigCell::new();

fn config() -> Result<&'static Config, StrategyError> {
    CONFIG.get_or_parse(Config::from_value)
}

struct Anthropic;

impl Guest for Anthropic {
    fn prepare(config: String) -> Result<(), StrategyError> {
        let parsed = Config::parse(&config)?;
        log::info(format!("anthropic strategy: base_url={} model={}", parsed.common.base_url, parsed.common.model));
        CONFIG.set(parsed);
        Ok(())
    }

    fn execute(item: Item, attempt: Attempt, state: Vec<StateEntry>) -> Result<Success, StrategyError> {
        let config = config()?;
        let request = request::build_request(config, &item, &state, attempt.time_left_ms)?;
        log::trace(format!("POST {} (attempt {})", request.url, attempt.number));
        let response = http::send(&request).map_err(classify::from_http_error)?;
        classify::answer(classify::Api::AnthropicMessages, response.status, &response.headers, &response.body)
    }

    fn on_error(_item: Item, _error: StrategyError, _attempt: Attempt, _state: Vec<StateEntry>) -> Vec<StateChange> {
        Vec::new()
    }

    fn cleanup() -> Result<(), String> {
        Ok(())
    }
}

batchllm_plugin_sdk::export_strategy!(Anthropic);
