//! What the report shows, gathered from a results file (and an events
//! file) in one streaming pass each, in memory bounded by the run's length
//! in seconds rather than its number of records.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ReportError;
use crate::model::{ItemStatus, TokenUsage};

/// Examples kept per failure class.
const EXAMPLES: usize = 5;
/// Cooldowns drawn at most (the totals count them all).
const MAX_COOLDOWNS: usize = 5_000;
/// Longest example message kept, in characters.
const MESSAGE_CHARS: usize = 300;

/// Totals over every record.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub items: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub attempts: u64,
    pub rate_limit_retries: u64,
    pub usage: TokenUsage,
    pub cost_usd: f64,
    /// Records with tokens but no price.
    pub unpriced: u64,
}

/// Item latency percentiles, in milliseconds, computed as the run summary
/// computes them (so they agree with `--summary-json`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One bar of the latency histogram.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyBucket {
    pub from_ms: f64,
    pub to_ms: f64,
    pub count: u64,
}

/// Tokens and cost of the items answered by one model.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelRow {
    pub model: String,
    pub items: u64,
    pub usage: TokenUsage,
    pub cost_usd: f64,
    pub unpriced: u64,
}

/// Failures of one class, with examples.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailureRow {
    pub class: String,
    pub count: u64,
    /// `(custom_id, message)`.
    pub examples: Vec<(String, String)>,
}

/// What happened in one slice of the run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Slice {
    /// Seconds from the start of the run to the start of the slice.
    pub at: f64,
    pub succeeded: u64,
    pub failed: u64,
    /// Rate-limited answers (429s) in the slice.
    pub rate_limited: u64,
}

/// One coordinated pause.
#[derive(Debug, Clone, Serialize)]
pub struct Cooldown {
    pub scope: String,
    /// Seconds from the start of the run.
    pub at: f64,
    pub seconds: f64,
}

/// Everything the page shows; also embedded in it as JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReportData {
    /// The results file, as named on the command line.
    pub results: String,
    /// The events file, if one was given.
    pub events: Option<String>,
    pub totals: Totals,
    pub latency: Percentiles,
    pub latency_buckets: Vec<LatencyBucket>,
    pub models: Vec<ModelRow>,
    pub failures: Vec<FailureRow>,
    /// Where the time axis comes from: `events` (the run's own clock) or
    /// `records` (each record's `finished_at`).
    pub time_source: &'static str,
    /// Seconds from the first to the last event or record.
    pub elapsed_seconds: f64,
    pub slice_seconds: f64,
    pub timeline: Vec<Slice>,
    /// Rate-limited answers: from the events when given, else the records'
    /// `rate_limit_retries`.
    pub rate_limits: u64,
    pub cooldowns: Vec<Cooldown>,
    pub cooldown_count: u64,
    pub cooldown_seconds: f64,
    /// Records without `finished_at` (written by an older version).
    pub undated: u64,
}

#[derive(Deserialize)]
struct Record {
    custom_id: String,
    #[serde(default)]
    error: Option<RecordError>,
    batchllm: Block,
}

