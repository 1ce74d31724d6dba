//! The results file as the checkpoint: resuming a run.
//!
//! Re-running the same command skips every item that already has a terminal
//! record, so a run killed at any moment (even by SIGKILL) resumes without
//! duplicates: a record is one line written in one `write`, so a crash can
//! only tear the line (or gzip member) in progress, which is repaired here.
//!
//! Each record carries a fingerprint of its input line, the plugin and the
//! plugin configuration. A resume *follows edits to the input*: a line whose
//! content changed since it was answered is run again (its old record is
//! dropped), the others keep their records, and the run reports how many of
//! each. What is refused, because it would mix answers to different
//! questions in one file:
//! - records made by another plugin or plugin configuration (every answer
//!   would be stale: `--overwrite` starts over, `--force` keeps them);
//! - records for ids that are not in the input at all (likely the results
//!   file of another input: `--prune` drops them, `--force` keeps them);
//! - with `--strict-resume`, any changed line (the behaviour before edits
//!   were followed).
//!
//! Records of items that never really ran (`aborted`,
//! `batch_deadline_exceeded`) are dropped and their items run again;
//! `--retry-failed` drops every failed record. Dropping rewrites the file
//! atomically (temporary file, then rename); a kept record whose line moved
//! (lines inserted or deleted above it) gets its new line number then.
//!
//! The decision for each input line is made while the input is read
//! ([`Previous::judge`]), so the run's spool holds exactly what must be
//! sent; the checks over the whole file follow ([`Checkpoint::open`]).

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::lines::{Replacement, for_each_line};
use super::{ResultWriter, ResultsError, journal_path, read_journal};
use crate::model::{FailureClass, Fingerprint, ItemStatus, ResultRecord};

/// How to treat an existing results file.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResumeOptions {
    /// Discard existing results.
    pub overwrite: bool,
    /// Run failed items again.
    pub retry_failed: bool,
    /// Keep every record even when fingerprints differ or ids are gone.
    pub force: bool,
    /// Refuse a resume when an input line changed (instead of re-running it).
    pub strict: bool,
    /// Drop records whose id is no longer in the input (instead of refusing).
    pub prune: bool,
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
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a batchllm result record ({reason}); move the file away or pass --overwrite")]
    Damaged { path: PathBuf, line: usize, reason: String },
    #[error(
        "{path}:{line}: a second record for `{id}`; the file was edited or merged by hand; move it away or pass --overwrite"
    )]
    Duplicate { path: PathBuf, line: usize, id: String },
    #[error(
        "{path} was written with another plugin or plugin configuration: {what}; resume with the same --plugin and --plugin-config, pass --force to keep those records anyway, or --overwrite to start over"
    )]
    Identity { path: PathBuf, what: String },
    #[error(
        "{path}: the input line of `{id}` changed since it was answered, and --strict-resume refuses changed lines; leave out --strict-resume to run the changed lines again, pass --force to keep the old answers, or --overwrite to start over"
    )]
    Changed { path: PathBuf, id: String },
    #[error(
        "{path} has records for {count} ids that are not in the input (e.g. `{example}`): is it the results file of another input? Use another --output, pass --prune to drop those records, --force to keep them, or --overwrite to start over"
    )]
    NotInInput { path: PathBuf, count: u64, example: String },
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
    #[serde(default)]
    line: usize,
}

/// What became of an earlier record during this resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Its id was not (yet) seen in the input.
    Unseen,
    /// Kept: its item is not run again.
    Kept,
    /// Dropped: the input line changed; the item runs again.
    Changed,
    /// Dropped: a failure run again (`--retry-failed`, or never really ran).
    Replayed,
}

