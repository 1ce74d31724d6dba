//! The host's vocabulary: the values every layer passes around.
//!
//! Failure classes, token usage, jobs and result records depend on nothing
//! else of this crate, so every other module can use them without creating a
//! cycle: `model <- input, results, egress <- sandbox <- run <- cli`. Nothing
//! here does I/O or knows about WebAssembly (the WIT conversions live in
//! `sandbox::wit`).

mod call;
mod chain;
mod class;
pub mod cluster;
mod exchange;
mod job;
mod record;
pub mod shard;
mod usage;

pub use call::{Answer, AttemptInfo, CallFailure, CallOutcome, PluginError, PluginItem, RetryState, StateChange};
pub use chain::error_chain;
pub use class::FailureClass;
pub use exchange::{Exchange, ExchangeFailure};
pub use job::{Job, Params, fingerprint};
pub use record::{
    Fingerprint, HostBlock, ItemStatus, ProviderResponse, ResultError, ResultRecord, body_json, body_value, line_id,
    now_rfc3339, null_json, raw_json, short_digest,
};
pub use usage::TokenUsage;
