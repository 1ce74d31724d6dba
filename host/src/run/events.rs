//! `--events FILE`: the run's lifecycle as JSON lines, for audits and tools.
//!
//! One object per line with `at` (seconds since the run started), `event`,
//! and the event's fields: `run_started`, `attempt` (item, number, outcome,
//! class, HTTP status, duration), `rate_limited` and `cooldown_started`
//! (scope, wait), `item_finished` (item, status, class, attempts),
//! `aborted` (reason), `run_finished` (termination and totals). Writes are
//! buffered; the file is flushed at the end of the run and every second.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Value, json};

/// Where events go; a no-op when the user asked for none.
#[derive(Debug)]
pub struct EventLog {
    out: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    started: Instant,
    last_flush: Mutex<Instant>,
}

/// The events file could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot write events to {path}: {source}")]
pub struct EventsError {
    path: PathBuf,
    source: std::io::Error,
}

impl EventLog {
    /// An event log writing to `path`, or a disabled one.
    pub fn open(path: Option<&Path>) -> Result<Self, EventsError> {
        let out = match path {
            Some(p) => {
                let file = crate::results::private_file()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(p)
                    .map_err(|source| EventsError { path: p.into(), source })?;
                Some(Mutex::new(std::io::BufWriter::new(file)))
            }
            None => None,
        };
        let now = Instant::now();
        Ok(EventLog { out, started: now, last_flush: Mutex::new(now) })
    }

    /// Whether events are written at all (to skip building them).
    pub fn enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Writes one event; `fields` must be a JSON object.
    pub fn emit(&self, event: &str, fields: Value) {
        let Some(out) = &self.out else { return };
        // Stamp the time under the lock, so lines are in time order.
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        let mut line = json!({ "at": self.started.elapsed().as_secs_f64(), "event": event });
        if let (Some(obj), Value::Object(extra)) = (line.as_object_mut(), fields) {
            obj.extend(extra);
        }
        let written = serde_json::to_writer(&mut *out, &line).is_ok() && out.write_all(b"\n").is_ok();
        if !written {
            tracing::warn!(event, "could not write an event");
        }
        let mut last = self.last_flush.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed().as_secs() >= 1 {
            let _ = out.flush();
            *last = Instant::now();
        }
    }

    /// Flushes buffered events (end of run).
    pub fn flush(&self) {
        if let Some(out) = &self.out {
            let _ = out.lock().unwrap_or_else(|p| p.into_inner()).flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_json_object_per_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let log = EventLog::open(Some(&path)).expect("open");
        log.emit("attempt", json!({"item": "a", "number": 1}));
        log.emit("run_finished", json!({}));
        log.flush();
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "attempt");
        assert_eq!(lines[0]["item"], "a");
        assert!(lines[1]["at"].as_f64().expect("at") >= 0.0);
        assert!(!EventLog::open(None).expect("no file").enabled());
    }
}
