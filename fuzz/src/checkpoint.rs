//! Resuming from a results file and in-flight journal left by an earlier
//! run (torn lines, duplicates, garbage, invalid UTF-8), then
//! `--preserve-order`'s rewrite of what the resume kept.
//!
//! Input format (bytes):
//! ```text
//! #flags overwrite retry-failed force      (optional first line)
//! <results file>
//! ===journal===                            (optional)
//! <journal file>
//! ===inputs===                             (optional)
//! <id> <input fingerprint>                 (one job per line)
//! ```
//! Without `===inputs===`, the jobs are the ids and fingerprints the
//! results file's own records name, so most inputs get past the identity
//! checks to the rewrite.

use std::collections::HashSet;
use std::path::Path;

use batchllm_host::results::{
    Checkpoint, Judgement, Previous, ResumeError, ResumeOptions, RunIdentity, journal_path, sort_by_line,
};

const JOURNAL: &[u8] = b"===journal===\n";
const INPUTS: &[u8] = b"===inputs===\n";

/// `data` split at the first line equal to `marker`: the part before keeps
/// its last newline.
fn split<'a>(data: &'a [u8], marker: &[u8]) -> (&'a [u8], Option<&'a [u8]>) {
    let mut at = 0;
    while at <= data.len() {
        let line_start = at == 0 || data.get(at - 1) == Some(&b'\n');
        if line_start && data[at..].starts_with(marker) {
            return (&data[..at], Some(&data[at + marker.len()..]));
        }
        match data[at..].iter().position(|&b| b == b'\n') {
            Some(i) => at += i + 1,
            None => break,
        }
    }
    (data, None)
}

/// The jobs a results file's records name, as `(id, input fingerprint)`.
fn jobs_of(results: &[u8]) -> Vec<(String, String)> {
    results
        .split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .filter_map(|v| {
            let id = v.get("custom_id")?.as_str()?.to_string();
            let input = v.pointer("/batchllm/fingerprint/input").and_then(|i| i.as_str()).unwrap_or("");
            Some((id, input.to_string()))
        })
        .collect()
}

/// Input: see the module docs.
pub fn run(data: &[u8]) {
    let (flags, data) = match data.strip_prefix(b"#flags") {
        Some(rest) => {
            let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
            (String::from_utf8_lossy(&rest[..end]).into_owned(), &rest[end..])
        }
        None => (String::new(), data),
    };
    let (results, rest) = split(data, JOURNAL);
    let (journal, inputs) = match rest {
        Some(rest) => {
            let (journal, inputs) = split(rest, INPUTS);
            (Some(journal), inputs)
        }
        None => (None, None),
    };
    let jobs: Vec<(String, String)> = match inputs {
        Some(text) => String::from_utf8_lossy(text)
            .lines()
            .map(|l| {
                let (id, fp) = l.split_once(' ').unwrap_or((l, ""));
                (id.to_string(), fp.to_string())
            })
            .collect(),
        None => jobs_of(results),
    };
    // Validation never hands the checkpoint a duplicate id.
    let mut seen = HashSet::new();
    let jobs: Vec<_> = jobs.into_iter().filter(|(id, _)| seen.insert(id.clone())).collect();

    let options = ResumeOptions {
        overwrite: flags.contains("overwrite"),
        retry_failed: flags.contains("retry-failed"),
        force: flags.contains("force"),
        strict: flags.contains("strict"),
        prune: flags.contains("prune"),
        fsync: false,
    };
    let dir = super::fresh_dir("checkpoint");
    let path = dir.join("results.jsonl");
    std::fs::write(&path, results).expect("write results");
    if let Some(journal) = journal {
        std::fs::write(journal_path(&path), journal).expect("write journal");
    }
    resume(&path, options, &jobs);

    // `--preserve-order` on any file: never a panic, and no byte lost.
    std::fs::write(&path, results).expect("write results");
    if sort_by_line(&path).is_ok() {
        assert_same_lines(results, &std::fs::read(&path).expect("read sorted"));
    }
}

/// Resumes like a run does; checks what the resume kept and that the file
/// it leaves is one the next resume reads.
fn resume(path: &Path, options: ResumeOptions, jobs: &[(String, String)]) {
    let identity = RunIdentity { plugin: "p".into(), config: "c".into() };
    let mut previous = match Previous::read(path, options, &identity) {
        Ok(p) => p,
        Err(e) => return assert_explained(path, &e),
    };
    if let Some(p) = previous.as_mut() {
        for (i, (id, fp)) in jobs.iter().enumerate() {
            if let Judgement::Refuse(e) = p.judge(id, i + 1, fp) {
                return assert_explained(path, &e);
            }
        }
    }
    let checkpoint = match Checkpoint::open(path, options, previous) {
        Ok(c) => c,
        Err(e) => return assert_explained(path, &e),
    };
    let Checkpoint { counts, writer } = checkpoint;
    drop(writer);
    let after = std::fs::read(path).expect("read results after the resume");
    assert!(after.is_empty() || after.ends_with(b"\n"), "the resume left a torn line");
    let records = after.split(|&b| b == b'\n').filter(|l| !String::from_utf8_lossy(l).trim().is_empty()).count();
    let done = counts.kept + counts.outcome_unknown;
    assert_eq!(records as u64, done, "one record per item the resume counts as done");
    // The next run starts a new journal, and reads this file back.
    let _ = std::fs::remove_file(journal_path(path));
    let again = ResumeOptions { force: true, ..ResumeOptions::default() };
    if let Err(e) = Previous::read(path, again, &identity) {
        panic!("a file the resume left cannot be resumed again: {e}");
    }
    if sort_by_line(path).is_ok() {
        assert_same_lines(&after, &std::fs::read(path).expect("read sorted"));
    }
}

/// A refused resume says which file and, for damage, which line.
fn assert_explained(path: &Path, e: &ResumeError) {
    let message = e.to_string();
    let shown = path.display().to_string();
    match e {
        ResumeError::Damaged { line, .. } | ResumeError::Duplicate { line, .. } => {
            assert!(message.starts_with(&format!("{shown}:{line}: ")), "{message}");
            assert!(message.contains("--overwrite"), "{message}");
        }
        ResumeError::Identity { .. } | ResumeError::Changed { .. } | ResumeError::NotInInput { .. } => {
            assert!(message.starts_with(&shown), "{message}");
        }
        other => panic!("a readable results file refused without naming a line: {other}"),
    }
}

/// `after` holds the lines of `before` (each ended by a newline), in any order.
fn assert_same_lines(before: &[u8], after: &[u8]) {
    let lines = |b: &[u8]| {
        let mut v: Vec<Vec<u8>> = b.split_inclusive(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
        for l in &mut v {
            if !l.ends_with(b"\n") {
                l.push(b'\n');
            }
        }
        v.sort();
        v
    };
    assert_eq!(lines(before), lines(after), "the rewrite lost or changed bytes");
}
