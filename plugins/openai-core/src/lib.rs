//! The OpenAI-compatible core shared by the `openai` strategy and the
//! strategies built on it (`smart-retry`): configuration, request building
//! (with the retry state's `param.*` overrides); answers are read by the
//! SDK's [`classify::answer`] (the classification the host offers every
//! language). A library only: the components live in their own crates.

pub mod config;
pub mod request;

use batchllm_plugin_sdk::{Attempt, Item, StateEntry, StrategyError, Success, classify, http, log};
use config::Config;

/// One attempt with an explicit configuration: build the request, send it,
/// interpret the answer.
pub fn execute_with(
    config: &Config,
    item: &Item,
    attempt: &Attempt,
    state: &[StateEntry],
) -> Result<Success, StrategyError> {
    let (endpoint, request) = request::build_request(config, item, state, attempt.time_left_ms)?;
    log::trace(format!("POST {} (attempt {}, timeout {} ms)", request.url, attempt.number, attempt.time_left_ms));
    let response = http::send(&request).map_err(classify::from_http_error)?;
    classify::answer(endpoint.api(), response.status, &response.headers, &response.body)
}
