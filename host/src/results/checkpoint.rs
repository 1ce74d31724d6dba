//! The results file as the checkpoint: resuming a run.
//!
//! Re-running the same command skips every item that already has a terminal
//! record, so a run killed at any moment (even by SIGKILL) resumes without
//! duplicates: a record is one line written in one `write`, so a crash can
//! only tear the line in progress, which is repaired (cut) here.
//!
//! Each record carries a fingerprint of its input line, the plugin and the
//! plugin configuration. A resume against a changed input line, plugin or
//! configuration would mix answers to different questions in one file, so it
//! is refused with a clear message unless `--force`.
//!
//! Records of items that never really ran (`aborted`,
//! `batch_deadline_exceeded`) are dropped and their items run again;
//! `--retry-failed` drops every failed record. Dropping rewrites the file
//! atomically (temporary file, then rename).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ResultWriter, ResultsError, journal_path, read_journal};
use crate::model::{FailureClass, Fingerprint, HostBlock, ItemStatus, ResultError, ResultRecord, line_id};

/// How to treat an existing results file.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResumeOptions {
    /// Discard existing results.
    pub overwrite: bool,
    /// Run failed items again.
    pub retry_failed: bool,
    /// Resume even when fingerprints differ.
    pub force: bool,
    /// fsync each record.
    pub fsync: bool,
}

/// What identifies this run's answers, besides each input line.
#[derive(Debug, Clone)]
pub struct RunIdentity {
    pub plugin: String,
    pub config: String,
}

/// Why a results file cannot be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(transparent)]
    Write(#[from] ResultsError),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: not a batchllm result record ({reason}); move the file away or pass --overwrite")]
    Damaged { path: PathBuf, line: usize, reason: String },
    #[error(
        "{path}:{line}: a second record for `{id}`; the file was edited or merged by hand; move it away or pass --overwrite"
    )]
    Duplicate { path: PathBuf, line: usize, id: String },
    #[error(
        "{path} was written for different inputs: {what}; resume with the same input, plugin and --plugin-config, pass --force to keep those records anyway, or --overwrite to start over"
    )]
    Mismatch { path: PathBuf, what: String },
}

/// The part of a record a resume needs.
#[derive(Debug, Deserialize)]
struct Stored {
    custom_id: String,
    batchllm: StoredBlock,
}

#[derive(Debug, Deserialize)]
struct StoredBlock {
    status: ItemStatus,
    error_class: Option<FailureClass>,
    fingerprint: Fingerprint,
}

/// One earlier record, without its (possibly large) text.
#[derive(Debug)]
struct Earlier {
    line: usize,
    status: ItemStatus,
    class: Option<FailureClass>,
    fingerprint: Fingerprint,
    /// Whether the current input has this id.
    in_input: bool,
}

/// The records of an existing results file, read before the input is
/// validated so every input line can be compared with its record.
#[derive(Debug)]
pub struct Previous {
    path: PathBuf,
    by_id: HashMap<String, Earlier>,
    torn: bool,
    /// Ids the in-flight journal says were sent.
    journal: HashSet<String>,
    /// Sent items without a record: `(id, line, input fingerprint)`.
    unknown: Vec<(String, usize, String)>,
}

impl Previous {
    /// Reads `path`; `None` when the run starts fresh (no file, an empty
    /// file, or `--overwrite`).
    pub fn read(path: &Path, options: ResumeOptions) -> Result<Option<Self>, ResumeError> {
        if options.overwrite {
            return Ok(None);
        }
        let journal = read_journal(&journal_path(path))
            .map_err(|source| ResumeError::Read { path: journal_path(path), source })?;
        let exists = std::fs::metadata(path).map(|m| m.len() > 0).unwrap_or(false);
        let mut previous = if exists {
            scan(path)?
        } else if !journal.is_empty() {
            Previous {
                path: path.into(),
                by_id: HashMap::new(),
                torn: false,
                journal: HashSet::new(),
                unknown: Vec::new(),
            }
        } else {
            return Ok(None);
        };
        previous.journal = journal;
        Ok(Some(previous))
    }

    /// Compares a job of the current input with its earlier record; returns
    /// the reason when they do not match (checked unless `--force`).
    pub fn check_job(&mut self, id: &str, line: usize, fingerprint: &str) -> Option<String> {
        if !self.by_id.contains_key(id) && self.journal.contains(id) {
            self.unknown.push((id.to_string(), line, fingerprint.to_string()));
        }
        let earlier = self.by_id.get_mut(id)?;
        earlier.in_input = true;
        (earlier.fingerprint.input != fingerprint)
            .then(|| format!("the input line of `{id}` changed since it was answered"))
    }

