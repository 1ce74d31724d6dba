//! Helpers for an item's retry state.
//!
//! `execute` receives the state as a list of key/value entries (empty on the
//! first attempt); `on_error` returns a list of changes the host applies
//! before the next attempt. The state belongs to one item, lives across its
//! attempts and is never shared, so it is the place for per-item facts
//! (globals are not: an instance serves many items and is discarded after a
//! trap).

use crate::{StateChange, StateEntry};
use serde_json::{Map, Value};

/// The value of `key` in `state`, if set.
pub fn get<'a>(state: &'a [StateEntry], key: &str) -> Option<&'a str> {
    state.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The value of `key` parsed as an integer; absent or unparsable gives `None`.
pub fn get_u64(state: &[StateEntry], key: &str) -> Option<u64> {
    get(state, key).and_then(|v| v.trim().parse().ok())
}

/// A change that sets `key` to `value`.
pub fn set(key: impl Into<String>, value: impl Into<String>) -> StateChange {
    (key.into(), Some(value.into()))
}

/// A change that removes `key`.
pub fn remove(key: impl Into<String>) -> StateChange {
    (key.into(), None)
}

/// Retry-state keys with this prefix override a top-level body field.
pub const PARAM_OVERRIDE_PREFIX: &str = "param.";

/// Applies every `param.<field>` entry of `state` to `body`: the top-level
/// field `<field>` is set to the entry's value parsed as JSON, or to the
/// value as a string when it is not valid JSON. An adapting `on-error` uses
/// this to change, say, the temperature or the model of the next attempt.
pub fn apply_param_overrides(body: &mut Map<String, Value>, state: &[StateEntry]) {
    for (field, value) in param_overrides(state) {
        let parsed = serde_json::from_str::<Value>(value).unwrap_or_else(|_| Value::String(value.clone()));
        body.insert(field.to_owned(), parsed);
    }
}

/// Whether `state` holds any entry [`apply_param_overrides`] applies.
pub fn has_param_overrides(state: &[StateEntry]) -> bool {
    param_overrides(state).next().is_some()
}

/// The `param.<field>` entries of `state`: each field (never empty) and
/// its value.
fn param_overrides(state: &[StateEntry]) -> impl Iterator<Item = (&str, &String)> {
    state.iter().filter_map(|(key, value)| {
        key.strip_prefix(PARAM_OVERRIDE_PREFIX).filter(|f| !f.is_empty()).map(|field| (field, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_finds_keys() {
        let state = vec![("a".to_owned(), "1".to_owned()), ("b".to_owned(), "x".to_owned())];
        assert_eq!(get(&state, "a"), Some("1"));
        assert_eq!(get(&state, "b"), Some("x"));
        assert_eq!(get(&state, "c"), None);
        assert_eq!(get_u64(&state, "a"), Some(1));
        assert_eq!(get_u64(&state, "b"), None);
        assert_eq!(set("k", "v"), ("k".to_owned(), Some("v".to_owned())));
        assert_eq!(remove("k"), ("k".to_owned(), None));
    }

    #[test]
    fn param_overrides() {
        let state = vec![
            ("param.temperature".to_owned(), "1.1".to_owned()),
            ("param.stop".to_owned(), "not json".to_owned()),
            ("param.".to_owned(), "ignored".to_owned()),
            ("other".to_owned(), "3".to_owned()),
        ];
        let mut body = Map::new();
        body.insert("temperature".into(), 0.into());
        apply_param_overrides(&mut body, &state);
        assert_eq!(body["temperature"], 1.1);
        assert_eq!(body["stop"], "not json");
        assert_eq!(body.len(), 2);
    }
}
