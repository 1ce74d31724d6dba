//! The key/value state plugins keep in the host, bounded.
//!
//! Two kinds, both owned by the host: the run-wide state
//! (`host.run-state-*`, shared by every instance for the whole run) and each
//! item's retry state (the changes `on-error` returns, handed to the item's
//! next attempts). Either lives in host memory for as long as the run or the
//! item does, out of reach of the per-instance memory limit, and per-call
//! limits (hostcall data) do not bound what accumulates over many calls. So
//! each has its own ceiling on keys, on bytes of keys and values together,
//! and on one value ([`StateLimits`]).
//!
//! What happens at the ceiling differs by kind, because the contract gives
//! them different channels:
//! - `run-state-set` and `run-state-compare-and-swap` return nothing that
//!   could say "refused", and a plugin that went on believing a value was
//!   stored would misbehave later; a write that does not fit therefore fails
//!   the call (the instance traps with a [`StateLimitError`]);
//! - `on-error` returns its changes as a whole: changes that do not fit are
//!   refused as a whole (the item keeps its state as it was, and the host
//!   logs a warning); the host still decides whether there is a next attempt.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// Ceilings for one kind of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Keys at once.
    pub max_keys: usize,
    /// Bytes of all keys and values together.
    pub max_bytes: usize,
    /// Bytes of one value.
    pub max_value_bytes: usize,
}

/// Which state a limit belongs to, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    Run,
    Retry,
}

impl std::fmt::Display for StateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StateKind::Run => "run state",
            StateKind::Retry => "retry state",
        })
    }
}

/// A write that would take a state over its limits; nothing was changed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StateLimitError {
    #[error("{kind} over its limit: the value for key `{key}` has {size} bytes, more than {max} bytes per value")]
    ValueTooLarge { kind: StateKind, key: String, size: usize, max: usize },
    #[error("{kind} over its limit: {keys} keys, more than {max}")]
    TooManyKeys { kind: StateKind, keys: usize, max: usize },
    #[error("{kind} over its limit: {bytes} bytes of keys and values, more than {max}")]
    TooManyBytes { kind: StateKind, bytes: usize, max: usize },
}

/// A key the plugin chose, safe to print and short.
fn printable_key(key: &str) -> String {
    let mut out: String = key.chars().flat_map(char::escape_default).take(65).collect();
    if out.chars().count() > 64 {
        out = out.chars().take(64).collect();
        out.push('…');
    }
    out
}

impl StateLimits {
    /// Checks a state that would hold `keys` keys and `bytes` bytes after
    /// setting `key` to a value of `value` bytes (`None` for removals).
    fn check(
        &self,
        kind: StateKind,
        key: &str,
        value: Option<usize>,
        keys: usize,
        bytes: usize,
    ) -> Result<(), StateLimitError> {
        if let Some(size) = value.filter(|&size| size > self.max_value_bytes) {
            return Err(StateLimitError::ValueTooLarge {
                kind,
                key: printable_key(key),
                size,
                max: self.max_value_bytes,
            });
        }
        if keys > self.max_keys {
            return Err(StateLimitError::TooManyKeys { kind, keys, max: self.max_keys });
        }
        if bytes > self.max_bytes {
            return Err(StateLimitError::TooManyBytes { kind, bytes, max: self.max_bytes });
        }
        Ok(())
    }
}

/// The run-wide state (`host.run-state-*`), shared by every instance.
#[derive(Debug, Default)]
pub struct RunState {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, String>,
    /// Bytes of every key and value in `map`.
    bytes: usize,
}

impl Entries {
    /// Sets or removes `key` if the result fits `limits`.
    fn put(&mut self, limits: &StateLimits, key: String, value: Option<String>) -> Result<(), StateLimitError> {
        let old = self.map.get(&key).map(|v| key.len().saturating_add(v.len()));
        let new = value.as_ref().map(|v| key.len().saturating_add(v.len()));
        let keys = match (old, new) {
            (None, Some(_)) => self.map.len().saturating_add(1),
            (Some(_), None) => self.map.len().saturating_sub(1),
            _ => self.map.len(),
        };
        let bytes = self.bytes.saturating_sub(old.unwrap_or(0)).saturating_add(new.unwrap_or(0));
        if new.is_some() {
            limits.check(StateKind::Run, &key, value.as_ref().map(String::len), keys, bytes)?;
        }
        match value {
            Some(v) => self.map.insert(key, v),
            None => self.map.remove(&key),
        };
        self.bytes = bytes;
        Ok(())
    }
}

impl RunState {
    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.lock().map.get(key).cloned()
    }

    /// Sets (`Some`) or removes (`None`) `key`, if the state stays within
    /// `limits`.
    pub fn set(&self, limits: &StateLimits, key: String, value: Option<String>) -> Result<(), StateLimitError> {
        self.lock().put(limits, key, value)
    }

    /// Replaces `key`'s value with `new` if it equals `expected`; `Ok(false)`
    /// when it did not, an error when `new` does not fit.
    pub fn compare_and_swap(
        &self,
        limits: &StateLimits,
        key: String,
        expected: Option<String>,
        new: Option<String>,
    ) -> Result<bool, StateLimitError> {
        let mut entries = self.lock();
        if entries.map.get(&key) != expected.as_ref() {
            return Ok(false);
        }
        entries.put(limits, key, new)?;
        Ok(true)
    }

    /// Keys and bytes held.
    pub fn usage(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.map.len(), entries.bytes)
    }
}