#[derive(Deserialize)]
struct RecordError {
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct Block {
    status: ItemStatus,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    rate_limit_retries: u32,
    #[serde(default)]
    usage: TokenUsage,
    #[serde(default)]
    latency_ms: f64,
    #[serde(default)]
    error_class: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    cost_usd: Option<f64>,
    #[serde(default)]
    finished_at: Option<String>,
}

/// Per-second counts, merged into slices at the end.
#[derive(Default)]
struct Seconds(BTreeMap<i64, Slice>);

impl Seconds {
    fn at(&mut self, second: i64) -> &mut Slice {
        self.0.entry(second).or_default()
    }
}

/// Reads the results (and events) into what the page shows.
pub(super) fn gather(results: &Path, events: Option<&Path>) -> Result<ReportData, ReportError> {
    let mut data = ReportData {
        results: results.display().to_string(),
        events: events.map(|e| e.display().to_string()),
        ..ReportData::default()
    };
    let mut latencies = hdrhistogram::Histogram::<u64>::new(3).map_err(|e| ReportError::Internal(e.to_string()))?;
    let mut models: HashMap<String, ModelRow> = HashMap::new();
    let mut failures: BTreeMap<String, FailureRow> = BTreeMap::new();
    let mut by_record_time = Seconds::default();
    let mut first_ms: Option<i64> = None;
    let mut last_ms: Option<i64> = None;
    let read = |source| ReportError::Read { path: results.into(), source };
    let torn = crate::results::for_each_line(results, read, |line, text| {
        let r: Record = serde_json::from_str(text).map_err(|e| ReportError::NotARecord {
            path: results.into(),
            line,
            reason: e.to_string(),
        })?;
        let b = &r.batchllm;
        let t = &mut data.totals;
        t.items += 1;
        t.attempts += u64::from(b.attempts);
        t.rate_limit_retries += u64::from(b.rate_limit_retries);
        t.usage.add(&b.usage);
        // As the run summary records it: microseconds, at least one.
        let _ = latencies.record((b.latency_ms * 1000.0).max(1.0) as u64);
        match b.cost_usd {
            Some(c) => t.cost_usd += c,
            None if b.usage.total() > 0 => t.unpriced += 1,
            None => {}
        }
        let model = b
            .metadata
            .as_ref()
            .and_then(|m| m.get("model"))
            .and_then(Value::as_str)
            .unwrap_or("(none reported)")
            .to_string();
        let row = models.entry(model.clone()).or_insert_with(|| ModelRow { model, ..ModelRow::default() });
        row.items += 1;
        row.usage.add(&b.usage);
        match b.cost_usd {
            Some(c) => row.cost_usd += c,
            None if b.usage.total() > 0 => row.unpriced += 1,
            None => {}
        }
        let failed = b.status == ItemStatus::Failed;
        if failed {
            t.failed += 1;
            let class = b.error_class.clone().unwrap_or_else(|| "other".into());
            let row = failures.entry(class.clone()).or_insert_with(|| FailureRow { class, ..FailureRow::default() });
            row.count += 1;
            if row.examples.len() < EXAMPLES {
                let message = r.error.as_ref().map(|e| e.message.as_str()).unwrap_or_default();
                row.examples.push((r.custom_id.clone(), message.chars().take(MESSAGE_CHARS).collect()));
            }
        } else {
            t.succeeded += 1;
        }
        match b.finished_at.as_deref().and_then(|s| humantime::parse_rfc3339(s).ok()) {
            Some(when) => {
                let ms = when.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
                first_ms = Some(first_ms.map_or(ms, |f| f.min(ms)));
                last_ms = Some(last_ms.map_or(ms, |l| l.max(ms)));
                let slot = by_record_time.at(ms.div_euclid(1000));
                if failed {
                    slot.failed += 1;
                } else {
                    slot.succeeded += 1;
                }
                slot.rate_limited += u64::from(b.rate_limit_retries);
            }
            None => data.undated += 1,
        }
        Ok(())
    })?;
    if torn {
        tracing::warn!(path = %results.display(), "the results file ends with a torn line (a run was killed); it is left out");
    }
    if !latencies.is_empty() {
        let ms = |v: u64| v as f64 / 1000.0;
        data.latency = Percentiles {
            p50_ms: ms(latencies.value_at_quantile(0.50)),
            p95_ms: ms(latencies.value_at_quantile(0.95)),
            p99_ms: ms(latencies.value_at_quantile(0.99)),
            max_ms: ms(latencies.max()),
        };
        data.latency_buckets = latency_buckets(&latencies);
    }
    let mut models: Vec<ModelRow> = models.into_values().collect();
    models.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd).then(b.items.cmp(&a.items)));
    data.models = models;
    let mut failures: Vec<FailureRow> = failures.into_values().collect();
    failures.sort_by(|a, b| b.count.cmp(&a.count).then(a.class.cmp(&b.class)));
    data.failures = failures;
    data.rate_limits = data.totals.rate_limit_retries;

    match events {
        Some(path) => read_events(path, &mut data)?,
        None => {
            let origin = first_ms.unwrap_or(0).div_euclid(1000);
            data.time_source = "records";
            data.elapsed_seconds = match (first_ms, last_ms) {
                (Some(f), Some(l)) => (l - f) as f64 / 1000.0,
                _ => 0.0,
            };
            let seconds = by_record_time.0.into_iter().map(|(s, slice)| ((s - origin) as f64, slice)).collect();
            fill_timeline(&mut data, seconds);
        }
    }
    Ok(data)
}

