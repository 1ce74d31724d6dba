//! Strategy plugin for OpenAI-compatible APIs (OpenAI, vLLM, llama.cpp
//! server, OpenRouter, ...): chat completions, the Responses API, legacy text
//! completions and embeddings (every endpoint of the OpenAI Batch API that
//! answers with text or vectors).
//!
//! Configuration (a JSON object, every key optional; unknown keys are an
//! error):
//! - `base_url` (default `https://api.openai.com/v1`): absolute http(s) URL;
//! - `model` (default `gpt-4o-mini`): used when the job's body names none;
//! - `api_key_secret` (default `"api-key"`): the secret sent as
//!   `authorization: Bearer {{secret:<name>}}`; `null` or `""` sends no
//!   authorization header (local servers);
//! - `default_params`: an object merged under each job's params;
//! - `extra_headers`: an object of header → value (may use
//!   `{{secret:NAME}}` placeholders; replaces a default header of the same
//!   name).
//!
//! Retry state: every entry `param.<field>` overrides the top-level body
//! field `<field>` (the value parsed as JSON, else taken as a string), so an
//! adapting strategy's `on-error` can change the temperature or the model of
//! the next attempt. This strategy itself does not adapt.

use batchllm_plugin_openai_core::{config, execute_with};

use batchllm_plugin_sdk::{Attempt, Guest, Item, StateChange, StateEntry, StrategyError, Success, log};
use config::Config;
use std::sync::OnceLock;

/// The configuration, parsed once per instance (it is the same for the
/// whole run; nothing per item is kept here).
static CONFIG: OnceLock<Result<Config, StrategyError>> = OnceLock::new();

fn config() -> Result<&'static Config, StrategyError> {
    CONFIG
        .get_or_init(|| batchllm_plugin_sdk::try_config().and_then(|v| Config::from_value(&v)))
        .as_ref()
        .map_err(Clone::clone)
}

struct OpenAi;

impl Guest for OpenAi {
    fn prepare(config: String) -> Result<(), StrategyError> {
        let parsed = Config::parse(&config)?;
        log::info(format!(
            "openai strategy: base_url={} model={} authorization={}",
            parsed.base_url,
            parsed.model,
            parsed.api_key_secret.as_deref().map_or_else(|| "none".to_owned(), |s| format!("secret {s:?}")),
        ));
        let _ = CONFIG.set(Ok(parsed));
        Ok(())
    }

    fn execute(item: Item, attempt: Attempt, state: Vec<StateEntry>) -> Result<Success, StrategyError> {
        execute_with(config()?, &item, &attempt, &state)
    }

    fn on_error(_item: Item, _error: StrategyError, _attempt: Attempt, _state: Vec<StateEntry>) -> Vec<StateChange> {
        Vec::new()
    }

    fn cleanup() -> Result<(), String> {
        Ok(())
    }
}

batchllm_plugin_sdk::export_strategy!(OpenAi);
