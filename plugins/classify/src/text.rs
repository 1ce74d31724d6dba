//! Small text helpers shared by the SDK and plugins.

use serde_json::Value;

/// The longest prefix of `text` that is at most `max_bytes` bytes and ends on
/// a character boundary.
pub fn truncate(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` cut to at most `max_bytes` bytes, with `…` appended when it was cut.
pub fn excerpt(text: &str, max_bytes: usize) -> String {
    let cut = truncate(text, max_bytes);
    if cut.len() == text.len() { cut.to_owned() } else { format!("{cut}…") }
}

/// `body` decoded as UTF-8, with invalid sequences replaced.
pub fn body_text(body: &[u8]) -> String {
    // Checking first is several times faster than the lossy decoding of a
    // body that is valid, as nearly every body is.
    match std::str::from_utf8(body) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

/// A short English name of a JSON value's kind, for error messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("abc", 3), "abc");
    }
}
