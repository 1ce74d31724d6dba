//! Conversions between the WIT contract's types, in every version the host
//! links, and the host's vocabulary.
//!
//! The engine speaks [`crate::model`]; only the sandbox knows the generated
//! bindings, so a new WIT version changes this file, not the engine. The
//! versions share their records; they differ in the error classes (0.2 adds
//! `no-content`) and 0.2's `classify` import, whose types convert to and
//! from the [`batchllm_classify`] crate that implements it.

use std::time::Duration;

use crate::model::{FailureClass, RetryState};

/// The retry state as the WIT list of entries (the same type in every version).
pub fn state(state: &RetryState) -> Vec<(String, String)> {
    state.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The conversions of the records every version shares, for version `$v`.
macro_rules! records {
    ($v:ident) => {
        use batchllm_bindings::$v::types::{Attempt, Item, StrategyError, Success, Usage};

        use crate::model::{Answer, AttemptInfo, PluginError, PluginItem, TokenUsage};

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
                time_left_ms: super::millis(attempt.time_left),
            }
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
                    retry_after: e.retry_after_ms.map(std::time::Duration::from_millis),
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
                retry_after_ms: e.retry_after.map(super::millis),
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
    };
}

/// `batchllm:strategy@0.2.0`.
pub mod v0_2 {
    records!(v0_2);

    use batchllm_bindings::v0_2::classify::Api;
    use batchllm_bindings::v0_2::types::ErrorClass;
    use batchllm_classify::{Answer as Classified, Class, Failure};

    use crate::model::FailureClass;

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
                ErrorClass::NoContent => FailureClass::NoContent,
            }
        }
    }

    /// The nearest WIT class, for telling `on-error` about host-side failures.
    impl From<FailureClass> for ErrorClass {
        fn from(class: FailureClass) -> Self {
            match super::nearest(class) {
                Class::RateLimited => ErrorClass::RateLimited,
                Class::Overloaded => ErrorClass::Overloaded,
                Class::Timeout => ErrorClass::Timeout,
                Class::Network => ErrorClass::Network,
                Class::InvalidResponse => ErrorClass::InvalidResponse,
                Class::ClientError => ErrorClass::ClientError,
                Class::Auth => ErrorClass::Auth,
                Class::QuotaExhausted => ErrorClass::QuotaExhausted,
                Class::TooLarge => ErrorClass::TooLarge,
                Class::Other => ErrorClass::Other,
                Class::NoContent => ErrorClass::NoContent,
            }
        }
    }

    /// The API whose answer `classify.classify` reads.
    pub fn api(api: Api) -> batchllm_classify::Api {
        match api {
            Api::Generic => batchllm_classify::Api::Generic,
            Api::OpenaiChat => batchllm_classify::Api::OpenAiChat,
            Api::OpenaiCompletions => batchllm_classify::Api::OpenAiCompletions,
            Api::OpenaiResponses => batchllm_classify::Api::OpenAiResponses,
            Api::OpenaiEmbeddings => batchllm_classify::Api::OpenAiEmbeddings,
            Api::AnthropicMessages => batchllm_classify::Api::AnthropicMessages,
            Api::GeminiGenerateContent => batchllm_classify::Api::GeminiGenerateContent,
        }
    }

    fn usage(u: batchllm_classify::Usage) -> Usage {
        Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_input_tokens: u.cached_input_tokens,
            cache_write_tokens: u.cache_write_tokens,
            reasoning_tokens: u.reasoning_tokens,
        }
    }

    /// What `classify.classify` answers a plugin.
    // The WIT result the bindings lower by value; boxing it would only add a copy.
    #[allow(clippy::result_large_err)]
    pub fn classified(result: Result<Classified, Failure>) -> Result<Success, StrategyError> {
        match result {
            Ok(a) => Ok(Success {
                output: a.output,
                usage: a.usage.map(usage),
                response_body: a.response_body,
                metadata: a.metadata,
            }),
            Err(f) => Err(StrategyError {
                class: match f.class {
                    Class::RateLimited => ErrorClass::RateLimited,
                    Class::Overloaded => ErrorClass::Overloaded,
                    Class::Timeout => ErrorClass::Timeout,
                    Class::Network => ErrorClass::Network,
                    Class::InvalidResponse => ErrorClass::InvalidResponse,
                    Class::ClientError => ErrorClass::ClientError,
                    Class::Auth => ErrorClass::Auth,
                    Class::QuotaExhausted => ErrorClass::QuotaExhausted,
                    Class::TooLarge => ErrorClass::TooLarge,
                    Class::Other => ErrorClass::Other,
                    Class::NoContent => ErrorClass::NoContent,
                },
                message: f.message,
                http_status: f.http_status,
                retry_after_ms: f.retry_after_ms,
                usage: f.usage.map(usage),
                response_body: f.response_body,
            }),
        }
    }
}