/// Log-spaced buckets, four per decade, over the recorded range.
fn latency_buckets(h: &hdrhistogram::Histogram<u64>) -> Vec<LatencyBucket> {
    let quarter = |micros: u64| ((micros.max(1) as f64).log10() * 4.0).floor() as i64;
    let (first, last) = (quarter(h.min()), quarter(h.max()));
    let n = usize::try_from(last - first + 1).unwrap_or(1).clamp(1, 64);
    let edge = |q: i64| 10f64.powf(q as f64 / 4.0) / 1000.0;
    let mut buckets: Vec<LatencyBucket> = (0..n)
        .map(|i| {
            let q = first + i as i64;
            LatencyBucket { from_ms: edge(q), to_ms: edge(q + 1), count: 0 }
        })
        .collect();
    for v in h.iter_recorded() {
        let i = usize::try_from(quarter(v.value_iterated_to()) - first).unwrap_or(0).min(n - 1);
        if let Some(b) = buckets.get_mut(i) {
            b.count += v.count_at_value();
        }
    }
    buckets
}

#[derive(Deserialize)]
struct EventLine {
    #[serde(default)]
    at: f64,
    event: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    seconds: Option<f64>,
    #[serde(default)]
    status: Option<ItemStatus>,
}

/// The run's own clock: throughput from `item_finished`, 429s from
/// `rate_limited`, pauses from `cooldown_started`.
fn read_events(path: &Path, data: &mut ReportData) -> Result<(), ReportError> {
    let mut seconds: BTreeMap<i64, Slice> = BTreeMap::new();
    let mut rate_limits = 0;
    let mut end: f64 = 0.0;
    let read = |source| ReportError::Read { path: path.into(), source };
    crate::results::for_each_line(path, read, |line, text| {
        let e: EventLine = serde_json::from_str(text).map_err(|e| ReportError::NotAnEvent {
            path: path.into(),
            line,
            reason: e.to_string(),
        })?;
        let at = if e.at.is_finite() { e.at.max(0.0) } else { 0.0 };
        end = end.max(at);
        let slot = seconds.entry(at.floor() as i64).or_default();
        match e.event.as_str() {
            "item_finished" => match e.status {
                Some(ItemStatus::Failed) => slot.failed += 1,
                _ => slot.succeeded += 1,
            },
            "rate_limited" => {
                slot.rate_limited += 1;
                rate_limits += 1;
            }
            "cooldown_started" => {
                let secs = e.seconds.filter(|s| s.is_finite() && *s >= 0.0).unwrap_or(0.0);
                data.cooldown_count += 1;
                data.cooldown_seconds += secs;
                end = end.max(at + secs);
                if data.cooldowns.len() < MAX_COOLDOWNS {
                    data.cooldowns.push(Cooldown { scope: e.scope.unwrap_or_default(), at, seconds: secs });
                }
            }
            "run_finished" => end = end.max(e.seconds.unwrap_or(0.0)),
            _ => {}
        }
        Ok(())
    })?;
    data.time_source = "events";
    data.rate_limits = rate_limits;
    data.elapsed_seconds = end;
    fill_timeline(data, seconds.into_iter().map(|(s, slice)| (s as f64, slice)).collect());
    Ok(())
}

/// Merges per-second counts into about 60-120 slices over the run.
fn fill_timeline(data: &mut ReportData, seconds: Vec<(f64, Slice)>) {
    let span = seconds.last().map_or(0.0, |(s, _)| *s + 1.0).max(data.elapsed_seconds).max(1.0);
    let width = nice_step(span / 90.0).max(1.0);
    let count = (span / width).ceil().max(1.0) as usize;
    let mut slices: Vec<Slice> = (0..count).map(|i| Slice { at: i as f64 * width, ..Slice::default() }).collect();
    for (second, s) in seconds {
        let i = ((second / width).floor() as usize).min(count - 1);
        if let Some(slot) = slices.get_mut(i) {
            slot.succeeded += s.succeeded;
            slot.failed += s.failed;
            slot.rate_limited += s.rate_limited;
        }
    }
    data.slice_seconds = width;
    data.timeline = slices;
}

