//! The failure classes: what went wrong with an attempt or an item.
//!
//! The plugin's classes (WIT `error-class`) plus the host's own: a plugin
//! that traps, overruns its time, or is refused by the egress policy, and the
//! ways a run ends an item early. The codes are the `error.code` of result
//! lines, so they are part of the file format: add, never rename.

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
    /// The item's deadline (`--item-timeout`) passed.
    DeadlineExceeded,
    /// The batch deadline (`--batch-timeout`) passed before the item ended.
    BatchDeadlineExceeded,
    /// The run was aborted (fail-fast) before the item ended.
    Aborted,
    /// The process died while the item's request was in flight: the provider
    /// may have answered (and billed) it, so it is not sent again unless the
    /// user asks with `--retry-failed`.
    OutcomeUnknown,
    /// The host itself failed while running the item (a bug, reported as
    /// such): the provider may have answered, so it is not sent again
    /// unless the user asks with `--retry-failed`.
    HostError,
    /// The provider answered with no content (the output budget spent, a
    /// content filter, a refusal, a blocked prompt, no choice): the same
    /// request gets the same answer, so it is not retried; its usage is
    /// kept and the message names the finish reason.
    NoContent,
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
            FailureClass::DeadlineExceeded => "deadline_exceeded",
            FailureClass::BatchDeadlineExceeded => "batch_deadline_exceeded",
            FailureClass::Aborted => "aborted",
            FailureClass::OutcomeUnknown => "outcome_unknown",
            FailureClass::HostError => "host_error",
            FailureClass::NoContent => "no_content",
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
                | FailureClass::DeadlineExceeded
                | FailureClass::BatchDeadlineExceeded
                | FailureClass::Aborted
                | FailureClass::OutcomeUnknown
                | FailureClass::HostError
                | FailureClass::NoContent
        )
    }
}

impl std::str::FromStr for FailureClass {
    type Err = String;

    /// Parses a class code (`auth`, `quota_exhausted`; `-` may stand for `_`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().replace('-', "_");
        FailureClass::ALL.iter().copied().find(|c| c.code() == wanted).ok_or_else(|| {
            let known: Vec<_> = FailureClass::ALL.iter().map(|c| c.code()).collect();
            format!("unknown failure class `{s}` (known: {})", known.join(", "))
        })
    }
}

impl FailureClass {
    /// Every class, in a stable order.
    pub const ALL: [FailureClass; 20] = [
        FailureClass::RateLimited,
        FailureClass::Overloaded,
        FailureClass::Timeout,
        FailureClass::Network,
        FailureClass::InvalidResponse,
        FailureClass::ClientError,
        FailureClass::Auth,
        FailureClass::QuotaExhausted,
        FailureClass::TooLarge,
        FailureClass::Other,
        FailureClass::PluginTrap,
        FailureClass::PluginTimeout,
        FailureClass::PluginOutputTooLarge,
        FailureClass::EgressDenied,
        FailureClass::DeadlineExceeded,
        FailureClass::BatchDeadlineExceeded,
        FailureClass::Aborted,
        FailureClass::OutcomeUnknown,
        FailureClass::HostError,
        FailureClass::NoContent,
    ];
}

impl<'de> serde::Deserialize<'de> for FailureClass {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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
            FailureClass::NoContent,
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
    fn codes_round_trip() {
        for class in FailureClass::ALL {
            assert_eq!(class.code().parse::<FailureClass>(), Ok(class));
        }
        assert_eq!("quota-exhausted".parse::<FailureClass>(), Ok(FailureClass::QuotaExhausted));
        assert!("nope".parse::<FailureClass>().expect_err("unknown").contains("known: rate_limited"));
    }

    #[test]
    fn codes_are_snake_case() {
        assert_eq!(FailureClass::QuotaExhausted.code(), "quota_exhausted");
        assert_eq!(FailureClass::NoContent.code(), "no_content");
        assert_eq!(serde_json::to_string(&FailureClass::EgressDenied).expect("json"), "\"egress_denied\"");
    }
}