/// `batchllm:strategy@0.1.0`: no `no-content` class (an old plugin cannot
/// return it, and `on-error` is never called after it: it is not retried).
pub mod v0_1 {
    records!(v0_1);

    use batchllm_bindings::v0_1::types::ErrorClass;
    use batchllm_classify::Class;

    use crate::model::FailureClass;

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
            match super::nearest(class) {
                Class::RateLimited => ErrorClass::RateLimited,
                Class::Overloaded => ErrorClass::Overloaded,
                Class::Timeout => ErrorClass::Timeout,
                Class::Network => ErrorClass::Network,
                Class::InvalidResponse | Class::NoContent => ErrorClass::InvalidResponse,
                Class::ClientError => ErrorClass::ClientError,
                Class::Auth => ErrorClass::Auth,
                Class::QuotaExhausted => ErrorClass::QuotaExhausted,
                Class::TooLarge => ErrorClass::TooLarge,
                Class::Other => ErrorClass::Other,
            }
        }
    }
}

/// The plugin class nearest to a host class.
fn nearest(class: FailureClass) -> batchllm_classify::Class {
    use batchllm_classify::Class;
    match class {
        FailureClass::RateLimited => Class::RateLimited,
        FailureClass::Overloaded => Class::Overloaded,
        FailureClass::Timeout
        | FailureClass::PluginTimeout
        | FailureClass::DeadlineExceeded
        | FailureClass::BatchDeadlineExceeded => Class::Timeout,
        FailureClass::Network => Class::Network,
        FailureClass::InvalidResponse => Class::InvalidResponse,
        FailureClass::NoContent => Class::NoContent,
        FailureClass::ClientError | FailureClass::EgressDenied => Class::ClientError,
        FailureClass::Auth => Class::Auth,
        FailureClass::QuotaExhausted => Class::QuotaExhausted,
        FailureClass::TooLarge | FailureClass::PluginOutputTooLarge => Class::TooLarge,
        FailureClass::Other
        | FailureClass::PluginTrap
        | FailureClass::Aborted
        | FailureClass::OutcomeUnknown
        | FailureClass::HostError => Class::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_survives_the_round_trip_through_0_2() {
        use batchllm_bindings::v0_2::types::ErrorClass;
        for class in FailureClass::ALL {
            let wit = ErrorClass::from(class);
            // Plugin classes come back as they went; host classes as their nearest.
            let back = FailureClass::from(wit);
            if FailureClass::ALL[..10].contains(&class) || class == FailureClass::NoContent {
                assert_eq!(back, class, "{class}");
            }
        }
        assert_eq!(FailureClass::from(ErrorClass::NoContent), FailureClass::NoContent);
    }

    #[test]
    fn a_0_1_plugin_hears_of_no_content_as_an_invalid_response() {
        use batchllm_bindings::v0_1::types::ErrorClass;
        assert_eq!(ErrorClass::from(FailureClass::NoContent), ErrorClass::InvalidResponse);
        assert_eq!(FailureClass::from(ErrorClass::InvalidResponse), FailureClass::InvalidResponse);
    }

    #[test]
    fn classified_answers_keep_every_field() {
        use batchllm_bindings::v0_2::types::ErrorClass;
        let body = br#"{"choices":[{"message":{"content":""},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":9}}"#;
        let e = v0_2::classified(batchllm_classify::classify(batchllm_classify::Api::OpenAiChat, 200, &[], body))
            .expect_err("no content");
        assert_eq!((e.class, e.http_status), (ErrorClass::NoContent, Some(200)));
        assert_eq!(e.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((3, 9)));
        assert!(e.response_body.is_some());
    }
}