    /// Checks what the whole file must share with this run: the plugin, its
    /// configuration, and ids that are all in the input.
    fn check_run(&self, identity: &RunIdentity) -> Result<(), ResumeError> {
        let mismatch = |what: String| Err(ResumeError::Mismatch { path: self.path.clone(), what });
        for (id, e) in &self.by_id {
            if e.fingerprint.plugin != identity.plugin {
                return mismatch(format!(
                    "`{id}` was answered by plugin {}, this run uses {}",
                    e.fingerprint.plugin, identity.plugin
                ));
            }
            if e.fingerprint.config != identity.config {
                return mismatch(format!("`{id}` was answered with another plugin configuration"));
            }
            if !e.in_input {
                return mismatch(format!("`{id}` is not in the input file"));
            }
        }
        Ok(())
    }

    /// The mismatch error for a job `check_job` refused.
    pub fn mismatch(&self, what: String) -> ResumeError {
        ResumeError::Mismatch { path: self.path.clone(), what }
    }
}

/// What was kept of an existing results file, and the writer after it.
#[derive(Debug)]
pub struct Checkpoint {
    /// Ids whose records are kept; their items are not run again.
    pub done: HashSet<String>,
    /// Of those, how many are failures.
    pub done_failed: u64,
    /// Records dropped to run their items again.
    pub dropped: u64,
    /// Whether a torn last line was cut.
    pub repaired: bool,
    /// Items in flight when the last run died, recorded `outcome_unknown`.
    pub outcome_unknown: u64,
    /// The writer, positioned after the kept records.
    pub writer: ResultWriter,
}

impl Checkpoint {
    /// Opens `path` for this run: fresh, or resuming from `previous` (whose
    /// jobs were checked during validation).
    pub fn open(
        path: &Path,
        options: ResumeOptions,
        identity: &RunIdentity,
        previous: Option<Previous>,
    ) -> Result<Self, ResumeError> {
        let Some(previous) = previous else {
            let writer = ResultWriter::open(path, true, options.fsync)?;
            return Ok(Checkpoint {
                done: HashSet::new(),
                done_failed: 0,
                dropped: 0,
                repaired: false,
                outcome_unknown: 0,
                writer,
            });
        };
        if !options.force {
            previous.check_run(identity)?;
        }
        let mut done = HashSet::new();
        let mut kept_lines = HashSet::new();
        let mut done_failed = 0;
        for (id, e) in previous.by_id {
            let replay = match e.status {
                ItemStatus::Succeeded => false,
                ItemStatus::Failed => options.retry_failed || is_replayable(e.class),
            };
            if replay {
                continue;
            }
            if e.status == ItemStatus::Failed {
                done_failed += 1;
            }
            kept_lines.insert(e.line);
            done.insert(id);
        }
        let total = if previous.path.exists() { scan_count(&previous.path)? } else { 0 };
        let dropped = (total - kept_lines.len()) as u64;
        if dropped > 0 || previous.torn {
            rewrite(path, &kept_lines)?;
        }
        if previous.torn {
            tracing::warn!(path = %path.display(), "cut a torn last line left by an interrupted run");
        }
        let mut writer = ResultWriter::open(path, false, options.fsync)?;
        let mut outcome_unknown = 0;
        // Sent but unrecorded: the provider may have answered. Not sent again
        // unless the user asks (--retry-failed runs them).
        if !options.retry_failed {
            for (id, line, input) in previous.unknown {
                let fingerprint =
                    Fingerprint { input, plugin: identity.plugin.clone(), config: identity.config.clone() };
                writer.write(&outcome_unknown_record(&id, line, fingerprint))?;
                done.insert(id);
                done_failed += 1;
                outcome_unknown += 1;
            }
        }
        if outcome_unknown > 0 {
            tracing::warn!(
                items = outcome_unknown,
                "items were in flight when the last run stopped; recorded as outcome_unknown, not sent again (--retry-failed sends them)"
            );
        }
        Ok(Checkpoint { done, done_failed, dropped, repaired: previous.torn, outcome_unknown, writer })
    }
}

/// The record of an item that was in flight when a run died.
fn outcome_unknown_record(id: &str, line: usize, fingerprint: Fingerprint) -> ResultRecord {
    ResultRecord {
        id: line_id(id),
        custom_id: id.to_string(),
        response: None,
        error: Some(ResultError {
            code: FailureClass::OutcomeUnknown,
            message: "the process stopped while this item's request was in flight; the provider may have answered \
                      (and billed) it, so it was not sent again; run with --retry-failed to send it"
                .into(),
        }),
        batchllm: HostBlock {
            status: ItemStatus::Failed,
            output: None,
            attempts: 0,
            rate_limit_retries: 0,
            usage: crate::model::TokenUsage::default(),
            latency_ms: 0.0,
            error_class: Some(FailureClass::OutcomeUnknown),
            http_status: None,
            metadata: None,
            context: None,
            line,
            fingerprint,
            cost_usd: None,
        },
    }
}

