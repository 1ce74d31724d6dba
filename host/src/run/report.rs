//! What a run did, for the summary and the exit code.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::FailureClass;
use crate::results::{ItemStatus, ResultRecord};
use crate::usage::TokenUsage;

/// How many failed ids are kept per class for the summary.
const SAMPLE_IDS: usize = 3;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// Every item has a terminal record.
    Completed,
    /// Ctrl-C: items not yet started have no record.
    Interrupted,
}

/// Failures of one class.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassCount {
    pub count: u64,
    pub sample_ids: Vec<String>,
}

/// Totals of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub termination: Termination,
    pub items: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, ClassCount>,
    pub attempts: u64,
    pub rate_limit_retries: u64,
    pub usage: TokenUsage,
    pub http_requests: u64,
    pub egress_denied: u64,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for RunReport {
    fn default() -> Self {
        RunReport {
            termination: Termination::Completed,
            items: 0,
            succeeded: 0,
            failed: 0,
            failures: BTreeMap::new(),
            attempts: 0,
            rate_limit_retries: 0,
            usage: TokenUsage::default(),
            http_requests: 0,
            egress_denied: 0,
            elapsed: Duration::ZERO,
        }
    }
}

impl RunReport {
    /// Counts one written record.
    pub fn record(&mut self, r: &ResultRecord) {
        self.items += 1;
        self.attempts += u64::from(r.batchllm.attempts);
        self.rate_limit_retries += u64::from(r.batchllm.rate_limit_retries);
        self.usage.add(&r.batchllm.usage);
        match r.batchllm.status {
            ItemStatus::Succeeded => self.succeeded += 1,
            ItemStatus::Failed => {
                self.failed += 1;
                let class = r.batchllm.error_class.unwrap_or(FailureClass::Other);
                let entry = self.failures.entry(class.code().to_string()).or_default();
                entry.count += 1;
                if entry.sample_ids.len() < SAMPLE_IDS {
                    entry.sample_ids.push(r.custom_id.clone());
                }
            }
        }
    }

    /// Items per second over the run.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.items as f64 / secs } else { 0.0 }
    }

    /// A short human summary for stderr.
    pub fn human(&self) -> String {
        let mut out = format!(
            "{} items: {} succeeded, {} failed in {:.2}s ({:.1} items/s)\n",
            self.items,
            self.succeeded,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.throughput()
        );
        for (class, c) in &self.failures {
            out.push_str(&format!("  {class}: {} (e.g. {})\n", c.count, c.sample_ids.join(", ")));
        }
        out.push_str(&format!(
            "attempts {} (rate-limit retries {}), HTTP requests {}, denied {}\n",
            self.attempts, self.rate_limit_retries, self.http_requests, self.egress_denied
        ));
        let u = &self.usage;
        out.push_str(&format!(
            "tokens: input {} (cached {}), output {} (reasoning {})",
            u.input_tokens, u.cached_input_tokens, u.output_tokens, u.reasoning_tokens
        ));
        if self.termination == Termination::Interrupted {
            out.push_str("\ninterrupted: items not started have no result line");
        }
        out
    }
}
