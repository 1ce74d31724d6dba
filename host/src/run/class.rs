//! The failure classes the engine acts on.
//!
//! The plugin's ten classes (WIT `error-class`) plus the host's own: a
//! plugin that traps, overruns its time, or is refused by the egress policy.

use batchllm_bindings::types::ErrorClass;
use serde::{Serialize, Serializer};

/// Why an attempt (or an item) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureClass {
    RateLimited,
    Overloaded,
    Timeout,
    Network,
    InvalidResponse,
    ClientError,
    Auth,
    QuotaExhausted,
    TooLarge,
    Other,
    /// The plugin trapped (panic, out of memory, wasm fault).
    PluginTrap,
    /// The plugin overran its CPU budget.
    PluginTimeout,
    /// The plugin returned more output than allowed.
    PluginOutputTooLarge,
    /// The egress policy refused a request the plugin made.
    EgressDenied,
}

impl FailureClass {
    /// The snake_case code written to results (`error.code`).
    pub fn code(self) -> &'static str {
        match self {
            FailureClass::RateLimited => "rate_limited",
            FailureClass::Overloaded => "overloaded",
            FailureClass::Timeout => "timeout",
            FailureClass::Network => "network",
            FailureClass::InvalidResponse => "invalid_response",
            FailureClass::ClientError => "client_error",
            FailureClass::Auth => "auth",
            FailureClass::QuotaExhausted => "quota_exhausted",
            FailureClass::TooLarge => "too_large",
            FailureClass::Other => "other",
            FailureClass::PluginTrap => "plugin_trap",
            FailureClass::PluginTimeout => "plugin_timeout",
            FailureClass::PluginOutputTooLarge => "plugin_output_too_large",
            FailureClass::EgressDenied => "egress_denied",
        }
    }

    /// Whether another attempt may help.
    pub fn is_retryable(self) -> bool {
        !matches!(
            self,
            FailureClass::ClientError
                | FailureClass::Auth
                | FailureClass::QuotaExhausted
                | FailureClass::TooLarge
                | FailureClass::EgressDenied
                | FailureClass::PluginOutputTooLarge
        )
    }
}

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

impl FailureClass {
    /// The nearest WIT class, for telling `on-error` about host-side failures.
    pub fn to_wit(self) -> ErrorClass {
        match self {
            FailureClass::RateLimited => ErrorClass::RateLimited,
            FailureClass::Overloaded => ErrorClass::Overloaded,
            FailureClass::Timeout | FailureClass::PluginTimeout => ErrorClass::Timeout,
            FailureClass::Network => ErrorClass::Network,
            FailureClass::InvalidResponse => ErrorClass::InvalidResponse,
            FailureClass::ClientError | FailureClass::EgressDenied => ErrorClass::ClientError,
            FailureClass::Auth => ErrorClass::Auth,
            FailureClass::QuotaExhausted => ErrorClass::QuotaExhausted,
            FailureClass::TooLarge | FailureClass::PluginOutputTooLarge => ErrorClass::TooLarge,
            FailureClass::Other | FailureClass::PluginTrap => ErrorClass::Other,
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for FailureClass {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_retryable_classes_are_exactly_the_fatal_ones() {
        for class in [
            FailureClass::ClientError,
            FailureClass::Auth,
            FailureClass::QuotaExhausted,
            FailureClass::TooLarge,
            FailureClass::EgressDenied,
        ] {
            assert!(!class.is_retryable(), "{class}");
        }
        for class in [
            FailureClass::RateLimited,
            FailureClass::Overloaded,
            FailureClass::Timeout,
            FailureClass::Network,
            FailureClass::InvalidResponse,
            FailureClass::Other,
            FailureClass::PluginTrap,
            FailureClass::PluginTimeout,
        ] {
            assert!(class.is_retryable(), "{class}");
        }
    }

    #[test]
    fn codes_are_snake_case() {
        assert_eq!(FailureClass::from(ErrorClass::QuotaExhausted).code(), "quota_exhausted");
        assert_eq!(serde_json::to_string(&FailureClass::EgressDenied).expect("json"), "\"egress_denied\"");
    }
}