/// Records that never ran their item to an answer.
fn is_replayable(class: Option<FailureClass>) -> bool {
    matches!(class, Some(FailureClass::Aborted | FailureClass::BatchDeadlineExceeded))
}

/// Calls `each(line number, text)` for every complete, non-blank line;
/// returns whether the last line was torn (no newline).
fn for_each_record(
    path: &Path,
    mut each: impl FnMut(usize, &str) -> Result<(), ResumeError>,
) -> Result<bool, ResumeError> {
    let read = |source| ResumeError::Read { path: path.into(), source };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(read)? == 0 {
            return Ok(false);
        }
        line += 1;
        if !buf.ends_with(b"\n") {
            // The last line of a killed run: never counted, so cut it
            // (bytes: the cut may have split a character).
            return Ok(true);
        }
        let text = std::str::from_utf8(&buf).map_err(|e| ResumeError::Damaged {
            path: path.into(),
            line,
            reason: format!("not UTF-8 text: {e}"),
        })?;
        let text = text.trim_end_matches(['\n', '\r']);
        if !text.trim().is_empty() {
            each(line, text)?;
        }
    }
}

fn scan(path: &Path) -> Result<Previous, ResumeError> {
    let mut by_id: HashMap<String, Earlier> = HashMap::new();
    let torn = for_each_record(path, |line, text| {
        let stored: Stored = serde_json::from_str(text).map_err(|e| ResumeError::Damaged {
            path: path.into(),
            line,
            reason: e.to_string(),
        })?;
        let earlier = Earlier {
            line,
            status: stored.batchllm.status,
            class: stored.batchllm.error_class,
            fingerprint: stored.batchllm.fingerprint,
            in_input: false,
        };
        if by_id.insert(stored.custom_id.clone(), earlier).is_some() {
            return Err(ResumeError::Duplicate { path: path.into(), line, id: stored.custom_id });
        }
        Ok(())
    })?;
    Ok(Previous { path: path.into(), by_id, torn, journal: HashSet::new(), unknown: Vec::new() })
}

