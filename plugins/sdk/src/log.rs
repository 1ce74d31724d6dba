//! Logging through the host's `tracing`, tagged with the plugin and the item
//! being processed. The host truncates long messages.
//!
//! On non-wasm targets (native unit tests) the functions write to stderr
//! instead of calling the host, so code that logs stays testable.

use crate::LogLevel;

/// Logs `message` at `level`.
pub fn log(level: LogLevel, message: impl AsRef<str>) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::batchllm::strategy::host::log(level, message.as_ref());
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {}", message.as_ref());
}

/// Logs at `trace` level.
pub fn trace(message: impl AsRef<str>) {
    log(LogLevel::Trace, message);
}

/// Logs at `debug` level.
pub fn debug(message: impl AsRef<str>) {
    log(LogLevel::Debug, message);
}

/// Logs at `info` level.
pub fn info(message: impl AsRef<str>) {
    log(LogLevel::Info, message);
}

/// Logs at `warn` level.
pub fn warn(message: impl AsRef<str>) {
    log(LogLevel::Warn, message);
}

/// Logs at `error` level.
pub fn error(message: impl AsRef<str>) {
    log(LogLevel::Error, message);
}
