//! A deterministic, network-free strategy for demos, `--dry-run` and tests.
//!
//! `execute` answers `"mock: " + text`, where text is the item's prompt or,
//! without one, the last user message in `params.messages`. Usage: input =
//! ceil(chars of all prompt text / 4) + 4, output = ceil(output chars / 4).
//! The response body is an OpenAI `chat.completion`; metadata is
//! `{"model":"mock"}`.
//!
//! Test hooks, written anywhere in the prompt text:
//! - `[[fail:CLASS]]`: fail with CLASS (kebab-case, e.g. `rate-limited`,
//!   which asks for a 10 ms wait);
//! - `[[fail-first:N:CLASS]]`: fail with CLASS while the retry state's
//!   `mock.failures` is below N; `on-error` increments it, which shows the
//!   retry-state contract end to end;
//! - `[[panic]]`: panic, so the host must turn the trap into a failed
//!   attempt and discard the instance.

pub mod mock;

use batchllm_plugin_sdk::{Attempt, Guest, Item, StateChange, StateEntry, StrategyError, Success, log};

struct Mock;

impl Guest for Mock {
    fn prepare(_config: String) -> Result<(), StrategyError> {
        Ok(())
    }

    fn execute(item: Item, attempt: Attempt, state: Vec<StateEntry>) -> Result<Success, StrategyError> {
        log::debug(format!(
            "mock execute: item {:?}, attempt {}, {} state entries",
            item.id,
            attempt.number,
            state.len()
        ));
        mock::execute(&item, &state)
    }

    fn on_error(item: Item, _error: StrategyError, _attempt: Attempt, state: Vec<StateEntry>) -> Vec<StateChange> {
        mock::on_error(&item, &state)
    }

    fn cleanup() -> Result<(), String> {
        Ok(())
    }
}

batchllm_plugin_sdk::export_strategy!(Mock);
