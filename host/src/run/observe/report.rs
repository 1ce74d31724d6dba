//! What a run did, for the summary and the exit code.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::model::FailureClass;
use crate::model::TokenUsage;
use crate::model::{ItemStatus, ResultRecord};
use crate::run::gate::GateStats;
use crate::run::policy::abort::AbortReason;

/// How many failed ids are kept per class for the summary.
const SAMPLE_IDS: usize = 3;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// Every item has a terminal record.
    Completed,
    /// A stop (a signal): items not on the wire have no record.
    Interrupted,
    /// Fail-fast or the batch deadline: every item has a record, the
    /// remaining ones `aborted` / `batch_deadline_exceeded`.
    Aborted,
    /// The host itself failed (the results file could not be written, the
    /// spool could not be read): requests may have been sent; re-run to resume.
    Failed,
}

/// Failures of one class.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassCount {
    pub count: u64,
    pub sample_ids: Vec<String>,
}

/// Latency percentiles of the items that got a record, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Item latencies, in microseconds, in constant memory.
#[derive(Debug, Clone)]
struct LatencyHistogram(hdrhistogram::Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        // 3 significant digits, auto-resizing: exact enough for a summary.
        // `new` fails only for a precision above 5.
        LatencyHistogram(hdrhistogram::Histogram::new(3).expect("3 significant digits is a valid precision"))
    }
}

impl LatencyHistogram {
    fn record(&mut self, ms: f64) {
        let micros = (ms * 1000.0).max(1.0) as u64;
        let _ = self.0.record(micros);
    }

    fn summary(&self) -> Latency {
        if self.0.is_empty() {
            return Latency::default();
        }
        let ms = |q: f64| self.0.value_at_quantile(q) as f64 / 1000.0;
        Latency { p50_ms: ms(0.50), p95_ms: ms(0.95), p99_ms: ms(0.99), max_ms: self.0.max() as f64 / 1000.0 }
    }
}

/// Totals of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub termination: Termination,
    pub abort_reason: Option<AbortReason>,
    /// What failed, when the host did (`termination: failed`).
    pub host_failure: Option<String>,
    /// Items with a kept record from an earlier run (not run again).
    pub already_done: u64,
    /// Of those, how many had failed.
    pub already_failed: u64,
    /// Items in flight when the last run died, recorded `outcome_unknown`.
    pub outcome_unknown: u64,
    /// Items run again because their input line changed since their record.
    pub changed: u64,
    /// Records dropped because their id is no longer in the input (`--prune`).
    pub pruned: u64,
    /// Items that got a record in this run.
    pub items: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, ClassCount>,
    pub attempts: u64,
    pub rate_limit_retries: u64,
    pub usage: TokenUsage,
    /// Dollars spent in this run (items whose model has a price).
    pub cost_usd: f64,
    /// Records whose model has no price.
    pub unpriced: u64,
    /// The date of the shipped price table.
    pub prices_as_of: Option<String>,
    pub http_requests: u64,
    pub egress_denied: u64,
    #[serde(serialize_with = "cooldown")]
    pub cooldown: GateStats,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    /// Item latency percentiles (first attempt start to terminal record).
    pub latency: Latency,
    #[serde(skip)]
    latencies: LatencyHistogram,
}

