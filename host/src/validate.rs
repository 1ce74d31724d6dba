//! The one pass over the input: validate every line before anything is
//! sent, decide what runs, and spool it, in flat memory.
//!
//! Every line is parsed (so a typo on line 9,000,000 is reported up front
//! and costs nothing), each valid job is shown to a `decide` callback (a
//! resume compares it with its earlier record; a dry run estimates it), and
//! what the run needs is written to the [`Spool`]: the jobs to send, whole,
//! and the line and id of those a resume keeps. The run reads the spool,
//! never the input again, which is what lets the jobs come from a pipe.
//!
//! Ids are checked for duplicates without holding the ids themselves: the
//! check keeps one 8-byte hash per id (about 9-18 bytes of memory per line
//! with the hash table's slack, instead of every id and job). A line whose
//! hash was seen before is a suspect; suspects are confirmed against the
//! ids in the spool, so a hash collision is never reported as a duplicate.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use crate::input::{InputError, JobsSource, Spool, SpoolWriter, parse_line};
use crate::model::Job;

/// What the pass learned about the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSummary {
    /// Number of jobs (non-blank lines).
    pub jobs: usize,
    /// Number of blank lines, which are not jobs.
    pub blank_lines: usize,
    /// Jobs written to the spool to be sent.
    pub to_run: u64,
}

/// What to do with a valid job.
#[derive(Debug)]
pub enum Decision {
    /// Send it: it goes to the spool whole.
    Run,
    /// Do not send it (a resume keeps its record): only its id is spooled.
    Keep,
    /// Refuse the input because of it (e.g. a strict resume).
    Reject(InputError),
    /// Not this run's (another shard's): valid, and nothing is spooled.
    Skip,
}

/// A fixed hasher, so ids hash the same during the pass and the check.
#[derive(Clone, Copy, Default)]
struct IdHasher;

impl BuildHasher for IdHasher {
    type Hasher = std::collections::hash_map::DefaultHasher;

    fn build_hasher(&self) -> Self::Hasher {
        std::collections::hash_map::DefaultHasher::new()
    }
}

fn id_hash(id: &str) -> u64 {
    IdHasher.hash_one(id)
}

/// How often (in lines) the pass asks whether to keep going.
const STOP_CHECK_EVERY: usize = 4096;

/// Checks a jobs file on disk on its own, without a run (fuzzing, tools):
/// the same pass a run makes, `visit` seeing every valid job, the spool in a
/// temporary file next to the jobs that is removed again.
pub fn validate_file(
    path: &std::path::Path,
    max_errors: usize,
    mut visit: impl FnMut(&Job),
) -> Result<InputSummary, Vec<InputError>> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let spool = SpoolWriter::create_temp(dir)
        .map_err(|source| vec![InputError::Spool { path: dir.join("(spool)"), source }])?;
    let (summary, _spool) = read_once(&JobsSource::from(path), max_errors, spool, &|| true, |job| {
        visit(job);
        Decision::Run
    })?;
    Ok(summary)
}

/// Reads `input` once: validates every line, shows each valid job to
/// `decide`, writes the spool. Returns at most `max_errors` errors, in line
/// order; `keep_going` is asked every few thousand lines (a stop signal).
pub fn read_once(
    input: &JobsSource,
    max_errors: usize,
    mut spool: SpoolWriter,
    keep_going: &dyn Fn() -> bool,
    mut decide: impl FnMut(&Job) -> Decision,
) -> Result<(InputSummary, Spool), Vec<InputError>> {
    let spool_error = |path: &std::path::Path, source| vec![InputError::Spool { path: path.into(), source }];
    let mut errors = Vec::new();
    let mut summary = InputSummary { jobs: 0, blank_lines: 0, to_run: 0 };
    // The hash of every id seen so far.
    let mut seen: HashSet<u64> = HashSet::new();
    // Lines whose id hash was seen before, and that hash: duplicates to confirm.
    let mut suspects: Vec<(usize, u64)> = Vec::new();
    let lines = input.open().map_err(|e| vec![e])?;
    for (n, entry) in lines.enumerate() {
        if n % STOP_CHECK_EVERY == 0 && !keep_going() {
            return Err(vec![InputError::Stopped { input: input.clone() }]);
        }
        let (line, text) = match entry {
            Ok(entry) => entry,
            // A line that is not text: the next lines are still checked.
            Err(e @ InputError::Line { .. }) => {
                summary.jobs += 1;
                errors.push(e);
                if errors.len() >= max_errors {
                    break;
                }
                continue;
            }
            Err(e) => {
                errors.push(e);
                break;
            }
        };
        if text.trim().is_empty() {
            summary.blank_lines += 1;
            continue;
        }
        summary.jobs += 1;
        match parse_line(&text, line) {
            Ok(job) => {
                let hash = id_hash(&job.id);
                if !seen.insert(hash) {
                    suspects.push((line, hash));
                }
                let written = match decide(&job) {
                    Decision::Run => spool.run(&job),
                    Decision::Keep => spool.kept(job.line, &job.id),
                    Decision::Skip => Ok(()),
                    Decision::Reject(e) => {
                        errors.push(e);
                        Ok(())
                    }
                };
                if let Err(source) = written {
                    return Err(spool_error(spool.path(), source));
                }
            }
            Err(e) => errors.push(InputError::Line { input: input.clone(), line, problem: e.problem, fix: e.fix }),
        }
        if errors.len() >= max_errors {
            break;
        }
    }
    drop(seen);
    let path = spool.path().to_path_buf();
    let spool = spool.finish().map_err(|source| spool_error(&path, source))?;
    if !suspects.is_empty() && errors.len() < max_errors {
        let confirmed = confirm_duplicates(input, &spool, &suspects).map_err(|source| spool_error(&path, source))?;
        errors.extend(confirmed.into_iter().take(max_errors - errors.len()));
    }
    errors.sort_by_key(InputError::line);
    summary.to_run = spool.to_run();
    if errors.is_empty() { Ok((summary, spool)) } else { Err(errors) }
}