/// One earlier record, without its (possibly large) text: 24 bytes plus
/// the id, so a resume of a million records stays small (line numbers are
/// kept in 32 bits; beyond 4 billion lines they saturate, which only makes
/// such a line look moved).
#[derive(Debug)]
struct Earlier {
    /// Its line in the results file.
    row: u32,
    /// The input line it answered (`batchllm.line`), and the line its id is
    /// on now.
    input_line: u32,
    now_line: u32,
    status: ItemStatus,
    class: Option<FailureClass>,
    /// The input fingerprint, as a number (see [`fingerprint_key`]).
    input: u64,
    fate: Fate,
}

/// A fingerprint as 8 bytes: the 16 hex digits it is made of, or a hash of
/// whatever else a hand-edited file holds there.
fn fingerprint_key(fingerprint: &str) -> u64 {
    match u64::from_str_radix(fingerprint, 16) {
        Ok(n) if fingerprint.len() == 16 => n,
        _ => {
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(fingerprint)
        }
    }
}

/// What to do with one input line, decided while the input is read.
#[derive(Debug)]
pub enum Judgement {
    /// Send it.
    Run,
    /// Its record is kept (or it gets an `outcome_unknown` one): do not send.
    Keep,
    /// Refuse the resume (`--strict-resume` and a changed line).
    Refuse(ResumeError),
}

/// The records of an existing results file, read before the input so every
/// input line can be judged against its record as it is read.
#[derive(Debug)]
pub struct Previous {
    path: PathBuf,
    options: ResumeOptions,
    identity: RunIdentity,
    by_id: HashMap<String, Earlier>,
    torn: bool,
    /// Records written by another plugin or configuration: how many, and
    /// what the first one says.
    other_identity: Option<(u64, String)>,
    /// Ids the in-flight journal says were sent.
    journal: HashSet<String>,
    /// Sent items without a record: `(id, line, input fingerprint)`.
    unknown: Vec<(String, usize, String)>,
}

impl Previous {
    /// Reads `path`; `None` when the run starts fresh (no file, an empty
    /// file, or `--overwrite`).
    pub fn read(path: &Path, options: ResumeOptions, identity: &RunIdentity) -> Result<Option<Self>, ResumeError> {
        if options.overwrite {
            return Ok(None);
        }
        let journal = read_journal(&journal_path(path))
            .map_err(|source| ResumeError::Read { path: journal_path(path), source })?;
        let exists = std::fs::metadata(path).map(|m| m.len() > 0).unwrap_or(false);
        let mut previous = if exists {
            scan(path, options, identity)?
        } else if !journal.is_empty() {
            Previous {
                path: path.into(),
                options,
                identity: identity.clone(),
                by_id: HashMap::new(),
                torn: false,
                other_identity: None,
                journal: HashSet::new(),
                unknown: Vec::new(),
            }
        } else {
            return Ok(None);
        };
        previous.journal = journal;
        Ok(Some(previous))
    }

    /// Judges a job of the current input against its earlier record.
    pub fn judge(&mut self, id: &str, line: usize, fingerprint: &str) -> Judgement {
        let options = self.options;
        let Some(earlier) = self.by_id.get_mut(id) else {
            if self.journal.contains(id) && !options.retry_failed {
                // Sent but unrecorded: the provider may have answered. Not
                // sent again unless the user asks (--retry-failed).
                self.unknown.push((id.to_string(), line, fingerprint.to_string()));
                return Judgement::Keep;
            }
            return Judgement::Run;
        };
        if earlier.fate != Fate::Unseen {
            // The id is in the input twice: the duplicate check refuses it.
            return Judgement::Keep;
        }
        earlier.now_line = line32(line);
        let changed = earlier.input != fingerprint_key(fingerprint);
        if changed && !options.force {
            if options.strict {
                return Judgement::Refuse(ResumeError::Changed { path: self.path.clone(), id: id.to_string() });
            }
            earlier.fate = Fate::Changed;
            return Judgement::Run;
        }
        let replay = match earlier.status {
            ItemStatus::Succeeded => false,
            ItemStatus::Failed => options.retry_failed || is_replayable(earlier.class),
        };
        if replay {
            earlier.fate = Fate::Replayed;
            Judgement::Run
        } else {
            earlier.fate = Fate::Kept;
            Judgement::Keep
        }
    }
}

