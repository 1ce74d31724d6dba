//! Deterministic token estimates, shared by every provider endpoint.
//!
//! The mock has no tokenizer; it counts characters (Unicode scalar values) so
//! that tests can predict every number it reports:
//!
//! * text: `T(s) = ceil(chars(s) / 4)`
//! * prompt (chat): `P = Σ over messages (T(text) + 4)`, where a message's
//!   text is its string content, or its `{"type":"text"}` parts joined with
//!   `"\n"` (other parts count as empty)
//! * prompt (embeddings): `P = Σ over inputs T(input)`
//! * completion: `C = max(1, T(answer))`
//! * cached: `K = 0` when `P < 1024`, else `floor(P * cached_ratio)` rounded
//!   down to a multiple of 64
//! * rate-limit charge (chat): `P + max_completion_tokens` (or `max_tokens`,
//!   default [`DEFAULT_MAX_TOKENS`])

/// Tokens added per chat message for its role and framing.
pub const PER_MESSAGE_TOKENS: u64 = 4;

/// Completion budget assumed for rate limiting when a request sets none.
pub const DEFAULT_MAX_TOKENS: u64 = 16;

/// Prompts shorter than this many tokens never report cached tokens
/// (mirroring OpenAI's prompt-caching threshold).
pub const CACHE_MIN_PROMPT_TOKENS: u64 = 1024;

/// Cached token counts are reported in multiples of this many tokens.
pub const CACHE_GRANULARITY: u64 = 64;

/// Estimated tokens of a piece of text: `ceil(chars / 4)`.
pub fn text_tokens(text: &str) -> u64 {
    u64::try_from(text.chars().count()).unwrap_or(u64::MAX).div_ceil(4)
}

/// Estimated prompt tokens of a chat conversation, given each message's text.
pub fn prompt_tokens<'a>(messages: impl IntoIterator<Item = &'a str>) -> u64 {
    messages.into_iter().map(|text| text_tokens(text) + PER_MESSAGE_TOKENS).sum()
}

/// Estimated tokens of a generated answer (at least 1).
pub fn completion_tokens(answer: &str) -> u64 {
    text_tokens(answer).max(1)
}

/// Prompt tokens reported as served from the prompt cache.
///
/// `ratio` is clamped to `0..=1`.
pub fn cached_tokens(prompt_tokens: u64, ratio: f64) -> u64 {
    if prompt_tokens < CACHE_MIN_PROMPT_TOKENS {
        return 0;
    }
    // Truncation towards zero is the documented `floor`.
    let raw = (prompt_tokens as f64 * ratio.clamp(0.0, 1.0)).floor() as u64;
    raw / CACHE_GRANULARITY * CACHE_GRANULARITY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tokens_round_up_per_four_chars() {
        assert_eq!(text_tokens(""), 0);
        assert_eq!(text_tokens("a"), 1);
        assert_eq!(text_tokens("abcd"), 1);
        assert_eq!(text_tokens("abcde"), 2);
        // Characters, not bytes.
        assert_eq!(text_tokens("ééééé"), 2);
    }

    #[test]
    fn prompt_adds_per_message_overhead() {
        assert_eq!(prompt_tokens([]), 0);
        assert_eq!(prompt_tokens(["hello"]), 2 + 4);
        assert_eq!(prompt_tokens(["You are terse.", "hi"]), (4 + 4) + (1 + 4));
    }

    #[test]
    fn completion_is_at_least_one() {
        assert_eq!(completion_tokens(""), 1);
        assert_eq!(completion_tokens("echo: hi"), 2);
    }

    #[test]
    fn cached_only_for_long_prompts_in_steps_of_64() {
        assert_eq!(cached_tokens(1023, 0.5), 0);
        assert_eq!(cached_tokens(1024, 0.5), 512);
        assert_eq!(cached_tokens(1100, 0.5), 512); // 550 -> 512
        assert_eq!(cached_tokens(2000, 1.0), 1984);
        assert_eq!(cached_tokens(5000, 0.0), 0);
        assert_eq!(cached_tokens(5000, 7.0), 4992); // ratio clamped to 1
    }
}
