//! Token usage, normalised across providers.
//!
//! Sums saturate: usage comes from plugins and providers, and no answer may
//! overflow the host's counters.

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
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cached_input_tokens = self.cached_input_tokens.saturating_add(other.cached_input_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(other.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
    }

    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
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
