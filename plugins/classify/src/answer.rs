//! Reading a 2xx answer: JSON or not, the right shape or not, content or
//! none.

use serde_json::{Map, Value};

use crate::text::{body_text, excerpt, json_kind};
use crate::{Class, Failure, Usage};

/// How much of an unusable body an error message shows.
pub const MAX_EXCERPT_BYTES: usize = 2048;

/// The text and JSON of a 2xx body. A body that is not JSON is an
/// `invalid-response` naming the status and showing an excerpt (or saying
/// the body is empty).
pub fn parse_json(status: u16, body: &[u8]) -> Result<(String, Value), Failure> {
    parse_json_text(status, body_text(body))
}

/// [`parse_json`] of a body already decoded ([`body_text`]).
pub(crate) fn parse_json_text(status: u16, text: String) -> Result<(String, Value), Failure> {
    match serde_json::from_str::<Value>(&text) {
        Ok(json) => Ok((text, json)),
        Err(e) => {
            let shown = if text.trim().is_empty() {
                "the body is empty".to_owned()
            } else {
                format!("body: {}", excerpt(&text, MAX_EXCERPT_BYTES))
            };
            Err(Failure::new(
                Class::InvalidResponse,
                format!("HTTP {status} response is not valid JSON ({e}); {shown}"),
            )
            .with_http_status(status))
        }
    }
}

/// The JSON of a 2xx answer as an object; anything else gives the message
/// of the [`invalid_answer`] to return (`HTTP 200 response is an array,
/// expected an object`).
pub fn expect_object(status: u16, json: &Value) -> Result<&Map<String, Value>, String> {
    json.as_object().ok_or_else(|| format!("HTTP {status} response is {}, expected an object", json_kind(json)))
}

/// An `invalid-response` for a 2xx answer that is JSON but of the wrong
/// shape: `message`, the status, the body `text`, and the tokens the call
/// was still billed for, so that the host accounts for them.
pub fn invalid_answer(status: u16, text: &str, usage: Option<Usage>, message: impl Into<String>) -> Failure {
    Failure { usage, ..Failure::new(Class::InvalidResponse, message).with_http_status(status).with_response_body(text) }
}

/// A `no-content` failure for a 2xx answer with nothing to return:
/// `message` says why (the provider's finish reason), with the status, the
/// body and the billed usage. Not retried: the same request gets the same
/// answer.
pub fn no_content(status: u16, text: &str, usage: Option<Usage>, message: impl Into<String>) -> Failure {
    Failure { usage, ..Failure::new(Class::NoContent, message).with_http_status(status).with_response_body(text) }
}

/// `"reason"` for a reason the provider gave, `none` without one: how the
/// messages of [`no_content`] quote a finish reason.
pub(crate) fn quoted(reason: Option<&str>) -> String {
    reason.map_or_else(|| "none".to_owned(), |r| format!("{r:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_answers_keep_status_body_and_usage() {
        assert!(expect_object(200, &serde_json::json!({})).is_ok());
        assert_eq!(
            expect_object(201, &serde_json::json!([1])).unwrap_err(),
            "HTTP 201 response is an array, expected an object"
        );
        let e = invalid_answer(200, "{}", Some(Usage::new(3, 0)), "no choices");
        assert_eq!(e.class, Class::InvalidResponse);
        assert_eq!((e.message.as_str(), e.http_status), ("no choices", Some(200)));
        assert_eq!((e.response_body.as_deref(), e.usage), (Some("{}"), Some(Usage::new(3, 0))));
        let e = no_content(200, "{}", Some(Usage::new(3, 9)), "spent");
        assert_eq!((e.class, e.usage, e.http_status), (Class::NoContent, Some(Usage::new(3, 9)), Some(200)));
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
}
