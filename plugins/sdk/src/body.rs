//! Request and response body steps every chat-style strategy repeats.
//!
//! A request body is built in steps, each a function here, in the order the
//! provider's API needs: [`merge_params`] (`default_params` under the job's
//! params), [`set_default`] for the fields a provider requires,
//! [`add_prompt_message`] / [`add_prompt_turn`] for the prompt,
//! [`crate::state::apply_param_overrides`] for the retry state, and
//! [`reject_streaming`]. Answers are read by [`crate::classify::answer`].

use serde_json::{Map, Value, json};

use crate::text::json_kind;
use crate::{Item, StrategyError};

/// The start of every request body: the configuration's `default_params`
/// with the item's params over them. The merge is shallow, so a field the
/// job sets replaces the default's whole value (a job's `messages` is not
/// appended to a default one). Params that are not a JSON object are a
/// client error ([`Item::params_object`]).
pub fn merge_params(default_params: &Map<String, Value>, item: &Item) -> Result<Map<String, Value>, StrategyError> {
    let mut body = default_params.clone();
    body.extend(item.params_object()?);
    Ok(body)
}

/// Sets the top-level field `key` to `value` unless the body already has a
/// non-null value there. A `null` counts as unset, so a job can write
/// `"model": null` to ask for the configured default.
pub fn set_default(body: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    if body.get(key).is_none_or(Value::is_null) {
        body.insert(key.to_owned(), value.into());
    }
}

/// Adds the item's prompt to a `messages`-style body (OpenAI chat,
/// Anthropic Messages): the sole user message when the body has none, else
/// appended as the last one. An item with neither, or `messages` that is not
/// an array, is a client error.
pub fn add_prompt_message(body: &mut Map<String, Value>, item: &Item) -> Result<(), StrategyError> {
    add_prompt_turn(body, item, "messages", || json!({"role": "user", "content": item.prompt}))
}

/// Adds the item's prompt, as the turn `user_turn` builds, to the
/// conversation array `field` of a body (`messages` for OpenAI and
/// Anthropic, `contents` for Gemini): the sole turn when the body has none
/// (or `null`), appended as the last one otherwise; an empty prompt adds
/// nothing to an existing conversation. An item with neither a prompt nor
/// the field, or a field that is not an array, is a client error naming
/// `params.<field>`.
pub fn add_prompt_turn(
    body: &mut Map<String, Value>,
    item: &Item,
    field: &str,
    user_turn: impl FnOnce() -> Value,
) -> Result<(), StrategyError> {
    match body.get_mut(field) {
        None | Some(Value::Null) => {
            if item.prompt.is_empty() {
                return Err(StrategyError::client_error(format!(
                    "item {:?} has neither a prompt nor params.{field}",
                    item.id
                )));
            }
            body.insert(field.to_owned(), Value::Array(vec![user_turn()]));
        }
        Some(Value::Array(turns)) => {
            if !item.prompt.is_empty() {
                turns.push(user_turn());
            }
        }
        Some(other) => {
            return Err(StrategyError::client_error(format!(
                "item {:?}: params.{field} must be an array, got {}",
                item.id,
                json_kind(other)
            )));
        }
    }
    Ok(())
}

/// A client error when the body asks for a streamed answer (`stream:
/// true`): a strategy returns one output, so it needs the whole response.
pub fn reject_streaming(body: &Map<String, Value>, item: &Item) -> Result<(), StrategyError> {
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(StrategyError::client_error(format!(
            "item {:?}: streaming (stream: true) is not supported; the strategy needs the whole response",
            item.id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(prompt: &str) -> Item {
        Item { id: "a".into(), prompt: prompt.into(), params: "{}".into(), context: None, endpoint: None }
    }

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn params_merge_shallowly_over_the_defaults() {
        let defaults = map(json!({"temperature": 0.1, "max_tokens": 50, "messages": [{"role": "system"}]}));
        let mut job = item("");
        job.params = r#"{"temperature": 0.9, "messages": []}"#.into();
        assert_eq!(
            Value::Object(merge_params(&defaults, &job).unwrap()),
            json!({"temperature": 0.9, "max_tokens": 50, "messages": []})
        );
        job.params = "[1]".into();
        assert!(merge_params(&defaults, &job).unwrap_err().message.contains("params must be a JSON object"));
    }

    #[test]
    fn defaults_fill_missing_and_null_fields_only() {
        let mut body = map(json!({"model": null, "max_tokens": 7}));
        set_default(&mut body, "model", "m");
        set_default(&mut body, "max_tokens", 1024);
        set_default(&mut body, "n", 1);
        assert_eq!(Value::Object(body), json!({"model": "m", "max_tokens": 7, "n": 1}));
    }

    #[test]
    fn the_prompt_becomes_or_joins_any_conversation_field() {
        let turn = || json!({"role": "user", "parts": [{"text": "hi"}]});
        let mut body = map(json!({"contents": null}));
        add_prompt_turn(&mut body, &item("hi"), "contents", turn).unwrap();
        assert_eq!(body["contents"], json!([turn()]));
        add_prompt_turn(&mut body, &item(""), "contents", turn).unwrap();
        assert_eq!(body["contents"].as_array().map(Vec::len), Some(1));
        let e = add_prompt_turn(&mut Map::new(), &item(""), "contents", turn).unwrap_err();
        assert_eq!(e.message, "item \"a\" has neither a prompt nor params.contents");
        let mut bad = map(json!({"contents": "x"}));
        let e = add_prompt_turn(&mut bad, &item("hi"), "contents", turn).unwrap_err();
        assert_eq!(e.message, "item \"a\": params.contents must be an array, got a string");
    }

    #[test]
    fn streaming_is_refused() {
        assert!(reject_streaming(&map(json!({"stream": false})), &item("")).is_ok());
        assert!(reject_streaming(&map(json!({"stream": "true"})), &item("")).is_ok());
        let e = reject_streaming(&map(json!({"stream": true})), &item("")).unwrap_err();
        assert_eq!(e.class, crate::ErrorClass::ClientError);
        assert!(e.message.starts_with("item \"a\": streaming (stream: true) is not supported"), "{}", e.message);
    }

    #[test]
    fn the_prompt_becomes_or_joins_the_messages() {
        let mut body = Map::new();
        add_prompt_message(&mut body, &item("hi")).unwrap();
        assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
        add_prompt_message(&mut body, &item("more")).unwrap();
        assert_eq!(body["messages"][1]["content"], "more");
        assert!(add_prompt_message(&mut Map::new(), &item("")).is_err());
        let mut bad = Map::new();
        bad.insert("messages".into(), json!("x"));
        assert!(add_prompt_message(&mut bad, &item("hi")).unwrap_err().message.contains("must be an array"));
    }
}
