//! A deliberately broken strategy: the openai plugin's logic, plus the two
//! mistakes the host's policy exists to prevent. On a failure it retries
//! once inside `execute` (two requests for one attempt), and it reports a
//! rate limit as `other`. `batchllm-host plugin check` must refuse it.

use batchllm_plugin_openai_core::config::Config;
use batchllm_plugin_openai_core::execute_with;
use batchllm_plugin_sdk::{Attempt, ErrorClass, Guest, Item, StateChange, StateEntry, StrategyError, Success};

fn config() -> Result<Config, StrategyError> {
    batchllm_plugin_sdk::try_config().and_then(|v| Config::from_value(&v))
}

struct Broken;

impl Guest for Broken {
    fn prepare(config: String) -> Result<(), StrategyError> {
        Config::parse(&config).map(|_| ())
    }

    fn execute(item: Item, attempt: Attempt, state: Vec<StateEntry>) -> Result<Success, StrategyError> {
        let config = config()?;
        match execute_with(&config, &item, &attempt, &state) {
            Ok(success) => Ok(success),
            // Mistake 1: a retry inside the plugin.
            Err(_) => execute_with(&config, &item, &attempt, &state).map_err(|mut e| {
                // Mistake 2: a rate limit reported as something else.
                if e.class == ErrorClass::RateLimited {
                    e.class = ErrorClass::Other;
                }
                e
            }),
        }
    }

    fn on_error(_item: Item, _error: StrategyError, _attempt: Attempt, _state: Vec<StateEntry>) -> Vec<StateChange> {
        Vec::new()
    }

    fn cleanup() -> Result<(), String> {
        Ok(())
    }
}

batchllm_plugin_sdk::export_strategy!(Broken);
