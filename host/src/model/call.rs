//! A plugin call as the engine sees it: what goes in, what comes back.
//!
//! These types mirror the WIT contract's records but belong to the host, so
//! the engine does not change when the contract gains a version: the
//! sandbox converts (`sandbox::wit`). They are also what a fake plugin in the
//! engine's tests produces.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Exchange, FailureClass, TokenUsage};

/// One item as a plugin receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginItem {
    pub id: String,
    pub prompt: String,
    /// The job's parameters, as JSON text.
    pub params: String,
    /// The job's context, as JSON text.
    pub context: Option<String>,
    /// The OpenAI Batch `url`, when the job gave one.
    pub endpoint: Option<String>,
}

/// Which attempt this is, and how long it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptInfo {
    /// 1 for the first attempt.
    pub number: u32,
    /// Rate-limited attempts so far.
    pub rate_limit_retries: u32,
    /// Time left until the attempt's deadline.
    pub time_left: Duration,
}

/// A plugin's answer to one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub output: String,
    pub usage: Option<TokenUsage>,
    /// The provider's body, as JSON text.
    pub response_body: Option<String>,
    /// The plugin's metadata (model, finish reason, ...), as JSON text.
    pub metadata: Option<String>,
}

/// A plugin's classified failure of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    pub class: FailureClass,
    pub message: String,
    pub http_status: Option<u16>,
    /// The server's requested wait, as the plugin read it.
    pub retry_after: Option<Duration>,
    /// Tokens the failed attempt was billed for.
    pub usage: Option<TokenUsage>,
    pub response_body: Option<String>,
}

/// The per-item state a plugin keeps across attempts (`on-error` changes it).
pub type RetryState = BTreeMap<String, String>;

/// One change to the retry state: set a key, or remove it (`None`).
pub type StateChange = (String, Option<String>);

/// Why a call produced no answer from the plugin.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallFailure {
    /// The plugin trapped: a panic, an out-of-memory abort, a wasm fault.
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The plugin used up its CPU budget for the call.
    #[error("plugin exceeded its CPU budget of {0:?} per call")]
    CpuLimit(Duration),
    /// The call did not finish in time (CPU or waiting on the network).
    #[error("call did not finish within {0:?}")]
    Timeout(Duration),
    /// The plugin returned more output than the host accepts.
    #[error("plugin output of {0} bytes exceeds the limit of {1} bytes")]
    OutputTooLarge(usize, usize),
    /// The plugin tried to pass more data to the host in one call (an
    /// argument or its result) than the host accepts; nothing was copied.
    #[error("plugin tried to pass more than {0} bytes to the host in one call (output or host-call argument)")]
    TooMuchData(usize),
    /// The plugin tried to keep more state in the host than it may (run
    /// state or retry state); nothing of the write was kept.
    #[error("{0}")]
    StateLimit(String),
}

/// The result of one call plus the HTTP exchanges made during it.
#[derive(Debug)]
pub struct CallOutcome<T> {
    pub result: Result<T, CallFailure>,
    pub exchanges: Vec<Exchange>,
}