/// What a resume kept, dropped and repaired, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResumeCounts {
    /// Records kept: their items are not run again.
    pub kept: u64,
    /// Of those, how many are failures.
    pub kept_failed: u64,
    /// Records dropped because their input line changed: run again.
    pub changed: u64,
    /// Failures dropped to run again (`--retry-failed`, or cut by an abort).
    pub replayed: u64,
    /// Records dropped because their id left the input (`--prune`).
    pub pruned: u64,
    /// Items in flight when the last run died, recorded `outcome_unknown`.
    pub outcome_unknown: u64,
    /// Kept records whose line number was updated (lines moved).
    pub renumbered: u64,
    /// Whether a torn tail was cut.
    pub repaired: bool,
}

/// What was kept of an existing results file, and the writer after it.
#[derive(Debug)]
pub struct Checkpoint {
    pub counts: ResumeCounts,
    /// The writer, positioned after the kept records.
    pub writer: ResultWriter,
}

impl Checkpoint {
    /// Opens `path` for this run: fresh, or resuming from `previous`, whose
    /// records every input line was judged against.
    pub fn open(path: &Path, options: ResumeOptions, previous: Option<Previous>) -> Result<Self, ResumeError> {
        let Some(previous) = previous else {
            let writer = ResultWriter::open(path, true, options.fsync)?;
            return Ok(Checkpoint { counts: ResumeCounts::default(), writer });
        };
        let mut counts = ResumeCounts { repaired: previous.torn, ..ResumeCounts::default() };
        if !options.force {
            if let Some((_, what)) = &previous.other_identity {
                return Err(ResumeError::Identity { path: previous.path.clone(), what: what.clone() });
            }
            let gone = previous.by_id.iter().filter(|(_, e)| e.fate == Fate::Unseen);
            if !options.prune {
                let count = gone.clone().count() as u64;
                if let Some((id, _)) = gone.min_by_key(|(_, e)| e.row) {
                    return Err(ResumeError::NotInInput { path: previous.path.clone(), count, example: id.clone() });
                }
            }
        }
        // (results-file row, the new input line number or 0 when it did not
        // move) of every kept record, sorted by row for the rewrite.
        let mut kept: Vec<(u32, u32)> = Vec::new();
        for e in previous.by_id.values() {
            match e.fate {
                Fate::Kept => {}
                // Only with --force or --prune: kept or dropped as asked.
                Fate::Unseen if options.force => {}
                Fate::Unseen => {
                    counts.pruned += 1;
                    continue;
                }
                Fate::Changed => {
                    counts.changed += 1;
                    continue;
                }
                Fate::Replayed => {
                    counts.replayed += 1;
                    continue;
                }
            }
            counts.kept += 1;
            if e.status == ItemStatus::Failed {
                counts.kept_failed += 1;
            }
            let moved = e.fate == Fate::Kept && e.now_line != e.input_line && e.input_line != 0;
            counts.renumbered += u64::from(moved);
            kept.push((e.row, if moved { e.now_line } else { 0 }));
        }
        drop(previous.by_id);
        let dropped = counts.changed + counts.replayed + counts.pruned;
        if dropped > 0 || counts.repaired || counts.renumbered > 0 {
            kept.sort_unstable();
            rewrite(path, &kept)?;
        }
        drop(kept);
        if counts.repaired {
            tracing::warn!(path = %path.display(), "cut a torn last line left by an interrupted run");
        }
        let mut writer = ResultWriter::open(path, false, options.fsync)?;
        let RunIdentity { plugin, config } = previous.identity;
        for (id, line, input) in previous.unknown {
            let fingerprint = Fingerprint { input, plugin: plugin.clone(), config: config.clone() };
            writer.write(&ResultRecord::outcome_unknown(&id, line, fingerprint, IN_FLIGHT_AT_DEATH))?;
            counts.kept_failed += 1;
            counts.outcome_unknown += 1;
        }
        counts.kept += counts.outcome_unknown;
        if counts.outcome_unknown > 0 {
            tracing::warn!(
                items = counts.outcome_unknown,
                "items were in flight when the last run stopped; recorded as outcome_unknown, not sent again (--retry-failed sends them)"
            );
        }
        Ok(Checkpoint { counts, writer })
    }
}

