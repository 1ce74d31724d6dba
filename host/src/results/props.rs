//! Properties of the results file read back on resume, whatever an earlier
//! run (or a crash, or a hand edit) left: the `checkpoint` and `record`
//! fuzz targets' checks, on generated files and on the fuzzer's seeds and
//! kept crashes.

use std::collections::HashSet;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::model::{
    FailureClass, Fingerprint, HostBlock, ItemStatus, ProviderResponse, ResultError, ResultRecord, TokenUsage,
    body_json, line_id,
};

fn identity() -> RunIdentity {
    RunIdentity { plugin: "p".into(), config: "c".into() }
}

fn record(id: &str, line: usize, class: Option<FailureClass>, output: &str, body: &str) -> ResultRecord {
    ResultRecord {
        id: line_id(id),
        custom_id: id.to_string(),
        response: Some(ProviderResponse { status_code: 200, request_id: None, body: body_json(body) }),
        error: class.map(|code| ResultError { code, message: output.to_string() }),
        batchllm: HostBlock {
            status: if class.is_some() { ItemStatus::Failed } else { ItemStatus::Succeeded },
            output: class.is_none().then(|| output.to_string()),
            attempts: 1,
            rate_limit_retries: 0,
            usage: TokenUsage::default(),
            latency_ms: 1.0,
            error_class: class,
            http_status: Some(200),
            metadata: None,
            context: None,
            line,
            finished_at: None,
            fingerprint: Fingerprint { input: format!("in-{id}"), plugin: "p".into(), config: "c".into() },
            cost_usd: None,
        },
    }
}

fn class() -> impl Strategy<Value = Option<FailureClass>> {
    prop::option::of(prop::sample::select(vec![
        FailureClass::Auth,
        FailureClass::Aborted,
        FailureClass::BatchDeadlineExceeded,
        FailureClass::RateLimited,
        FailureClass::NoContent,
        FailureClass::OutcomeUnknown,
    ]))
}

/// Items as `(id, class)`, ids unique (validation guarantees it).
fn items() -> impl Strategy<Value = Vec<(String, Option<FailureClass>, String)>> {
    prop::collection::vec(("[^\\p{Cc}]{1,8}", class(), ".{0,16}"), 0..8).prop_map(|mut v| {
        let mut seen = HashSet::new();
        v.retain(|(id, _, _)| seen.insert(id.clone()));
        v
    })
}

/// Resumes `path` as a run does, the input being `ids`; returns the
/// checkpoint and the ids whose records are kept.
fn resume(path: &Path, options: ResumeOptions, ids: &[String]) -> Result<(Checkpoint, HashSet<String>), ResumeError> {
    let mut previous = Previous::read(path, options, &identity())?;
    let mut kept = HashSet::new();
    if let Some(p) = previous.as_mut() {
        for (i, id) in ids.iter().enumerate() {
            match p.judge(id, i + 1, &format!("in-{id}")) {
                Judgement::Refuse(e) => return Err(e),
                Judgement::Keep => {
                    kept.insert(id.clone());
                }
                Judgement::Run => {}
            }
        }
    }
    Ok((Checkpoint::open(path, options, previous)?, kept))
}

/// Whether the resume keeps an item's record (not run again).
fn kept(class: Option<FailureClass>) -> bool {
    !matches!(class, Some(FailureClass::Aborted | FailureClass::BatchDeadlineExceeded))
}

