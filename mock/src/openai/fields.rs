//! Validation helpers for the fields OpenAI request bodies have in common.
//!
//! Every malformed field becomes a 400 [`ApiError`] naming it, never a panic.

use serde_json::{Map, Value};

use super::error::ApiError;

/// The body as a JSON object.
pub(super) fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| ApiError::invalid_request("The request body must be a JSON object.", None))
}

/// `model`, or `default` when absent; it must be a string when present.
pub(super) fn model(body: &Map<String, Value>, default: &str) -> Result<String, ApiError> {
    match body.get("model") {
        None | Some(Value::Null) => Ok(default.to_owned()),
        Some(Value::String(model)) => Ok(model.clone()),
        Some(_) => Err(wrong_type("model", "a string")),
    }
}

/// An optional positive integer field (absent or `null` is `None`).
pub(super) fn positive_int(body: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            value.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| wrong_type(name, "an integer greater than 0"))
        }
    }
}

/// A 400 for a field of the wrong type or value.
pub(super) fn wrong_type(name: &'static str, expected: &str) -> ApiError {
    ApiError::invalid_request(format!("Invalid '{name}': expected {expected}."), Some(name))
}

/// A 400 for a missing required field.
pub(super) fn missing(name: &'static str) -> ApiError {
    ApiError::invalid_request(format!("Missing required parameter: '{name}'."), Some(name))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn model_defaults_and_checks_type() {
        assert_eq!(model(&map(json!({})), "d").ok(), Some("d".to_owned()));
        assert_eq!(model(&map(json!({"model": "gpt"})), "d").ok(), Some("gpt".to_owned()));
        assert!(model(&map(json!({"model": 3})), "d").is_err());
    }

    #[test]
    fn positive_ints() {
        assert_eq!(positive_int(&map(json!({})), "n").ok(), Some(None));
        assert_eq!(positive_int(&map(json!({"n": 5})), "n").ok(), Some(Some(5)));
        for bad in [json!(0), json!(-1), json!(1.5), json!("5")] {
            assert!(positive_int(&map(json!({ "n": bad })), "n").is_err());
        }
    }

    #[test]
    fn non_objects_are_rejected() {
        assert!(object(&json!([1])).is_err());
        assert!(object(&json!({})).is_ok());
    }
}