fn scan_count(path: &Path) -> Result<usize, ResumeError> {
    let mut n = 0;
    for_each_record(path, |_, _| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// Keeps only the records on `kept` lines, atomically.
fn rewrite(path: &Path, kept: &HashSet<usize>) -> Result<(), ResumeError> {
    let write = |source| ResumeError::Write(ResultsError::Io { path: path.into(), source });
    let tmp = path.with_extension(format!("resume-tmp{}", std::process::id()));
    let file = super::private_file().write(true).create(true).truncate(true).open(&tmp).map_err(write)?;
    let mut out = std::io::BufWriter::new(file);
    let mut failure = None;
    for_each_record(path, |line, text| {
        if kept.contains(&line) && failure.is_none() {
            failure = out.write_all(text.as_bytes()).and_then(|()| out.write_all(b"\n")).err();
        }
        Ok(())
    })?;
    if let Some(e) = failure {
        return Err(write(e));
    }
    let file = out.into_inner().map_err(|e| write(e.into_error()))?;
    file.sync_all().map_err(write)?;
    std::fs::rename(&tmp, path).map_err(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> RunIdentity {
        RunIdentity { plugin: "p".into(), config: "c".into() }
    }

    fn line(id: &str, status: &str, class: Option<&str>, input: &str) -> String {
        serde_json::json!({
            "custom_id": id,
            "batchllm": {"status": status, "error_class": class, "fingerprint": {"input": input, "plugin": "p", "config": "c"}}
        })
        .to_string()
    }

    fn inputs(ids: &[&str]) -> Vec<(String, String)> {
        ids.iter().map(|id| (id.to_string(), format!("in-{id}"))).collect()
    }

    /// Reads `path`, checks every input job like validation does, opens.
    fn open(
        path: &Path,
        options: ResumeOptions,
        identity: &RunIdentity,
        inputs: &[(String, String)],
    ) -> Result<Checkpoint, ResumeError> {
        let mut previous = Previous::read(path, options)?;
        if let Some(p) = previous.as_mut() {
            for (id, fp) in inputs {
                if let Some(what) = p.check_job(id, 1, fp)
                    && !options.force
                {
                    return Err(p.mismatch(what));
                }
            }
        }
        Checkpoint::open(path, options, identity, previous)
    }

    fn file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("results.jsonl");
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn keeps_answers_and_drops_what_never_ran_or_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "{}\n{}\n{}\n{{\"custom_id\":\"d\",\"batch",
            line("a", "succeeded", None, "in-a"),
            line("b", "failed", Some("auth"), "in-b"),
            line("c", "failed", Some("aborted"), "in-c"),
        );
        let path = file(&dir, &text);
        let cp = open(&path, ResumeOptions::default(), &identity(), &inputs(&["a", "b", "c", "d"])).expect("resumable");
        assert_eq!(cp.done, ["a", "b"].iter().map(|s| s.to_string()).collect());
        assert_eq!(cp.done_failed, 1);
        assert_eq!(cp.dropped, 1);
        assert!(cp.repaired);
        let after = std::fs::read_to_string(&path).expect("read");
        assert_eq!(after.lines().count(), 2, "{after}");
        assert!(after.ends_with('\n'));
    }

    /// A kill can cut the last record inside a multi-byte character (an
    /// output in any language but English): it is a torn line like any
    /// other, cut, not "cannot read: stream did not contain valid UTF-8".
    #[test]
    fn a_torn_line_cut_inside_a_character_is_repaired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let whole = line("b", "succeeded", None, "in-b").replace("in-b", "in-b-\u{e9}t\u{e9}");
        let torn = &whole.as_bytes()[..whole.find('\u{e9}').expect("an é") + 1];
        let mut bytes = format!("{}\n", line("a", "succeeded", None, "in-a")).into_bytes();
        bytes.extend_from_slice(torn);
        let path = dir.path().join("results.jsonl");
        std::fs::write(&path, &bytes).expect("write");
        let cp = open(&path, ResumeOptions::default(), &identity(), &inputs(&["a", "b"])).expect("resumable");
        assert!(cp.repaired);
        assert_eq!(cp.done, ["a"].iter().map(|s| s.to_string()).collect());
        assert_eq!(
            std::fs::read_to_string(&path).expect("UTF-8 again"),
            format!("{}\n", line("a", "succeeded", None, "in-a"))
        );
    }

    /// A complete line that is not UTF-8 is damage, reported at its line.
    #[test]
    fn a_complete_line_that_is_not_utf8_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bytes = format!("{}\n", line("a", "succeeded", None, "in-a")).into_bytes();
        bytes.extend_from_slice(b"{\"custom_id\":\"\xff\"}\n");
        let path = dir.path().join("results.jsonl");
        std::fs::write(&path, &bytes).expect("write");
        let err = open(&path, ResumeOptions::default(), &identity(), &inputs(&["a"])).expect_err("damaged");
        assert!(err.to_string().contains("results.jsonl:2: not a batchllm result record (not UTF-8"), "{err}");
    }

    #[test]
    fn retry_failed_drops_every_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file(
            &dir,
            &format!("{}\n{}\n", line("a", "succeeded", None, "in-a"), line("b", "failed", Some("auth"), "in-b")),
        );
        let options = ResumeOptions { retry_failed: true, ..ResumeOptions::default() };
        let cp = open(&path, options, &identity(), &inputs(&["a", "b"])).expect("ok");
        assert_eq!(cp.done.len(), 1);
        assert!(cp.done.contains("a"));
    }

    #[test]
    fn mismatches_are_refused_unless_forced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file(&dir, &format!("{}\n", line("a", "succeeded", None, "old-input")));
        let err = open(&path, ResumeOptions::default(), &identity(), &inputs(&["a"])).expect_err("changed");
        assert!(err.to_string().contains("the input line of `a` changed"), "{err}");
        let other = RunIdentity { plugin: "q".into(), config: "c".into() };
        let path = file(&dir, &format!("{}\n", line("a", "succeeded", None, "in-a")));
        let err = open(&path, ResumeOptions::default(), &other, &inputs(&["a"])).expect_err("plugin");
        assert!(err.to_string().contains("answered by plugin p"), "{err}");
        let forced = ResumeOptions { force: true, ..ResumeOptions::default() };
        open(&path, forced, &other, &inputs(&["a"])).expect("forced");
    }

    #[test]
    fn damaged_and_duplicated_files_are_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file(&dir, "hello\n");
        let err = open(&path, ResumeOptions::default(), &identity(), &inputs(&[])).expect_err("damaged");
        assert!(err.to_string().contains("results.jsonl:1: not a batchllm result record"), "{err}");
        let l = line("a", "succeeded", None, "in-a");
        let path = file(&dir, &format!("{l}\n{l}\n"));
        let err = open(&path, ResumeOptions::default(), &identity(), &inputs(&["a"])).expect_err("dup");
        assert!(err.to_string().contains(":2: a second record for `a`"), "{err}");
    }

    #[test]
    fn overwrite_and_missing_files_start_fresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file(&dir, "junk\n");
        let options = ResumeOptions { overwrite: true, ..ResumeOptions::default() };
        let cp = open(&path, options, &identity(), &inputs(&[])).expect("fresh");
        assert!(cp.done.is_empty());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");
        let cp = open(&dir.path().join("new/results.jsonl"), ResumeOptions::default(), &identity(), &inputs(&[]));
        assert!(cp.expect("fresh").done.is_empty());
    }
}