/// Reads the ids back from the spool, keeping only those whose hash is a
/// suspect's, and reports each suspect whose id equals that of an earlier
/// line. A suspect whose id is new (its hash collided with another id's)
/// is a job like any other.
fn confirm_duplicates(
    input: &JobsSource,
    spool: &Spool,
    suspects: &[(usize, u64)],
) -> std::io::Result<Vec<InputError>> {
    let wanted: HashSet<u64> = suspects.iter().map(|&(_, hash)| hash).collect();
    let suspect_lines: HashSet<usize> = suspects.iter().map(|&(line, _)| line).collect();
    // Per suspect hash, the (line, id) of every line with it, in input order.
    let mut lines_by_hash: HashMap<u64, Vec<(usize, String)>> = HashMap::with_capacity(wanted.len());
    let mut errors = Vec::new();
    for entry in spool.entries()? {
        let entry = entry?;
        let (line, id) = entry.line_and_id();
        let hash = id_hash(id);
        if !wanted.contains(&hash) {
            continue;
        }
        let same_hash = lines_by_hash.entry(hash).or_default();
        if suspect_lines.contains(&line)
            && let Some((first, _)) = same_hash.iter().find(|(_, earlier)| earlier == id)
        {
            errors.push(InputError::Duplicate { input: input.clone(), line, first: *first, id: id.to_string() });
        }
        same_hash.push((line, id.to_string()));
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::input::SpoolEntry;

    fn go() -> bool {
        true
    }

    fn pass(path: &Path, decide: impl FnMut(&Job) -> Decision) -> Result<(InputSummary, Spool), Vec<InputError>> {
        let spool = SpoolWriter::create(&path.with_extension("spool")).expect("spool");
        read_once(&JobsSource::from(path), 10, spool, &go, decide)
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("jobs.jsonl");
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn reports_file_line_and_duplicates_in_line_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "{\"id\":\"a\",\"prompt\":\"x\"}\n\n{\"id\":\"a\",\"prompt\":\"y\"}\nnope\n");
        let errors = pass(&path, |_| Decision::Run).expect_err("invalid");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].contains("jobs.jsonl:3: duplicate id `a` (first used on line 1)"), "{}", text[0]);
        assert!(text[1].contains("jobs.jsonl:4: invalid JSON"), "{}", text[1]);
    }

    /// A line that is not UTF-8 is named by its line number, and the
    /// lines after it are still checked (it used to stop validation with
    /// "cannot read jobs.jsonl: stream did not contain valid UTF-8").
    #[test]
    fn a_line_that_is_not_utf8_is_named_and_the_rest_still_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.jsonl");
        std::fs::write(&path, b"{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"b\",\"prompt\":\"caf\xe9\"}\nnope\n")
            .expect("write");
        let errors = validate_file(&path, 10, |_| ()).expect_err("invalid");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0].contains("jobs.jsonl:2: not UTF-8 text (an invalid byte at column 24); save the jobs as UTF-8"),
            "{}",
            text[0]
        );
        assert!(text[1].contains("jobs.jsonl:3: invalid JSON"), "{}", text[1]);
    }

    #[test]
    fn a_kept_job_still_counts_for_duplicates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"a\",\"prompt\":\"y\"}\n");
        let errors = pass(&path, |j| if j.line == 1 { Decision::Keep } else { Decision::Run }).expect_err("dup");
        assert!(matches!(&errors[..], [InputError::Duplicate { line: 2, first: 1, .. }]), "{errors:?}");
    }

    #[test]
    fn spools_what_runs_and_the_ids_of_what_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "{\"id\":\"a\",\"prompt\":\"x\"}\n\n{\"id\":\"b\",\"prompt\":\"y\"}\n");
        let mut seen = Vec::new();
        let (summary, spool) = pass(&path, |j| {
            seen.push(j.id.clone());
            if j.id == "a" { Decision::Keep } else { Decision::Run }
        })
        .expect("valid");
        assert_eq!((summary.jobs, summary.blank_lines, summary.to_run), (2, 1, 1));
        assert_eq!(seen, ["a", "b"]);
        let entries: Vec<SpoolEntry> = spool.entries().expect("read").map(|e| e.expect("entry")).collect();
        assert!(matches!(&entries[0], SpoolEntry::Kept { line: 1, id } if id == "a"));
        assert!(matches!(&entries[1], SpoolEntry::Run(job) if job.id == "b" && job.line == 3));
    }

    #[test]
    fn an_empty_input_is_valid_and_has_no_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        for text in ["", "\n\n", "  \n"] {
            let path = write(&dir, text);
            let (summary, _) = pass(&path, |_| Decision::Run).expect("empty is fine");
            assert_eq!((summary.jobs, summary.to_run), (0, 0));
        }
    }

    #[test]
    fn a_decision_can_reject_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "{\"id\":\"a\",\"prompt\":\"x\"}\n");
        let errors = pass(&path, |j| {
            Decision::Reject(InputError::Line {
                input: JobsSource::from(path.as_path()),
                line: j.line,
                problem: "no".into(),
                fix: "yes",
            })
        })
        .expect_err("rejected");
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn many_distinct_ids_are_not_duplicates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text: String = (0..20_000).map(|i| format!("{{\"id\":\"id-{i}\",\"prompt\":\"p\"}}\n")).collect();
        let path = write(&dir, &text);
        assert_eq!(pass(&path, |_| Decision::Run).expect("valid").0.jobs, 20_000);
    }

    #[test]
    fn a_hash_collision_is_confirmed_against_the_ids_and_not_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lines =
            ["{\"id\":\"a\",\"prompt\":\"x\"}", "{\"id\":\"b\",\"prompt\":\"x\"}", "{\"id\":\"a\",\"prompt\":\"x\"}"];
        let path = write(&dir, &(lines.join("\n") + "\n"));
        // A spool of the three lines, without the pass's own duplicate check.
        let mut w = SpoolWriter::create(&dir.path().join("s")).expect("spool");
        for (i, l) in lines.iter().enumerate() {
            w.run(&parse_line(l, i + 1).expect("job")).expect("write");
        }
        let spool = w.finish().expect("finish");
        let input = JobsSource::from(path.as_path());
        // As if line 2's id ("b") had collided with the hash of "a": not a duplicate.
        let collided = confirm_duplicates(&input, &spool, &[(2, id_hash("a"))]).expect("readable");
        assert!(collided.is_empty(), "{collided:?}");
        // Line 3 really repeats line 1.
        let real = confirm_duplicates(&input, &spool, &[(3, id_hash("a"))]).expect("readable");
        assert!(matches!(&real[..], [InputError::Duplicate { line: 3, first: 1, .. }]), "{real:?}");
    }

    #[test]
    fn gzip_crlf_and_bad_bytes_are_read_with_their_line_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.jsonl.gz");
        // Two gzip members, as `cat a.gz b.gz` makes, CRLF line ends.
        let mut bytes = Vec::new();
        for part in ["{\"id\":\"a\",\"prompt\":\"x\"}\r\n", "{\"id\":\"b\",\"prompt\":\"y\"}\r\n"] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(part.as_bytes()).expect("gzip");
            bytes.extend(gz.finish().expect("gzip"));
        }
        std::fs::write(&path, &bytes).expect("write");
        let (summary, _) = pass(&path, |_| Decision::Run).expect("valid");
        assert_eq!(summary.jobs, 2);
        // Cut short: an error naming the input, not a silent end.
        std::fs::write(&path, &bytes[..bytes.len() - 5]).expect("write");
        let errors = pass(&path, |_| Decision::Run).expect_err("truncated");
        assert!(errors[0].to_string().contains("ends early"), "{}", errors[0]);
        // Not UTF-8: that line, and the others still checked.
        let path = dir.path().join("latin1.jsonl");
        std::fs::write(&path, b"{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"b\",\"prompt\":\"\xe9\"}\nnope\n")
            .expect("write");
        let errors = pass(&path, |_| Decision::Run).expect_err("latin-1");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(text[0].contains("latin1.jsonl:2: not UTF-8 text"), "{text:?}");
        assert!(text[1].contains("latin1.jsonl:3: invalid JSON"), "{text:?}");
    }

    #[test]
    fn a_stop_ends_the_pass_before_anything_is_decided() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "{\"id\":\"a\",\"prompt\":\"x\"}\n");
        let spool = SpoolWriter::create(&dir.path().join("s")).expect("spool");
        let errors = read_once(&JobsSource::from(path.as_path()), 10, spool, &|| false, |_| panic!("decided"))
            .expect_err("stopped");
        assert!(matches!(errors[..], [InputError::Stopped { .. }]), "{errors:?}");
    }
}
