//! The objects of the OpenAI Files and Batches APIs, as the service stores
//! and returns them (field names and status values as the official SDK's
//! types have them), and their errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A batch's status, OpenAI's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Validating,
    Failed,
    InProgress,
    Finalizing,
    Completed,
    Expired,
    Cancelling,
    Cancelled,
}

impl BatchStatus {
    /// Not yet in an end state: counts against `max-active-batches`, and is
    /// picked up again after a restart.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Validating | Self::InProgress | Self::Finalizing | Self::Cancelling)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validating => "validating",
            Self::Failed => "failed",
            Self::InProgress => "in_progress",
            Self::Finalizing => "finalizing",
            Self::Completed => "completed",
            Self::Expired => "expired",
            Self::Cancelling => "cancelling",
            Self::Cancelled => "cancelled",
        }
    }
}

/// `request_counts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u64,
}

/// `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
}

/// One entry of a batch's `errors.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchError {
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    pub line: Option<u64>,
}

/// `errors`: `{object: "list", data}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchErrors {
    pub object: String,
    pub data: Vec<BatchError>,
}

impl BatchErrors {
    pub fn new(data: Vec<BatchError>) -> Self {
        BatchErrors { object: "list".into(), data }
    }
}

/// What this host adds to a batch (the SDK keeps unknown fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchExtra {
    /// US dollars spent, priced as the CLI prices records.
    pub cost_usd: f64,
    /// Failed requests by failure class.
    pub failures: BTreeMap<String, u64>,
    /// The tenant's name (shown on the operator page).
    #[serde(default)]
    pub tenant: String,
}

/// A batch, as `GET /v1/batches/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    pub object: String,
    pub endpoint: String,
    pub model: Option<String>,
    pub errors: Option<BatchErrors>,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: BatchStatus,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub created_at: i64,
    pub in_progress_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub finalizing_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub expired_at: Option<i64>,
    pub cancelling_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub request_counts: RequestCounts,
    pub usage: Option<Usage>,
    pub metadata: Option<Map<String, Value>>,
    pub batchllm: BatchExtra,
}

/// A file, as `GET /v1/files/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileObject {
    pub id: String,
    pub object: String,
    pub bytes: u64,
    pub created_at: i64,
    pub filename: String,
    /// `batch` for uploads, `batch_output` for what a batch wrote.
    pub purpose: String,
    /// `uploaded` or `processed`.
    pub status: String,
    pub expires_at: Option<i64>,
    pub status_details: Option<String>,
}

/// A page of a list: `{object: "list", data, first_id, last_id, has_more}`.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T: Serialize> {
    pub object: &'static str,
    pub data: Vec<T>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

impl<T: Serialize> Page<T> {
    pub fn new(data: Vec<T>, has_more: bool, id: impl Fn(&T) -> String) -> Self {
        let first_id = data.first().map(&id);
        let last_id = data.last().map(&id);
        Page { object: "list", data, first_id, last_id, has_more }
    }
}

/// A new id: `prefix` and 24 random hex digits (96 bits: unguessable, so
/// ids do not leak how many objects other tenants have).
pub fn new_id(prefix: &str) -> String {
    let n: u128 = rand::random();
    format!("{prefix}{:024x}", n >> 32)
}

/// Seconds since the epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialise_as_openai_names() {
        for s in [BatchStatus::Validating, BatchStatus::InProgress, BatchStatus::Cancelling, BatchStatus::Expired] {
            assert_eq!(serde_json::to_value(s).expect("json"), Value::from(s.as_str()));
        }
        assert!(BatchStatus::Finalizing.is_active() && !BatchStatus::Cancelled.is_active());
    }

    #[test]
    fn ids_are_unguessable_and_prefixed() {
        let a = new_id("batch_");
        assert!(a.starts_with("batch_") && a.len() == 30, "{a}");
        assert_ne!(a, new_id("batch_"));
    }
}