/// What must hold whatever the files: a resume that succeeds leaves whole
/// records the next resume reads; a refusal names the file and the line.
fn check_any_files(dir: &Path, results: &[u8], journal: Option<&[u8]>) {
    let path = dir.join("results.jsonl");
    std::fs::write(&path, results).expect("write");
    let _ = std::fs::remove_file(journal_path(&path));
    if let Some(journal) = journal {
        std::fs::write(journal_path(&path), journal).expect("write");
    }
    let options = ResumeOptions { force: true, ..ResumeOptions::default() };
    match resume(&path, options, &[]) {
        Ok((cp, _)) => {
            let done = usize::try_from(cp.counts.kept + cp.counts.outcome_unknown).expect("small");
            drop(cp);
            let after = std::fs::read(&path).expect("read");
            assert!(after.is_empty() || after.ends_with(b"\n"), "a torn line was left");
            let records = after.split(|&b| b == b'\n').filter(|l| !String::from_utf8_lossy(l).trim().is_empty());
            assert_eq!(records.count(), done);
            let _ = std::fs::remove_file(journal_path(&path));
            Previous::read(&path, options, &identity()).expect("the file a resume leaves is read by the next");
        }
        Err(e @ (ResumeError::Damaged { line, .. } | ResumeError::Duplicate { line, .. })) => {
            let message = e.to_string();
            assert!(message.starts_with(&format!("{}:{line}: ", path.display())), "{message}");
        }
        Err(other) => panic!("a readable file refused without naming a line: {other}"),
    }
    std::fs::write(&path, results).expect("write");
    if sort_by_line(&path).is_ok() {
        let lines = |b: &[u8]| {
            let mut v: Vec<Vec<u8>> =
                b.split_inclusive(|&c| c == b'\n').map(|l| l.strip_suffix(b"\n").unwrap_or(l).to_vec()).collect();
            v.sort();
            v
        };
        assert_eq!(lines(results), lines(&std::fs::read(&path).expect("read")), "the sort lost bytes");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Records the host writes (any ids, outputs, bodies) are read back by
    /// the next run: answered items are skipped, aborted ones run again.
    #[test]
    fn written_records_are_read_back(items in items(), body in ".{0,24}") {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("results.jsonl");
        let mut w = ResultWriter::open(&path, true, false).expect("open");
        for (i, (id, class, output)) in items.iter().enumerate() {
            w.write(&record(id, i + 1, *class, output, &body)).expect("write");
        }
        drop(w);
        let ids: Vec<String> = items.iter().map(|(id, _, _)| id.clone()).collect();
        let (cp, done) = resume(&path, ResumeOptions::default(), &ids).expect("resumable");
        let expected: HashSet<String> = items.iter().filter(|(_, c, _)| kept(*c)).map(|(id, _, _)| id.clone()).collect();
        prop_assert_eq!(done, expected);
        prop_assert!(!cp.counts.repaired);
    }

    /// A crash may cut the file at any byte (inside a record, inside a
    /// character): the resume cuts the torn line and keeps every record
    /// before it.
    #[test]
    fn a_cut_at_any_byte_is_repaired(items in items(), cut in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("results.jsonl");
        let mut w = ResultWriter::open(&path, true, false).expect("open");
        for (i, (id, class, output)) in items.iter().enumerate() {
            w.write(&record(id, i + 1, *class, output, "{\"x\":\"ünï\"}")).expect("write");
        }
        drop(w);
        let full = std::fs::read(&path).expect("read");
        let at = if full.is_empty() { 0 } else { cut.index(full.len() + 1) };
        std::fs::write(&path, &full[..at]).expect("cut");
        let whole = full[..at].iter().filter(|&&b| b == b'\n').count();
        let ids: Vec<String> = items.iter().map(|(id, _, _)| id.clone()).collect();
        let (cp, done) = resume(&path, ResumeOptions::default(), &ids).expect("resumable after any cut");
        let expected: HashSet<String> =
            items.iter().take(whole).filter(|(_, c, _)| kept(*c)).map(|(id, _, _)| id.clone()).collect();
        prop_assert_eq!(&done, &expected);
        prop_assert_eq!(cp.counts.repaired, at > 0 && full[at - 1] != b'\n');
    }

    /// Any bytes as the results file and the journal.
    #[test]
    fn any_files_resume_or_are_refused_by_line(
        results in prop::collection::vec(any::<u8>(), 0..64),
        journal in prop::option::of(prop::collection::vec(any::<u8>(), 0..32)),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        check_any_files(dir.path(), &results, journal.as_deref());
    }

    /// The journal, cut at any byte, reads as the ids started and not
    /// settled before the cut.
    #[test]
    fn a_journal_cut_at_any_byte_reads(
        entries in prop::collection::vec(("[^\\p{Cc}]{1,6}", any::<bool>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let results = dir.path().join("results.jsonl");
        let j = Journal::create(&results, false).expect("create");
        for (id, settled) in &entries {
            if *settled { j.settled(id).expect("write") } else { j.started(id).expect("write") }
        }
        drop(j);
        let full = std::fs::read(journal_path(&results)).expect("read");
        let at = cut.index(full.len() + 1);
        std::fs::write(journal_path(&results), &full[..at]).expect("cut");
        let ids = read_journal(&journal_path(&results)).expect("a cut journal still reads");
        let started: HashSet<String> = entries.iter().filter(|(_, s)| !s).map(|(id, _)| id.clone()).collect();
        prop_assert!(ids.is_subset(&started), "{:?} not in {:?}", ids, started);
    }
}

/// The `checkpoint` fuzz target's seeds and kept crashes, replayed (its
/// `===journal===` section is the journal).
#[test]
fn replays_the_fuzz_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in crate::fuzz_inputs("checkpoint") {
        let bytes = match bytes.strip_prefix(b"#flags") {
            Some(rest) => rest.iter().position(|&b| b == b'\n').map_or(&[][..], |i| &rest[i + 1..]).to_vec(),
            None => bytes,
        };
        let marker = b"\n===journal===\n";
        let (results, journal) = match bytes.windows(marker.len()).position(|w| w == marker) {
            Some(i) => (&bytes[..=i], Some(&bytes[i + marker.len()..])),
            None => (&bytes[..], None),
        };
        check_any_files(dir.path(), results, journal);
        eprintln!("replayed {name}");
    }
}
