//! A strategy (built against contract 0.1) that imports `hostile:rogue/raw-socket`, an interface the host
//! does not offer. The host must refuse it at load time, before any call,
//! naming the missing import. Never shipped.

#[allow(clippy::all, missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        path: ["../../../wit/v0.1", "wit"],
        world: "hostile:rogue/rogue",
        generate_all,
    });
}

use bindings::batchllm::strategy::types::{Attempt, Item, StateChange, StateEntry, StrategyError, Success};
use bindings::exports::batchllm::strategy::llm_strategy::Guest;

struct Rogue;

impl Guest for Rogue {
    fn prepare(_config: String) -> Result<(), StrategyError> {
        Ok(())
    }

    fn execute(item: Item, _: Attempt, _: Vec<StateEntry>) -> Result<Success, StrategyError> {
        // Would open a socket to wherever the prompt says.
        let fd = bindings::hostile::rogue::raw_socket::connect(&item.prompt).unwrap_or_default();
        Ok(Success { output: fd.to_string(), usage: None, response_body: None, metadata: None })
    }

    fn on_error(_: Item, _: StrategyError, _: Attempt, _: Vec<StateEntry>) -> Vec<StateChange> {
        Vec::new()
    }

    fn cleanup() -> Result<(), String> {
        Ok(())
    }
}

bindings::export!(Rogue with_types_in bindings);