/// Checks that an item's retry state `state` with `changes` applied (in
/// order; `None` removes) stays within `limits`.
pub fn check_retry_changes(
    limits: &StateLimits,
    state: &[(String, String)],
    changes: &[(String, Option<String>)],
) -> Result<(), StateLimitError> {
    let mut sizes: BTreeMap<&str, usize> =
        state.iter().map(|(k, v)| (k.as_str(), k.len().saturating_add(v.len()))).collect();
    for (key, value) in changes {
        match value {
            Some(v) => {
                if v.len() > limits.max_value_bytes {
                    return limits.check(StateKind::Retry, key, Some(v.len()), 0, 0);
                }
                sizes.insert(key.as_str(), key.len().saturating_add(v.len()));
            }
            None => {
                sizes.remove(key.as_str());
            }
        }
    }
    let bytes = sizes.values().fold(0usize, |sum, &n| sum.saturating_add(n));
    limits.check(StateKind::Retry, "", None, sizes.len(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: StateLimits = StateLimits { max_keys: 3, max_bytes: 20, max_value_bytes: 8 };

    #[test]
    fn run_state_counts_keys_bytes_and_values_and_refuses_whole_writes() {
        let state = RunState::default();
        state.set(&LIMITS, "a".into(), Some("12345678".into())).expect("fits");
        let err = state.set(&LIMITS, "b".into(), Some("123456789".into())).expect_err("value too large");
        assert!(matches!(err, StateLimitError::ValueTooLarge { size: 9, max: 8, .. }), "{err}");
        state.set(&LIMITS, "b".into(), Some("1234".into())).expect("fits");
        assert_eq!(state.usage(), (2, 14));
        let err = state.set(&LIMITS, "c".into(), Some("123456".into())).expect_err("too many bytes");
        assert!(matches!(err, StateLimitError::TooManyBytes { bytes: 21, max: 20, .. }), "{err}");
        assert_eq!(state.get("c"), None, "nothing of a refused write is kept");
        state.set(&LIMITS, "c".into(), Some("1".into())).expect("fits");
        let err = state.set(&LIMITS, "d".into(), Some("".into())).expect_err("too many keys");
        assert!(matches!(err, StateLimitError::TooManyKeys { keys: 4, max: 3, .. }), "{err}");
        // Replacing and removing free room.
        state.set(&LIMITS, "a".into(), Some("1".into())).expect("smaller");
        state.set(&LIMITS, "b".into(), None).expect("removal");
        assert_eq!(state.usage(), (2, 4));
        state.set(&LIMITS, "d".into(), Some("12345678".into())).expect("fits now");
        state.set(&LIMITS, "nope".into(), None).expect("removing nothing is fine");
        assert_eq!(state.usage(), (3, 13));
    }

    #[test]
    fn compare_and_swap_is_bounded_too() {
        let state = RunState::default();
        assert!(state.compare_and_swap(&LIMITS, "k".into(), None, Some("v".into())).expect("fits"));
        assert!(!state.compare_and_swap(&LIMITS, "k".into(), None, Some("w".into())).expect("no swap"));
        let err = state.compare_and_swap(&LIMITS, "k".into(), Some("v".into()), Some("x".repeat(9))).expect_err("big");
        assert!(matches!(err, StateLimitError::ValueTooLarge { .. }));
        assert_eq!(state.get("k").as_deref(), Some("v"));
    }

    #[test]
    fn retry_changes_are_judged_on_the_state_they_would_make() {
        let state = vec![("a".to_string(), "1234567".to_string())];
        let set = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
        check_retry_changes(&LIMITS, &state, &[set("b", "1234567")]).expect("16 bytes");
        let err = check_retry_changes(&LIMITS, &state, &[set("b", "1234567"), set("c", "1234")]).expect_err("bytes");
        assert!(matches!(err, StateLimitError::TooManyBytes { kind: StateKind::Retry, .. }), "{err}");
        check_retry_changes(&LIMITS, &state, &[("a".into(), None), set("b", "1234567"), set("c", "1234")])
            .expect("the removal makes room");
        let err = check_retry_changes(&LIMITS, &[], &[set("a", ""), set("b", ""), set("c", ""), set("d", "")])
            .expect_err("keys");
        assert!(err.to_string().starts_with("retry state over its limit: 4 keys"), "{err}");
        let err = check_retry_changes(&LIMITS, &[], &[set("k\n", &"x".repeat(100))]).expect_err("value");
        assert!(err.to_string().contains("`k\\n`"), "{err}");
    }
}
