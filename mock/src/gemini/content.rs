//! Reading Gemini `Content` values (`{"role", "parts": [{"text"}, ...]}`)
//! and counting their tokens, for requests and cached contents alike.
//!
//! Tokens follow [`crate::tokens`]: each content counts `T(text) + 4`, its
//! text being its text parts joined with `"\n"` (other parts count as empty).

use serde_json::Value;

use super::error::GoogleError;
use crate::tokens;

/// One content: its role (`user` when absent) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Turn {
    pub role: String,
    pub text: String,
}

/// The turns of a `contents` array (required non-empty when `required`).
pub(crate) fn turns(contents: Option<&Value>, field: &str, required: bool) -> Result<Vec<Turn>, GoogleError> {
    let list = match contents {
        None | Some(Value::Null) if !required => return Ok(Vec::new()),
        Some(Value::Array(list)) if !list.is_empty() || !required => list,
        _ => return Err(GoogleError::invalid_argument(format!("* {field}: contents is not specified"))),
    };
    list.iter().map(|content| turn(content, field)).collect()
}

/// One `Content` object.
pub(crate) fn turn(content: &Value, field: &str) -> Result<Turn, GoogleError> {
    let invalid =
        || GoogleError::invalid_argument(format!("Invalid value at '{field}': expected Content objects with parts"));
    let obj = content.as_object().ok_or_else(invalid)?;
    let role = match obj.get("role") {
        None | Some(Value::Null) => "user".to_owned(),
        Some(Value::String(role)) if matches!(role.as_str(), "user" | "model" | "function") => role.clone(),
        Some(_) => {
            return Err(GoogleError::invalid_argument(format!("Please use a valid role: user, model (in {field}).")));
        }
    };
    let parts = obj.get("parts").and_then(Value::as_array).ok_or_else(invalid)?;
    let texts: Vec<&str> = parts.iter().filter_map(|part| part.get("text")?.as_str()).collect();
    Ok(Turn { role, text: texts.join("\n") })
}

/// Tokens of `turns` plus an optional system instruction.
pub(crate) fn prompt_tokens(turns: &[Turn], system: Option<&Turn>) -> u64 {
    tokens::prompt_tokens(turns.iter().chain(system).map(|t| t.text.as_str()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_turns_and_counts() {
        let contents = json!([{"role": "user", "parts": [{"text": "hello"}, {"inlineData": {}}, {"text": "you"}]},
                              {"role": "model", "parts": [{"text": "hi"}]}, {"parts": [{"text": "abcd"}]}]);
        let turns = turns(Some(&contents), "contents", true).expect("valid");
        assert_eq!(turns[0], Turn { role: "user".into(), text: "hello\nyou".into() });
        assert_eq!(turns[2].role, "user");
        // (3+4) + (1+4) + (1+4) = 17; a system turn "ab" adds 1 + 4.
        assert_eq!(prompt_tokens(&turns, None), 17);
        let system = turn(&json!({"parts": [{"text": "ab"}]}), "systemInstruction").expect("valid");
        assert_eq!(prompt_tokens(&turns, Some(&system)), 22);
    }

    #[test]
    fn rejects_bad_contents() {
        assert!(turns(None, "contents", true).is_err());
        assert!(turns(Some(&json!([])), "contents", true).is_err());
        assert!(turns(None, "contents", false).is_ok_and(|t| t.is_empty()));
        for bad in [json!(["x"]), json!([{"role": "user"}]), json!([{"role": "robot", "parts": []}])] {
            assert!(turns(Some(&bad), "contents", true).is_err(), "{bad}");
        }
    }
}