/// 1, 2 or 5 times a power of ten, at least `x`.
pub(super) fn nice_step(x: f64) -> f64 {
    if !x.is_finite() || x <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|s| *s >= x).unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(1.0), 1.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(130.0), 200.0);
        assert_eq!(nice_step(f64::NAN), 1.0);
    }

    fn record(id: &str, status: &str, class: Option<&str>, ms: f64, at: &str, model: &str, cost: f64) -> String {
        serde_json::json!({
            "custom_id": id,
            "error": class.map(|c| serde_json::json!({"code": c, "message": format!("{c} happened")})),
            "batchllm": {
                "status": status, "attempts": 1, "rate_limit_retries": u32::from(class == Some("rate_limited")),
                "usage": {"input_tokens": 10, "output_tokens": 5, "cached_input_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0},
                "latency_ms": ms, "error_class": class, "metadata": {"model": model}, "cost_usd": cost,
                "finished_at": at
            }
        })
        .to_string()
    }

    #[test]
    fn gathers_totals_models_failures_and_a_timeline_from_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("results.jsonl");
        let lines = [
            record("a", "succeeded", None, 100.0, "2026-01-01T00:00:00.000Z", "m1", 0.5),
            record("b", "succeeded", None, 200.0, "2026-01-01T00:00:30.000Z", "m2", 0.25),
            record("c", "failed", Some("rate_limited"), 50.0, "2026-01-01T00:01:00.000Z", "m1", 0.0),
        ];
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        let data = gather(&path, None).expect("gathered");
        assert_eq!((data.totals.items, data.totals.succeeded, data.totals.failed), (3, 2, 1));
        assert_eq!(data.totals.usage.input_tokens, 30);
        assert!((data.totals.cost_usd - 0.75).abs() < 1e-12);
        assert_eq!(data.models[0].model, "m1");
        assert_eq!(data.models[0].items, 2);
        assert_eq!(data.failures[0].class, "rate_limited");
        assert_eq!(data.failures[0].examples[0], ("c".to_string(), "rate_limited happened".to_string()));
        assert_eq!(data.time_source, "records");
        assert_eq!(data.elapsed_seconds, 60.0);
        let done: u64 = data.timeline.iter().map(|s| s.succeeded + s.failed).sum();
        assert_eq!(done, 3);
        assert_eq!(data.rate_limits, 1);
        assert!(data.latency.p50_ms >= 99.0 && data.latency.p50_ms <= 101.0, "{:?}", data.latency);
        let in_buckets: u64 = data.latency_buckets.iter().map(|b| b.count).sum();
        assert_eq!(in_buckets, 3);
    }

    #[test]
    fn events_give_the_time_axis_and_the_cooldowns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let results = dir.path().join("results.jsonl");
        std::fs::write(&results, record("a", "succeeded", None, 1.0, "2026-01-01T00:00:00Z", "m", 0.0) + "\n")
            .expect("write");
        let events = dir.path().join("events.jsonl");
        let lines = [
            r#"{"at":0.0,"event":"run_started","plugin":"p","jobs":1}"#,
            r#"{"at":0.5,"event":"rate_limited","item":"a","scope":"api:443","hint_ms":null}"#,
            r#"{"at":0.5,"event":"cooldown_started","scope":"api:443","seconds":2.0}"#,
            r#"{"at":3.0,"event":"item_finished","item":"a","status":"succeeded"}"#,
            r#"{"at":3.1,"event":"something_new","x":1}"#,
            r#"{"at":3.2,"event":"run_finished","seconds":3.2}"#,
        ];
        std::fs::write(&events, lines.join("\n") + "\n").expect("write");
        let data = gather(&results, Some(&events)).expect("gathered");
        assert_eq!(data.time_source, "events");
        assert_eq!((data.rate_limits, data.cooldown_count), (1, 1));
        assert_eq!(data.cooldown_seconds, 2.0);
        assert_eq!(data.cooldowns[0].scope, "api:443");
        assert!((data.elapsed_seconds - 3.2).abs() < 1e-9);
        assert_eq!(data.timeline.iter().map(|s| s.succeeded).sum::<u64>(), 1);
        std::fs::write(&events, "not json\n").expect("write");
        let e = gather(&results, Some(&events)).expect_err("bad events");
        assert!(e.to_string().contains("events.jsonl:1"), "{e}");
    }
}
