//! Token usage, normalised across providers.

use serde::{Deserialize, Serialize};

/// Tokens consumed, summed over calls. `input_tokens` includes cached and
/// cache-write tokens (the plugin normalises each provider to this meaning).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

impl TokenUsage {
    /// Adds another call's usage.
    pub fn add(&mut self, other: &TokenUsage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
    }

    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

impl From<&batchllm_bindings::types::Usage> for TokenUsage {
    fn from(u: &batchllm_bindings::types::Usage) -> Self {
        TokenUsage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_input_tokens: u.cached_input_tokens.unwrap_or(0),
            cache_write_tokens: u.cache_write_tokens.unwrap_or(0),
            reasoning_tokens: u.reasoning_tokens.unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_and_totals() {
        let mut a = TokenUsage { input_tokens: 10, output_tokens: 5, cached_input_tokens: 4, ..Default::default() };
        a.add(&TokenUsage { input_tokens: 1, output_tokens: 2, reasoning_tokens: 1, ..Default::default() });
        assert_eq!(a.total(), 18);
        assert_eq!(a.cached_input_tokens, 4);
        assert_eq!(a.reasoning_tokens, 1);
    }
}
