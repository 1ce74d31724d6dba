//! The request log: what every provider request looked like and how it was
//! answered, for tests to assert on (in process via
//! [`MockServer::requests`](crate::MockServer::requests), out of process via
//! `GET /_mock/requests` or the JSON-lines `log_file`).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::lock;

/// One provider request as the mock saw and answered it.
///
/// Entries are recorded when the answer is decided, before any injected
/// delay, so requests whose client gave up (timeouts, hangs) are logged too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// Arrival order, from 1; also the number in `x-request-id` and the
    /// completion `id`. Never reused, not even after a reset.
    pub seq: u64,
    /// Milliseconds between server start and the arrival of the request body.
    pub at_ms: u64,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request target: the path plus the query string, if any.
    pub path: String,
    /// All request headers in arrival order (names lower-cased by HTTP; values
    /// verbatim, lossily decoded if not UTF-8), so tests can check which
    /// credentials reached which server.
    pub headers: Vec<(String, String)>,
    /// The request body as JSON; a JSON string holding the raw text when it
    /// is not JSON; `null` when empty.
    pub body: Value,
    /// Status code answered.
    pub status: u16,
    /// The `x-request-id` answered, `req_mock_<seq>`.
    pub request_id: String,
    /// The response body as JSON, or a JSON string holding the raw text when
    /// it is deliberately malformed.
    pub response_body: Value,
    /// The prompt the faults were keyed on: the text of the last user message
    /// (chat), or the inputs joined with `\n` (embeddings).
    pub prompt: Option<String>,
    /// The `usage` object billed: present for answered completions and
    /// embeddings, including malformed ones.
    pub usage: Option<Value>,
}

/// When requests were answered 2xx, since server start or the last reset:
/// how a client's progress looked from the provider's side (a client
/// stalled by its own cooldowns shows as a long gap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pace {
    /// Requests answered 2xx.
    pub succeeded: u64,
    /// When the last one was decided, counted from start or reset.
    pub last: Option<Duration>,
    /// The longest time without a 2xx answer: between two of them, or from
    /// start or reset to the first.
    pub longest_gap: Duration,
}

/// Per-status counts and the pace, under one lock.
#[derive(Debug)]
struct Tally {
    by_status: BTreeMap<u16, u64>,
    since: Instant,
    pace: Pace,
}

impl Tally {
    fn new(since: Instant) -> Self {
        Self { by_status: BTreeMap::new(), since, pace: Pace::default() }
    }

    fn count(&mut self, status: u16, now: Instant) {
        *self.by_status.entry(status).or_default() += 1;
        if !(200..300).contains(&status) {
            return;
        }
        let at = now.saturating_duration_since(self.since);
        let gap = at.saturating_sub(self.pace.last.unwrap_or_default());
        self.pace.longest_gap = self.pace.longest_gap.max(gap);
        self.pace.last = Some(at);
        self.pace.succeeded += 1;
    }
}

/// The shared, append-only log (plus its optional JSON-lines file).
#[derive(Debug)]
pub(crate) struct RequestLog {
    started: Instant,
    seq: AtomicU64,
    entries: Mutex<Vec<LoggedRequest>>,
    file: Option<Mutex<File>>,
    /// Whether entries are kept (see `MockConfig::keep_requests`).
    keep: bool,
    /// Requests answered per status code and the pace, kept in either mode.
    tally: Mutex<Tally>,
}

impl RequestLog {
    /// An empty log; appends to `file` (created if missing) when given.
    ///
    /// With `keep` false, only the per-status counts are kept (and the file,
    /// if any, is still written).
    pub(crate) fn open(file: Option<&Path>, keep: bool) -> anyhow::Result<Self> {
        let file = match file {
            Some(path) => Some(Mutex::new(open_append(path)?)),
            None => None,
        };
        let (started, seq, entries) = (Instant::now(), AtomicU64::new(0), Mutex::default());
        Ok(Self { started, seq, entries, file, keep, tally: Mutex::new(Tally::new(started)) })
    }

