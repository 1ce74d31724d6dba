//! Conversions between the WIT contract's types and the host's vocabulary.
//!
//! The engine speaks [`crate::model`]; only the sandbox knows the generated
//! bindings, so a new WIT version changes this file, not the engine.

use std::time::Duration;

use batchllm_bindings::types::{Attempt, ErrorClass, Item, StrategyError, Success, Usage};

use crate::model::{Answer, AttemptInfo, FailureClass, PluginError, PluginItem, RetryState, TokenUsage};

impl From<ErrorClass> for FailureClass {
    fn from(c: ErrorClass) -> Self {
        match c {
            ErrorClass::RateLimited => FailureClass::RateLimited,
            ErrorClass::Overloaded => FailureClass::Overloaded,
            ErrorClass::Timeout => FailureClass::Timeout,
            ErrorClass::Network => FailureClass::Network,
            ErrorClass::InvalidResponse => FailureClass::InvalidResponse,
            ErrorClass::ClientError => FailureClass::ClientError,
            ErrorClass::Auth => FailureClass::Auth,
            ErrorClass::QuotaExhausted => FailureClass::QuotaExhausted,
            ErrorClass::TooLarge => FailureClass::TooLarge,
            ErrorClass::Other => FailureClass::Other,
        }
    }
}

/// The nearest WIT class, for telling `on-error` about host-side failures.
impl From<FailureClass> for ErrorClass {
    fn from(class: FailureClass) -> Self {
        match class {
            FailureClass::RateLimited => ErrorClass::RateLimited,
            FailureClass::Overloaded => ErrorClass::Overloaded,
            FailureClass::Timeout
            | FailureClass::PluginTimeout
            | FailureClass::DeadlineExceeded
            | FailureClass::BatchDeadlineExceeded => ErrorClass::Timeout,
            FailureClass::Network => ErrorClass::Network,
            FailureClass::InvalidResponse => ErrorClass::InvalidResponse,
            FailureClass::ClientError | FailureClass::EgressDenied => ErrorClass::ClientError,
            FailureClass::Auth => ErrorClass::Auth,
            FailureClass::QuotaExhausted => ErrorClass::QuotaExhausted,
            FailureClass::TooLarge | FailureClass::PluginOutputTooLarge => ErrorClass::TooLarge,
            FailureClass::Other
            | FailureClass::PluginTrap
            | FailureClass::Aborted
            | FailureClass::OutcomeUnknown
            | FailureClass::HostError => ErrorClass::Other,
        }
    }
}

impl From<&Usage> for TokenUsage {
    fn from(u: &Usage) -> Self {
        TokenUsage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_input_tokens: u.cached_input_tokens.unwrap_or(0),
            cache_write_tokens: u.cache_write_tokens.unwrap_or(0),
            reasoning_tokens: u.reasoning_tokens.unwrap_or(0),
        }
    }
}

/// The WIT record of an item (copied per call: the bindings own their strings).
pub fn item(item: &PluginItem) -> Item {
    Item {
        id: item.id.clone(),
        prompt: item.prompt.clone(),
        params: item.params.clone(),
        context: item.context.clone(),
        endpoint: item.endpoint.clone(),
    }
}

/// The WIT record of an attempt.
pub fn attempt(attempt: &AttemptInfo) -> Attempt {
    Attempt {
        number: attempt.number,
        rate_limit_retries: attempt.rate_limit_retries,
        time_left_ms: u64::try_from(attempt.time_left.as_millis()).unwrap_or(u64::MAX),
    }
}

/// The retry state as the WIT list of entries.
pub fn state(state: &RetryState) -> Vec<(String, String)> {
    state.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl From<Success> for Answer {
    fn from(s: Success) -> Self {
        Answer {
            output: s.output,
            usage: s.usage.as_ref().map(TokenUsage::from),
            response_body: s.response_body,
            metadata: s.metadata,
        }
    }
}

impl From<StrategyError> for PluginError {
    fn from(e: StrategyError) -> Self {
        PluginError {
            class: e.class.into(),
            message: e.message,
            http_status: e.http_status,
            retry_after: e.retry_after_ms.map(Duration::from_millis),
            usage: e.usage.as_ref().map(TokenUsage::from),
            response_body: e.response_body,
        }
    }
}

/// The WIT record of a failure, for `on-error`.
pub fn error(e: &PluginError) -> StrategyError {
    StrategyError {
        class: e.class.into(),
        message: e.message.clone(),
        http_status: e.http_status,
        retry_after_ms: e.retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        usage: e.usage.map(|u| Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_input_tokens: Some(u.cached_input_tokens),
            cache_write_tokens: Some(u.cache_write_tokens),
            reasoning_tokens: Some(u.reasoning_tokens),
        }),
        response_body: e.response_body.clone(),
    }
}
