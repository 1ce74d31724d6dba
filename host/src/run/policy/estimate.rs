//! Token estimates for admission, before the provider says.
//!
//! The charge is the prompt estimate plus the maximum output tokens, as the
//! provider itself counts against a tokens-per-minute limit; the estimate is
//! later reconciled with the usage the response reports.

use crate::model::Job;

/// Estimated tokens one attempt of `job` will consume.
pub fn estimate_tokens(job: &Job, default_max_output: u64) -> u64 {
    prompt_tokens(job).saturating_add(max_output(job).unwrap_or(default_max_output))
}

/// Estimated prompt tokens of `job`: about four characters per token over the
/// prompt and the parameters (which carry any messages), as written.
pub fn prompt_tokens(job: &Job) -> u64 {
    let text_chars = job.prompt.chars().count() + job.params.text().chars().count();
    (text_chars as u64).div_ceil(4)
}

/// The job's own output cap (read from its parameters when it was parsed).
fn max_output(job: &Job) -> Option<u64> {
    job.params.max_output_tokens()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(prompt: &str, params: serde_json::Value) -> Job {
        let serde_json::Value::Object(params) = params else { panic!("object") };
        Job {
            line: 1,
            id: "a".into(),
            prompt: prompt.into(),
            params: crate::model::Params::from_map(&params),
            context: None,
            endpoint: None,
            fingerprint: String::new(),
        }
    }

    #[test]
    fn charges_prompt_plus_max_output() {
        // 8 chars of prompt + "{}" = 10 chars -> 3 tokens; default output 100.
        assert_eq!(estimate_tokens(&job("12345678", serde_json::json!({})), 100), 103);
        let j = job("", serde_json::json!({"max_tokens": 50}));
        assert_eq!(estimate_tokens(&j, 100), "{\"max_tokens\":50}".len().div_ceil(4) as u64 + 50);
        let g = job("", serde_json::json!({"generationConfig": {"maxOutputTokens": 7}}));
        assert_eq!(max_output(&g), Some(7));
    }

    #[test]
    fn a_huge_max_tokens_saturates() {
        let j = job("x", serde_json::json!({"max_tokens": u64::MAX}));
        assert_eq!(estimate_tokens(&j, 100), u64::MAX);
    }
}
