//! Request and response body steps every chat-style strategy repeats.

use serde_json::{Map, Value, json};

use crate::text::{body_text, excerpt, json_kind};
use crate::{Item, StrategyError};

/// How much of an unusable body an error message shows.
pub const MAX_EXCERPT_BYTES: usize = 2048;

/// The text and JSON of a 2xx body. A body that is not JSON is an
/// `invalid-response` naming the status and showing an excerpt (or saying
/// the body is empty).
pub fn parse_json(status: u16, body: &[u8]) -> Result<(String, Value), StrategyError> {
    let text = body_text(body);
    match serde_json::from_str::<Value>(&text) {
        Ok(json) => Ok((text, json)),
        Err(e) => {
            let shown = if text.trim().is_empty() {
                "the body is empty".to_owned()
            } else {
                format!("body: {}", excerpt(&text, MAX_EXCERPT_BYTES))
            };
            Err(StrategyError::invalid_response(format!("HTTP {status} response is not valid JSON ({e}); {shown}"))
                .with_http_status(status))
        }
    }
}

/// Adds the item's prompt to a `messages`-style body (OpenAI chat,
/// Anthropic Messages): the sole user message when the body has none, else
/// appended as the last one. An item with neither, or `messages` that is not
/// an array, is a client error.
pub fn add_prompt_message(body: &mut Map<String, Value>, item: &Item) -> Result<(), StrategyError> {
    let user = || json!({"role": "user", "content": item.prompt});
    match body.get_mut("messages") {
        None | Some(Value::Null) => {
            if item.prompt.is_empty() {
                return Err(StrategyError::client_error(format!(
                    "item {:?} has neither a prompt nor params.messages",
                    item.id
                )));
            }
            body.insert("messages".to_owned(), Value::Array(vec![user()]));
        }
        Some(Value::Array(messages)) => {
            if !item.prompt.is_empty() {
                messages.push(user());
            }
        }
        Some(other) => {
            return Err(StrategyError::client_error(format!(
                "item {:?}: params.messages must be an array, got {}",
                item.id,
                json_kind(other)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(prompt: &str) -> Item {
        Item { id: "a".into(), prompt: prompt.into(), params: "{}".into(), context: None, endpoint: None }
    }

    #[test]
    fn unparsable_bodies_are_invalid_responses() {
        let err = parse_json(200, b"").unwrap_err();
        assert!(err.message.ends_with("the body is empty"), "{}", err.message);
        let err = parse_json(200, b"{oops").unwrap_err();
        assert!(err.message.contains("body: {oops"), "{}", err.message);
        assert_eq!(err.http_status, Some(200));
        assert_eq!(parse_json(200, b"{\"a\":1}").unwrap().1["a"], 1);
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
