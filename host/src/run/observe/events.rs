//! `--events FILE`: the run's lifecycle as JSON lines, for audits and tools.
//!
//! One object per line with `at` (seconds since the run started), `event`,
//! and the event's fields, from the typed [`Event`]: `run_started`,
//! `attempt` (item, number, outcome, class, HTTP status, duration),
//! `rate_limited` and `cooldown_started` (scope, wait), `rate_estimate`
//! (the limit learned for a scope: requests, tokens, window), `item_finished`
//! (item, status, class, attempts), `aborted` (reason), `stopping` (why),
//! `run_finished` (termination and totals). Writes are buffered; the file is
//! flushed at the end of the run and every second. The file is created
//! 0600: it names items and may quote provider messages.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use tokio::time::Instant;

use crate::model::{FailureClass, ItemStatus};

/// One lifecycle event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    RunStarted {
        plugin: &'a str,
        plugin_sha256: &'a str,
        jobs: usize,
        already_done: usize,
        concurrency: usize,
    },
    Attempt {
        item: &'a str,
        number: u32,
        outcome: &'static str,
        class: Option<FailureClass>,
        http_status: Option<u16>,
        ms: f64,
        input_tokens: u64,
        output_tokens: u64,
    },
    RateLimited {
        item: &'a str,
        scope: &'a str,
        hint_ms: Option<u64>,
    },
    CooldownStarted {
        scope: &'a str,
        seconds: f64,
    },
    /// The limit learned for a scope that announces none changed.
    RateEstimate {
        scope: &'a str,
        requests: Option<f64>,
        tokens: Option<f64>,
        window_seconds: Option<f64>,
    },
    ItemFinished {
        item: &'a str,
        line: usize,
        status: ItemStatus,
        class: Option<FailureClass>,
        attempts: u32,
        ms: f64,
        cost_usd: Option<f64>,
    },
    Aborted {
        reason: String,
    },
    Stopping {
        reason: &'a str,
    },
    RunFinished {
        termination: super::Termination,
        items: u64,
        succeeded: u64,
        failed: u64,
        cost_usd: f64,
        seconds: f64,
    },
}

/// Where events go; a no-op when the user asked for none.
#[derive(Debug)]
pub struct EventLog {
    out: Option<Mutex<Output>>,
    started: Instant,
}

impl Default for EventLog {
    /// A disabled log.
    fn default() -> Self {
        EventLog { out: None, started: Instant::now() }
    }
}

#[derive(Debug)]
struct Output {
    file: std::io::BufWriter<std::fs::File>,
    last_flush: Instant,
}

/// The events file could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot write events to {path}: {source}")]
pub struct EventsError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// A line with the time stamp before the event's own fields.
#[derive(Serialize)]
struct Line<'a> {
    at: f64,
    #[serde(flatten)]
    event: &'a Event<'a>,
}

impl EventLog {
    /// An event log writing to `path`, or a disabled one.
    pub fn open(path: Option<&Path>) -> Result<Self, EventsError> {
        let now = Instant::now();
        let out = match path {
            Some(p) => {
                let file =
                    crate::results::create_private(p).map_err(|source| EventsError { path: p.into(), source })?;
                Some(Mutex::new(Output { file: std::io::BufWriter::new(file), last_flush: now }))
            }
            None => None,
        };
        Ok(EventLog { out, started: now })
    }

    /// Whether events are written at all (to skip building them).
    pub fn enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Writes one event.
    pub fn emit(&self, event: &Event<'_>) {
        let Some(out) = &self.out else { return };
        // Stamp the time under the lock, so lines are in time order.
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let line = Line { at: (now - self.started).as_secs_f64(), event };
        let written = serde_json::to_writer(&mut out.file, &line).is_ok() && out.file.write_all(b"\n").is_ok();
        if !written {
            tracing::warn!("could not write an event");
        }
        if now - out.last_flush >= std::time::Duration::from_secs(1) {
            let _ = out.file.flush();
            out.last_flush = now;
        }
    }

    /// Flushes buffered events (end of run).
    pub fn flush(&self) {
        if let Some(out) = &self.out {
            let _ = out.lock().unwrap_or_else(|p| p.into_inner()).file.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn writes_one_json_object_per_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let log = EventLog::open(Some(&path)).expect("open");
        log.emit(&Event::CooldownStarted { scope: "api:443", seconds: 1.5 });
        log.emit(&Event::Aborted { reason: "r".into() });
        log.flush();
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "cooldown_started");
        assert_eq!(lines[0]["scope"], "api:443");
        assert_eq!(lines[0]["seconds"], 1.5);
        assert!(lines[1]["at"].as_f64().expect("at") >= 0.0);
        assert!(!EventLog::open(None).expect("no file").enabled());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "private: {mode:o}");
        }
    }
}
