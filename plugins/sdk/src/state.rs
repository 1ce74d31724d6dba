//! Helpers for an item's retry state.
//!
//! `execute` receives the state as a list of key/value entries (empty on the
//! first attempt); `on_error` returns a list of changes the host applies
//! before the next attempt. The state belongs to one item, lives across its
//! attempts and is never shared, so it is the place for per-item facts
//! (globals are not: an instance serves many items and is discarded after a
//! trap).

use crate::{StateChange, StateEntry};

/// The value of `key` in `state`, if set.
pub fn get<'a>(state: &'a [StateEntry], key: &str) -> Option<&'a str> {
    state
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_finds_keys() {
        let state = vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "x".to_owned()),
        ];
        assert_eq!(get(&state, "a"), Some("1"));
        assert_eq!(get(&state, "b"), Some("x"));
        assert_eq!(get(&state, "c"), None);
        assert_eq!(get_u64(&state, "a"), Some(1));
        assert_eq!(get_u64(&state, "b"), None);
        assert_eq!(set("k", "v"), ("k".to_owned(), Some("v".to_owned())));
        assert_eq!(remove("k"), ("k".to_owned(), None));
    }
}
