//! Conversions between the WIT contract's types and the host's vocabulary.
//!
//! The engine speaks [`crate::model`]; only the sandbox knows the generated
//! bindings, so a new WIT version changes this file, not the engine.

use batchllm_bindings::types::{ErrorClass, Usage};

use crate::model::{FailureClass, TokenUsage};

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
            FailureClass::Other | FailureClass::PluginTrap | FailureClass::Aborted | FailureClass::OutcomeUnknown => {
                ErrorClass::Other
            }
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
