//! A job: one input line, as the engine and the plugin see it.

use serde_json::{Map, Value};

/// One job, as the engine and the plugin see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// 1-based line number in the input file.
    pub line: usize,
    /// `custom_id` or `id`.
    pub id: String,
    /// Free-text prompt (empty for OpenAI Batch lines).
    pub prompt: String,
    /// Provider parameters / the OpenAI Batch `body` (a JSON object).
    pub params: Map<String, Value>,
    /// The caller's opaque context, copied to the result.
    pub context: Option<Value>,
    /// The OpenAI Batch `url` (e.g. `/v1/chat/completions`).
    pub endpoint: Option<String>,
    /// Digest of the job's content (canonical JSON of the fields above,
    /// except the line number), recorded with its result so a resume can
    /// tell whether the answer still belongs to this input.
    pub fingerprint: String,
}

impl Job {
    /// Sets [`Job::fingerprint`] from the other fields.
    pub fn with_fingerprint(mut self) -> Self {
        /// The job's content as canonical JSON: fields in name order, `params`
        /// keys sorted (serde_json's map), serialised by reference.
        #[derive(serde::Serialize)]
        struct Canonical<'a> {
            context: &'a Option<Value>,
            endpoint: &'a Option<String>,
            id: &'a str,
            params: &'a Map<String, Value>,
            prompt: &'a str,
        }
        let canonical = Canonical {
            context: &self.context,
            endpoint: &self.endpoint,
            id: &self.id,
            params: &self.params,
            prompt: &self.prompt,
        };
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        self.fingerprint = super::short_digest(&bytes);
        self
    }
}
