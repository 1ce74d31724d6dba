//! The results file: one JSON line per input line, written as items finish.
//!
//! Each line is an OpenAI Batch output line (`id`, `custom_id`, `response`,
//! `error`), so existing tooling can read it, plus one namespaced block,
//! `batchllm`, with what the host knows: status, output, attempts, normalised
//! usage, latency and the failure class. `error` is non-null exactly when the
//! item failed; `response` is present whenever a provider answered.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::run::FailureClass;
use crate::usage::TokenUsage;

/// One line of the results file.
#[derive(Debug, Clone, Serialize)]
pub struct ResultRecord {
    pub id: String,
    pub custom_id: String,
    pub response: Option<ProviderResponse>,
    pub error: Option<ResultError>,
    pub batchllm: HostBlock,
}

/// The provider's answer, as in OpenAI Batch output.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderResponse {
    pub status_code: u16,
    pub request_id: Option<String>,
    pub body: Value,
}

/// Why an item failed, as in OpenAI Batch output.
#[derive(Debug, Clone, Serialize)]
pub struct ResultError {
    /// The failure class, e.g. `rate_limited`, `auth`, `plugin_trap`.
    pub code: FailureClass,
    pub message: String,
}

/// Terminal status of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Succeeded,
    Failed,
}

/// What the host adds to each line.
#[derive(Debug, Clone, Serialize)]
pub struct HostBlock {
    pub status: ItemStatus,
    /// The plugin's output (e.g. the assistant's text); absent on failure.
    pub output: Option<String>,
    /// Calls to `execute` made for this item.
    pub attempts: u32,
    /// Of those, how many ended rate-limited.
    pub rate_limit_retries: u32,
    /// Tokens over all attempts, failed ones included.
    pub usage: TokenUsage,
    /// From the first attempt's start to the terminal outcome.
    pub latency_ms: f64,
    /// The failure class on failure.
    pub error_class: Option<FailureClass>,
    /// The HTTP status of the last provider answer, if any.
    pub http_status: Option<u16>,
    /// The plugin's metadata (model used, finish reason, ...).
    pub metadata: Option<Value>,
    /// The input's `context` / `metadata`, untouched.
    pub context: Option<Value>,
    /// The input line number.
    pub line: usize,
}

/// The OpenAI-style line id for an item: stable across runs.
pub fn line_id(custom_id: &str) -> String {
    let digest = Sha256::digest(custom_id.as_bytes());
    format!("batch_req_{}", &hex::encode(digest)[..24])
}

/// Parses a plugin-provided JSON body; keeps non-JSON text as a string.
pub fn body_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Errors writing results.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error(
        "{path} already exists and is not empty; pass --overwrite to replace it (resuming lands in a later release)"
    )]
    Exists { path: PathBuf },
    #[error("cannot write results to {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Appends records, flushing each line before it counts as done.
#[derive(Debug)]
pub struct ResultWriter {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    written: u64,
}

impl ResultWriter {
    /// Creates the results file; refuses to clobber a non-empty one unless
    /// `overwrite`.
    pub fn create(path: &Path, overwrite: bool) -> Result<Self, ResultsError> {
        let io = |source| ResultsError::Io { path: path.into(), source };
        if !overwrite && std::fs::metadata(path).map(|m| m.len() > 0).unwrap_or(false) {
            return Err(ResultsError::Exists { path: path.into() });
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::File::create(path).map_err(io)?;
        Ok(ResultWriter { path: path.into(), out: std::io::BufWriter::new(file), written: 0 })
    }

    /// Writes one record as a line and flushes it to the OS.
    pub fn write(&mut self, record: &ResultRecord) -> Result<(), ResultsError> {
        let io = |source| ResultsError::Io { path: self.path.clone(), source };
        serde_json::to_writer(&mut self.out, record).map_err(|e| io(std::io::Error::other(e)))?;
        self.out.write_all(b"\n").map_err(io)?;
        self.out.flush().map_err(io)?;
        self.written += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ResultRecord {
        ResultRecord {
            id: line_id("a"),
            custom_id: "a".into(),
            response: Some(ProviderResponse {
                status_code: 200,
                request_id: Some("req_1".into()),
                body: body_value("{\"x\":1}"),
            }),
            error: None,
            batchllm: HostBlock {
                status: ItemStatus::Succeeded,
                output: Some("hi".into()),
                attempts: 1,
                rate_limit_retries: 0,
                usage: TokenUsage::default(),
                latency_ms: 1.5,
                error_class: None,
                http_status: Some(200),
                metadata: None,
                context: None,
                line: 1,
            },
        }
    }

    #[test]
    fn line_ids_are_stable_and_shaped_like_openai() {
        assert_eq!(line_id("a"), line_id("a"));
        assert_ne!(line_id("a"), line_id("b"));
        assert!(line_id("a").starts_with("batch_req_"));
    }

    #[test]
    fn writes_openai_batch_shaped_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/results.jsonl");
        let mut w = ResultWriter::create(&path, false).expect("create");
        w.write(&record()).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        let v: Value = serde_json::from_str(text.trim()).expect("json");
        assert_eq!(v["custom_id"], "a");
        assert_eq!(v["response"]["status_code"], 200);
        assert_eq!(v["response"]["body"]["x"], 1);
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["batchllm"]["status"], "succeeded");
        assert!(matches!(ResultWriter::create(&path, false), Err(ResultsError::Exists { .. })));
        ResultWriter::create(&path, true).expect("overwrite allowed");
    }
}
