//! The run-wide state shared by every instance of this plugin in this run
//! (for example what `prepare` set up: a provider-side cache id, a resolved
//! model name). Per-item facts belong in the item's retry state instead, see
//! [`crate::state`].

use crate::bindings::batchllm::strategy::host;

/// Reads `key`.
pub fn get(key: &str) -> Option<String> {
    host::run_state_get(key)
}

/// Sets `key` to `value`.
pub fn set(key: &str, value: &str) {
    host::run_state_set(key, Some(value));
}

/// Removes `key`.
pub fn remove(key: &str) {
    host::run_state_set(key, None);
}

/// Atomically replaces `key`'s value with `new` if it currently equals
/// `expected` (`None` = absent); returns whether it did. Use it to make
/// exactly one worker do a run-wide chore.
pub fn compare_and_swap(key: &str, expected: Option<&str>, new: Option<&str>) -> bool {
    host::run_state_compare_and_swap(key, expected, new)
}