fn cooldown<S: serde::Serializer>(c: &GateStats, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("cooldown", 3)?;
    st.serialize_field("rate_limits", &c.rate_limits)?;
    st.serialize_field("cooldowns", &c.cooldowns)?;
    st.serialize_field("total_seconds", &c.total_cooldown.as_secs_f64())?;
    st.end()
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for RunReport {
    fn default() -> Self {
        RunReport {
            termination: Termination::Completed,
            abort_reason: None,
            host_failure: None,
            already_done: 0,
            already_failed: 0,
            outcome_unknown: 0,
            changed: 0,
            pruned: 0,
            items: 0,
            succeeded: 0,
            failed: 0,
            failures: BTreeMap::new(),
            attempts: 0,
            rate_limit_retries: 0,
            usage: TokenUsage::default(),
            cost_usd: 0.0,
            unpriced: 0,
            prices_as_of: None,
            http_requests: 0,
            egress_denied: 0,
            cooldown: GateStats::default(),
            elapsed: Duration::ZERO,
            latency: Latency::default(),
            latencies: LatencyHistogram::default(),
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
        self.latencies.record(r.batchllm.latency_ms);
        match r.batchllm.cost_usd {
            Some(c) => self.cost_usd += c,
            None if r.batchllm.usage.total() > 0 => self.unpriced += 1,
            None => {}
        }
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

    /// A report for a run resuming with what `counts` says was kept.
    pub fn resumed(counts: &crate::results::ResumeCounts) -> Self {
        RunReport {
            already_done: counts.kept,
            already_failed: counts.kept_failed,
            outcome_unknown: counts.outcome_unknown,
            changed: counts.changed,
            pruned: counts.pruned,
            ..RunReport::default()
        }
    }

    /// Computes the summary statistics (percentiles) once the run is over.
    pub fn finalize(&mut self) {
        self.latency = self.latencies.summary();
    }

    /// Share of input tokens served from a provider cache.
    pub fn cache_hit_rate(&self) -> f64 {
        if self.usage.input_tokens == 0 {
            0.0
        } else {
            self.usage.cached_input_tokens as f64 / self.usage.input_tokens as f64
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
        if self.already_done > 0 {
            out.push_str(&format!(
                "resumed: {} items already had a record ({} failed) and were not run again\n",
                self.already_done, self.already_failed
            ));
        }
        if self.changed > 0 {
            out.push_str(&format!(
                "{} items ran again because their input line changed since their record\n",
                self.changed
            ));
        }
        if self.pruned > 0 {
            out.push_str(&format!("{} records of ids no longer in the input were dropped (--prune)\n", self.pruned));
        }
        if self.outcome_unknown > 0 {
            out.push_str(&format!(
                "{} items were in flight when the last run stopped: recorded as outcome_unknown, not sent again (--retry-failed sends them)\n",
                self.outcome_unknown
            ));
        }
        if self.items > 0 {
            let l = &self.latency;
            out.push_str(&format!(
                "latency p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n",
                l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
            ));
        }
        for (class, c) in &self.failures {
            out.push_str(&format!("  {class}: {} (e.g. {})\n", c.count, c.sample_ids.join(", ")));
        }
        out.push_str(&format!(
            "attempts {} (rate-limit retries {}), HTTP requests {}, denied {}\n",
            self.attempts, self.rate_limit_retries, self.http_requests, self.egress_denied
        ));
        let c = &self.cooldown;
        out.push_str(&format!(
            "rate limits {}, cooldowns {} ({:.1}s in total)\n",
            c.rate_limits,
            c.cooldowns,
            c.total_cooldown.as_secs_f64()
        ));
        let u = &self.usage;
        out.push_str(&format!(
            "tokens: input {} (cached {}), output {} (reasoning {}); cache hit rate {:.1}%\n",
            u.input_tokens,
            u.cached_input_tokens,
            u.output_tokens,
            u.reasoning_tokens,
            self.cache_hit_rate() * 100.0
        ));
        out.push_str(&format!("cost: ${:.4}", self.cost_usd));
        if let Some(date) = &self.prices_as_of {
            out.push_str(&format!(" (prices as of {date}; override with --prices)"));
        }
        if self.unpriced > 0 {
            out.push_str(&format!(", {} items on a model without a price", self.unpriced));
        }
        match (&self.termination, &self.abort_reason) {
            (Termination::Interrupted, _) => out
                .push_str("\ninterrupted: items that were not on the wire have no result line and run when you resume"),
            (Termination::Failed, _) => out.push_str(&format!(
                "\nthe host failed: {}; re-run the same command to resume",
                self.host_failure.as_deref().unwrap_or("unknown error")
            )),
            (Termination::Aborted, Some(reason)) => out.push_str(&format!("\n{}", reason.message())),
            _ => {}
        }
        out
    }
}