    /// Numbers a newly arrived request: its `seq` and `at_ms`.
    pub(crate) fn arrival(&self) -> (u64, u64) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let at_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        (seq, at_ms)
    }

    /// Whether full entries are wanted; when not, callers need not build
    /// them and call [`count`](Self::count) only.
    pub(crate) fn wants_entries(&self) -> bool {
        self.keep || self.file.is_some()
    }

    /// Counts one request answered with `status`.
    pub(crate) fn count(&self, status: u16) {
        lock(&self.tally).count(status, Instant::now());
    }

    /// Requests answered per status code since the last clear.
    pub(crate) fn counts(&self) -> BTreeMap<u16, u64> {
        lock(&self.tally).by_status.clone()
    }

    /// The pace of 2xx answers since start or the last clear.
    pub(crate) fn pace(&self) -> Pace {
        lock(&self.tally).pace
    }

    /// Counts `entry`, and appends it to the log (when kept) and to the log
    /// file.
    pub(crate) fn record(&self, entry: LoggedRequest) {
        self.count(entry.status);
        if let Some(file) = &self.file
            && let Err(err) = write_line(&mut lock(file), &entry)
        {
            tracing::warn!(%err, "could not append to the request log file");
        }
        if self.keep {
            lock(&self.entries).push(entry);
        }
    }

    /// A copy of the log, ordered by `seq`.
    pub(crate) fn snapshot(&self) -> Vec<LoggedRequest> {
        let mut entries = lock(&self.entries).clone();
        entries.sort_by_key(|entry| entry.seq);
        entries
    }

    /// Empties the in-memory log (the log file keeps its lines).
    pub(crate) fn clear(&self) {
        lock(&self.entries).clear();
        *lock(&self.tally) = Tally::new(Instant::now());
    }
}

fn open_append(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open request log file {}", path.display()))
}

/// Writes `entry` as one JSON line in a single write, then flushes.
fn write_line(file: &mut File, entry: &LoggedRequest) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(entry)?;
    line.push(b'\n');
    file.write_all(&line)?;
    file.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> LoggedRequest {
        LoggedRequest {
            seq,
            at_ms: 0,
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            headers: vec![("authorization".into(), "Bearer k".into())],
            body: Value::Null,
            status: 200,
            request_id: format!("req_mock_{seq}"),
            response_body: Value::Null,
            prompt: Some("hi".into()),
            usage: None,
        }
    }

    #[test]
    fn numbers_records_sorts_and_clears() {
        let log = RequestLog::open(None, true).expect("in-memory log");
        assert_eq!(log.arrival().0, 1);
        assert_eq!(log.arrival().0, 2);
        log.record(entry(2));
        log.record(entry(1));
        let seqs: Vec<_> = log.snapshot().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2]);
        log.clear();
        assert!(log.snapshot().is_empty());
        assert_eq!(log.arrival().0, 3, "seq is never reused");
    }

    #[test]
    fn counts_without_keeping_entries() {
        let log = RequestLog::open(None, false).expect("in-memory log");
        assert!(!log.wants_entries());
        log.count(200);
        log.count(200);
        log.record(LoggedRequest { status: 429, ..entry(3) });
        assert!(log.snapshot().is_empty(), "nothing kept");
        assert_eq!(log.counts(), BTreeMap::from([(200, 2), (429, 1)]));
        log.clear();
        assert!(log.counts().is_empty());
    }

    #[test]
    fn pace_tracks_the_longest_gap_between_successes() {
        let t0 = Instant::now();
        let mut tally = Tally::new(t0);
        let ms = Duration::from_millis;
        tally.count(200, t0 + ms(100));
        tally.count(429, t0 + ms(200));
        tally.count(429, t0 + ms(2000));
        tally.count(200, t0 + ms(1500));
        tally.count(200, t0 + ms(1600));
        assert_eq!(tally.pace, Pace { succeeded: 3, last: Some(ms(1600)), longest_gap: ms(1400) });
        let mut late = Tally::new(t0);
        late.count(200, t0 + ms(3000));
        assert_eq!(late.pace.longest_gap, ms(3000), "from the start to the first success");
    }

    #[test]
    fn writes_json_lines() {
        let path = std::env::temp_dir().join(format!("batchllm-mock-log-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = RequestLog::open(Some(&path), true).expect("log file");
        log.record(entry(1));
        log.record(entry(2));
        let text = std::fs::read_to_string(&path).expect("readable");
        let _ = std::fs::remove_file(&path);
        let parsed: Vec<LoggedRequest> =
            text.lines().map(|line| serde_json::from_str(line).expect("one entry per line")).collect();
        assert_eq!(parsed, [entry(1), entry(2)]);
    }
}