/// Why an item that was in flight when a run died ends `outcome_unknown`.
const IN_FLIGHT_AT_DEATH: &str = "the process stopped while this item's request was in flight; the provider may have answered \
                      (and billed) it, so it was not sent again; run with --retry-failed to send it";

/// Records that never ran their item to an answer.
fn is_replayable(class: Option<FailureClass>) -> bool {
    matches!(class, Some(FailureClass::Aborted | FailureClass::BatchDeadlineExceeded))
}

fn scan(path: &Path, options: ResumeOptions, identity: &RunIdentity) -> Result<Previous, ResumeError> {
    let mut by_id: HashMap<String, Earlier> = HashMap::new();
    let mut other_identity: Option<(u64, String)> = None;
    let read = |source: std::io::Error| match super::NotText::in_error(&source) {
        Some(n) => ResumeError::Damaged { path: path.into(), line: n.line, reason: "not UTF-8 text".into() },
        None => ResumeError::Read { path: path.into(), source },
    };
    let torn = for_each_line(path, read, |row, text| {
        let stored: Stored = serde_json::from_str(text).map_err(|e| ResumeError::Damaged {
            path: path.into(),
            line: row,
            reason: e.to_string(),
        })?;
        let b = stored.batchllm;
        let differs = if b.fingerprint.plugin != identity.plugin {
            Some(format!(
                "`{}` was answered by plugin {}, this run uses {}",
                stored.custom_id, b.fingerprint.plugin, identity.plugin
            ))
        } else if b.fingerprint.config != identity.config {
            Some(format!("`{}` was answered with another plugin configuration", stored.custom_id))
        } else {
            None
        };
        if let Some(what) = differs {
            let entry = other_identity.get_or_insert((0, what));
            entry.0 += 1;
        }
        let earlier = Earlier {
            row: line32(row),
            input_line: line32(b.line),
            now_line: line32(b.line),
            status: b.status,
            class: b.error_class,
            input: fingerprint_key(&b.fingerprint.input),
            fate: Fate::Unseen,
        };
        if by_id.insert(stored.custom_id.clone(), earlier).is_some() {
            return Err(ResumeError::Duplicate { path: path.into(), line: row, id: stored.custom_id });
        }
        Ok(())
    })?;
    Ok(Previous {
        path: path.into(),
        options,
        identity: identity.clone(),
        by_id,
        torn,
        other_identity,
        journal: HashSet::new(),
        unknown: Vec::new(),
    })
}

/// A line number in 32 bits, saturating.
fn line32(line: usize) -> u32 {
    u32::try_from(line).unwrap_or(u32::MAX)
}

/// A kept record with its line number updated. The host block is the last
/// field of a record and `line` is followed there only by `finished_at`,
/// `fingerprint` (hex digits) and `cost_usd`, none of which can hold the
/// text `,"line":`, so its last occurrence is the host block's own.
fn renumber(text: &str, line: usize) -> Option<String> {
    const KEY: &str = ",\"line\":";
    let at = text.rfind(KEY)?.checked_add(KEY.len())?;
    let rest = text.get(at..)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    if digits == 0 {
        return None;
    }
    Some(format!("{}{line}{}", text.get(..at)?, rest.get(digits..)?))
}

/// Keeps only the records on `kept` rows (sorted; renumbering those with a
/// new line), atomically.
fn rewrite(path: &Path, kept: &[(u32, u32)]) -> Result<(), ResumeError> {
    let write = |source| ResumeError::Write(ResultsError::Io { path: path.into(), source });
    let mut out = Replacement::create(path, "resume").map_err(write)?;
    let mut failure = None;
    let read = |source| ResumeError::Read { path: path.into(), source };
    let mut next = kept.iter().peekable();
    let scanned = for_each_line(path, read, |row, text| {
        let row = line32(row);
        while next.next_if(|(r, _)| *r < row).is_some() {}
        let Some((_, moved)) = next.next_if(|(r, _)| *r == row) else { return Ok(()) };
        if failure.is_none() {
            let renumbered = (*moved != 0).then(|| renumber(text, *moved as usize)).flatten();
            failure = out.line(renumbered.as_deref().unwrap_or(text).as_bytes()).err();
        }
        Ok(())
    });
    match (scanned, failure) {
        (Ok(_), None) => out.commit().map_err(write),
        (Err(e), _) => {
            out.abandon();
            Err(e)
        }
        (Ok(_), Some(e)) => {
            out.abandon();
            Err(write(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> RunIdentity {
        RunIdentity { plugin: "p".into(), config: "c".into() }
    }

    /// A record as the host writes it (the fields a resume reads, in order).
    fn line(id: &str, status: &str, class: Option<&str>, input: &str) -> String {
        record(id, status, class, input, 1)
    }

    fn record(id: &str, status: &str, class: Option<&str>, input: &str, at: usize) -> String {
        format!(
            r#"{{"custom_id":{},"batchllm":{{"status":"{status}","error_class":{},"context":{{"line":7}},"line":{at},"finished_at":null,"fingerprint":{{"input":"{input}","plugin":"p","config":"c"}},"cost_usd":null}}}}"#,
            serde_json::Value::from(id),
            class.map_or("null".to_string(), |c| format!("\"{c}\"")),
        )
    }

    /// `(id, fingerprint)` per input line, in order.
    fn inputs(ids: &[&str]) -> Vec<(String, String)> {
        ids.iter().map(|id| (id.to_string(), fp(&format!("in-{id}")))).collect()
    }

    /// A 16-hex-digit fingerprint made from `seed`, like the real ones.
    fn fp(seed: &str) -> String {
        crate::model::short_digest(seed.as_bytes())
    }

    /// Reads `path`, judges every input job like the input pass does, opens.
    fn open_with(
        path: &Path,
        options: ResumeOptions,
        identity: &RunIdentity,
        inputs: &[(String, String)],
    ) -> Result<(Checkpoint, Vec<Judgement>), ResumeError> {
        let mut previous = Previous::read(path, options, identity)?;
        let mut judgements = Vec::new();
        for (i, (id, fp)) in inputs.iter().enumerate() {
            let j = previous.as_mut().map_or(Judgement::Run, |p| p.judge(id, i + 1, fp));
            if let Judgement::Refuse(e) = j {
                return Err(e);
            }
            judgements.push(j);
        }
        Ok((Checkpoint::open(path, options, previous)?, judgements))
    }

    /// Judgements as words, to compare.
    fn words(judged: &[Judgement]) -> Vec<&'static str> {
        judged
            .iter()
            .map(|j| match j {
                Judgement::Run => "run",
                Judgement::Keep => "keep",
                Judgement::Refuse(_) => "refuse",
            })
            .collect()
    }

    fn open(
        path: &Path,
        options: ResumeOptions,
        identity: &RunIdentity,
        inputs: &[(String, String)],
    ) -> Result<Checkpoint, ResumeError> {
        open_with(path, options, identity, inputs).map(|(c, _)| c)
    }

    fn file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("results.jsonl");
        std::fs::write(&path, text).expect("write");
        path
    }

    fn ids_in(path: &Path) -> Vec<String> {
        let mut ids = Vec::new();
        for_each_line(
            path,
            |e| e,
            |_, t| {
                let v: serde_json::Value = serde_json::from_str(t).expect("json");
                ids.push(v["custom_id"].as_str().expect("id").to_string());
                Ok(())
            },
        )
        .expect("read");
        ids
    }

    #[test]
    fn keeps_answers_and_drops_what_never_ran_or_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "{}\n{}\n{}\n{{\"custom_id\":\"d\",\"batch",
            line("a", "succeeded", None, &fp("in-a")),
            line("b", "failed", Some("auth"), &fp("in-b")),
            line("c", "failed", Some("aborted"), &fp("in-c")),
        );
        let path = file(&dir, &text);
        let (cp, judged) =
            open_with(&path, ResumeOptions::default(), &identity(), &inputs(&["a", "b", "c", "d"])).expect("ok");
        assert_eq!(words(&judged), ["keep", "keep", "run", "run"]);
        assert_eq!((cp.counts.kept, cp.counts.kept_failed, cp.counts.replayed), (2, 1, 1));
        assert!(cp.counts.repaired);
        assert_eq!(ids_in(&path), ["a", "b"]);
        assert!(std::fs::read_to_string(&path).expect("read").ends_with('\n'));
    }

    /// A kill can cut the last record inside a multi-byte character (an
    /// output in any language but English): it is a torn line like any
    /// other, cut, not "cannot read: stream did not contain valid UTF-8".
    #[test]
    fn a_torn_line_cut_inside_a_character_is_repaired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let whole =
            line("b", "succeeded", None, &fp("in-b")).replace("\"context\"", "\"note\":\"\u{e9}t\u{e9}\",\"context\"");
        let torn = &whole.as_bytes()[..whole.find('\u{e9}').expect("an accented e") + 1];
        let mut bytes = format!("{}\n", line("a", "succeeded", None, &fp("in-a"))).into_bytes();
        bytes.extend_from_slice(torn);
        let path = dir.path().join("results.jsonl");
        std::fs::write(&path, &bytes).expect("write");
        let (cp, _) = open_with(&path, ResumeOptions::default(), &identity(), &inputs(&["a", "b"])).expect("resumable");
        assert!(cp.counts.repaired);
        assert_eq!(ids_in(&path), ["a"]);
    }

    /// A complete line that is not UTF-8 is damage, reported at its line.
    #[test]
    fn a_complete_line_that_is_not_utf8_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bytes = format!("{}\n", line("a", "succeeded", None, &fp("in-a"))).into_bytes();
        bytes.extend_from_slice(b"{\"custom_id\":\"\xff\"}\n");
        let path = dir.path().join("results.jsonl");
        std::fs::write(&path, &bytes).expect("write");
        let err =
            open_with(&path, ResumeOptions::default(), &identity(), &inputs(&["a"])).map(|_| ()).expect_err("damaged");
        assert!(err.to_string().contains("results.jsonl:2: not a batchllm result record (not UTF-8 text)"), "{err}");
    }

    #[test]
    fn retry_failed_drops_every_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file(
            &dir,
            &format!(
                "{}\n{}\n",
                line("a", "succeeded", None, &fp("in-a")),
                line("b", "failed", Some("auth"), &fp("in-b"))
            ),
        );
        let options = ResumeOptions { retry_failed: true, ..ResumeOptions::default() };
        let (cp, judged) = open_with(&path, options, &identity(), &inputs(&["a", "b"])).expect("ok");
        assert_eq!(words(&judged), ["keep", "run"]);
        assert_eq!(cp.counts.kept, 1);
        assert_eq!(ids_in(&path), ["a"]);
    }

    #[test]
    fn a_changed_line_runs_again_and_the_others_keep_their_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lines: Vec<String> =
            ["a", "b", "c"].iter().map(|id| line(id, "succeeded", None, &fp(&format!("in-{id}")))).collect();
        let path = file(&dir, &(lines.join("\n") + "\n"));
        let mut now = inputs(&["a", "b", "c"]);
        now[1].1 = fp("in-b, edited");
        let (cp, judged) = open_with(&path, ResumeOptions::default(), &identity(), &now).expect("follows");
        assert_eq!(words(&judged), ["keep", "run", "keep"]);
        assert_eq!((cp.counts.kept, cp.counts.changed), (2, 1));
        assert_eq!(ids_in(&path), ["a", "c"]);

        // Strict: refused, the file untouched.
        let path = file(&dir, &(lines.join("\n") + "\n"));
        let strict = ResumeOptions { strict: true, ..ResumeOptions::default() };
        let err = open(&path, strict, &identity(), &now).expect_err("strict");
        assert!(err.to_string().contains("the input line of `b` changed"), "{err}");
        assert!(err.to_string().contains("--strict-resume"), "{err}");
        assert_eq!(ids_in(&path), ["a", "b", "c"]);

        // Forced: the stale answer is kept.
        let forced = ResumeOptions { force: true, ..ResumeOptions::default() };
        let (cp, judged) = open_with(&path, forced, &identity(), &now).expect("forced");
        assert_eq!(words(&judged), ["keep"; 3]);
        assert_eq!(cp.counts.kept, 3);
    }

    #[test]
    fn another_plugin_or_configuration_is_refused_unless_forced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file(&dir, &format!("{}\n", line("a", "succeeded", None, &fp("in-a"))));
        let other = RunIdentity { plugin: "q".into(), config: "c".into() };
        let err = open(&path, ResumeOptions::default(), &other, &inputs(&["a"])).expect_err("plugin");
        assert!(err.to_string().contains("answered by plugin p, this run uses q"), "{err}");
        let other = RunIdentity { plugin: "p".into(), config: "d".into() };
        let err = open(&path, ResumeOptions::default(), &other, &inputs(&["a"])).expect_err("config");
        assert!(err.to_string().contains("another plugin configuration"), "{err}");
        let forced = ResumeOptions { force: true, ..ResumeOptions::default() };
        open(&path, forced, &other, &inputs(&["a"])).expect("forced");
    }

    #[test]
    fn ids_gone_from_the_input_are_refused_pruned_or_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "{}\n{}\n",
            line("a", "succeeded", None, &fp("in-a")),
            line("gone", "succeeded", None, &fp("in-gone"))
        );
        let path = file(&dir, &text);
        let err = open(&path, ResumeOptions::default(), &identity(), &inputs(&["a"])).expect_err("gone");
        assert!(err.to_string().contains("records for 1 ids that are not in the input (e.g. `gone`)"), "{err}");
        assert!(err.to_string().contains("--prune"), "{err}");
        let forced = ResumeOptions { force: true, ..ResumeOptions::default() };
        assert_eq!(open(&path, forced, &identity(), &inputs(&["a"])).expect("kept").counts.kept, 2);
        assert_eq!(ids_in(&path), ["a", "gone"]);
        let prune = ResumeOptions { prune: true, ..ResumeOptions::default() };
        let cp = open(&path, prune, &identity(), &inputs(&["a"])).expect("pruned");
        assert_eq!((cp.counts.kept, cp.counts.pruned), (1, 1));
        assert_eq!(ids_in(&path), ["a"]);
    }

    #[test]
    fn kept_records_follow_their_line_when_lines_move() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "{}\n{}\n",
            record("a", "succeeded", None, &fp("in-a"), 1),
            record("b", "succeeded", None, &fp("in-b"), 2)
        );
        let path = file(&dir, &text);
        // A new line inserted first: a and b move down.
        let now = inputs(&["new", "a", "b"]);
        let (cp, judged) = open_with(&path, ResumeOptions::default(), &identity(), &now).expect("ok");
        assert_eq!(words(&judged), ["run", "keep", "keep"]);
        assert_eq!(cp.counts.renumbered, 2);
        let after = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<serde_json::Value> = after.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(lines[0]["batchllm"]["line"], 2);
        assert_eq!(lines[1]["batchllm"]["line"], 3);
        assert_eq!(lines[0]["batchllm"]["context"]["line"], 7, "only the host block's line changes");
    }

    #[test]
    fn renumbering_touches_only_the_host_blocks_line() {
        let text = r#"{"custom_id":"a","response":{"body":{"x":",\"line\":5"}},"batchllm":{"context":{"line":9},"line":12,"finished_at":"t","fingerprint":{"input":"0"},"cost_usd":null}}"#;
        let out = renumber(text, 40).expect("found");
        assert_eq!(out, text.replace(r#""line":12"#, r#""line":40"#));
        assert_eq!(renumber(r#"{"a":1}"#, 3), None);
    }

    #[test]
    fn a_gzip_results_file_resumes_like_a_plain_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("results.jsonl.gz");
        let mut bytes = super::super::lines::gzip_member(
            format!(
                "{}\n{}\n",
                line("a", "succeeded", None, &fp("in-a")),
                line("c", "failed", Some("aborted"), &fp("in-c"))
            )
            .as_bytes(),
        )
        .expect("gzip");
        let torn = super::super::lines::gzip_member(format!("{}\n", line("b", "succeeded", None, "x")).as_bytes())
            .expect("gzip");
        bytes.extend_from_slice(&torn[..torn.len() / 2]);
        std::fs::write(&path, &bytes).expect("write");
        let (cp, judged) =
            open_with(&path, ResumeOptions::default(), &identity(), &inputs(&["a", "b", "c"])).expect("ok");
        assert_eq!(words(&judged), ["keep", "run", "run"]);
        assert!(cp.counts.repaired);
        assert_eq!(ids_in(&path), ["a"]);
        let mut w = cp.writer;
        w.write(&ResultRecord::outcome_unknown(
            "b",
            2,
            Fingerprint { input: "i".into(), plugin: "p".into(), config: "c".into() },
            IN_FLIGHT_AT_DEATH,
        ))
        .expect("append");
        drop(w);
        assert_eq!(ids_in(&path), ["a", "b"], "appending a member after the rewrite");
    }

    #[test]
    fn damaged_and_duplicated_files_are_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file(&dir, "hello\n");
        let err = open(&path, ResumeOptions::default(), &identity(), &inputs(&[])).expect_err("damaged");
        assert!(err.to_string().contains("results.jsonl:1: not a batchllm result record"), "{err}");
        let l = line("a", "succeeded", None, &fp("in-a"));
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
        assert_eq!(cp.counts, ResumeCounts::default());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");
        let cp = open(&dir.path().join("new/results.jsonl"), ResumeOptions::default(), &identity(), &inputs(&[]));
        assert_eq!(cp.expect("fresh").counts.kept, 0);
    }

    #[test]
    fn sent_items_without_a_record_end_outcome_unknown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("results.jsonl");
        std::fs::write(journal_path(&path), "\"a\"\n").expect("journal");
        let (cp, judged) =
            open_with(&path, ResumeOptions::default(), &identity(), &inputs(&["a", "b"])).expect("resumable");
        assert_eq!(words(&judged), ["keep", "run"]);
        assert_eq!((cp.counts.outcome_unknown, cp.counts.kept, cp.counts.kept_failed), (1, 1, 1));
        drop(cp);
        assert_eq!(ids_in(&path), ["a"]);
        let retry = ResumeOptions { retry_failed: true, ..ResumeOptions::default() };
        std::fs::write(&path, "").expect("empty");
        let (_, judged) = open_with(&path, retry, &identity(), &inputs(&["a"])).expect("resumable");
        assert_eq!(words(&judged), ["run"], "--retry-failed sends it again");
    }
}
