//! Validating the whole jobs file before anything is sent, in flat memory.
//!
//! Every line is parsed (so a typo on line 9,000,000 is reported up front)
//! and ids are checked for duplicates without holding the ids themselves:
//! the check keeps one 8-byte hash per id (about 9-18 bytes of memory per
//! line with the hash table's slack, instead of every id and job). A line
//! whose hash was seen before is a suspect; suspects are confirmed by a
//! second pass that looks only at lines with those hashes, so a hash
//! collision is never reported as a duplicate.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::path::Path;

use crate::input::{InputError, parse_line, read_lines};
use crate::model::Job;

/// What validation learned about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSummary {
    /// Number of jobs (non-blank lines).
    pub jobs: usize,
    /// Number of blank lines, which are not jobs.
    pub blank_lines: usize,
}

/// A fixed hasher, so ids hash the same in both passes.
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

/// Validates every line of `path`; `visit` sees each valid job (e.g. to
/// compare it with an earlier run's record) and may report a problem.
/// Returns at most `max_errors` errors.
pub fn validate_file(
    path: &Path,
    max_errors: usize,
    mut visit: impl FnMut(&Job) -> Option<InputError>,
) -> Result<InputSummary, Vec<InputError>> {
    let mut errors = Vec::new();
    let mut summary = InputSummary { jobs: 0, blank_lines: 0 };
    // The hash of every id seen so far.
    let mut seen: HashSet<u64> = HashSet::new();
    // Lines whose id hash was seen before, and that hash: duplicates to confirm.
    let mut suspects: Vec<(usize, u64)> = Vec::new();
    let lines = read_lines(path).map_err(|e| vec![e])?;
    for entry in lines {
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
                if seen.insert(hash) {
                    errors.extend(visit(&job));
                } else {
                    suspects.push((line, hash));
                }
            }
            Err(e) => errors.push(InputError::Line { path: path.into(), line, problem: e.problem, fix: e.fix }),
        }
        if errors.len() >= max_errors {
            break;
        }
    }
    drop(seen);
    if !suspects.is_empty() && errors.len() < max_errors {
        let confirmed = confirm_duplicates(path, &suspects, &mut visit)?;
        errors.extend(confirmed.into_iter().take(max_errors - errors.len()));
    }
    if errors.is_empty() && summary.jobs == 0 {
        errors.push(InputError::Empty { path: path.into() });
    }
    errors.sort_by_key(error_line);
    if errors.is_empty() { Ok(summary) } else { Err(errors) }
}

fn error_line(e: &InputError) -> usize {
    match e {
        InputError::Line { line, .. } | InputError::Duplicate { line, .. } => *line,
        _ => 0,
    }
}

/// Re-reads the file, keeping only the lines whose id hash is a suspect's,
/// and reports each suspect whose id equals that of an earlier line. A
/// suspect whose id is new (its hash collided with another id's) is a job
/// like any other: `visit` sees it now.
fn confirm_duplicates(
    path: &Path,
    suspects: &[(usize, u64)],
    visit: &mut impl FnMut(&Job) -> Option<InputError>,
) -> Result<Vec<InputError>, Vec<InputError>> {
    let wanted: HashSet<u64> = suspects.iter().map(|&(_, hash)| hash).collect();
    let suspect_lines: HashMap<usize, u64> = suspects.iter().copied().collect();
    // Per suspect hash, the (line, id) of every line with it, in file order.
    let mut lines_by_hash: HashMap<u64, Vec<(usize, String)>> = HashMap::with_capacity(wanted.len());
    let mut errors = Vec::new();
    for entry in read_lines(path).map_err(|e| vec![e])? {
        let (line, text) = match entry {
            Ok(entry) => entry,
            Err(InputError::Line { .. }) => continue,
            Err(e) => return Err(vec![e]),
        };
        let Ok(job) = parse_line(&text, line) else { continue };
        // A suspect's hash as the first pass recorded it (the same value).
        let suspect = suspect_lines.get(&line).copied();
        let hash = suspect.unwrap_or_else(|| id_hash(&job.id));
        if !wanted.contains(&hash) {
            continue;
        }
        let same_hash = lines_by_hash.entry(hash).or_default();
        if suspect.is_some() {
            match same_hash.iter().find(|(_, id)| *id == job.id) {
                Some((first, id)) => {
                    errors.push(InputError::Duplicate { path: path.into(), line, first: *first, id: id.clone() })
                }
                None => errors.extend(visit(&job)),
            }
        }
        same_hash.push((line, job.id));
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_file_line_and_duplicates_in_line_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.jsonl");
        std::fs::write(&path, "{\"id\":\"a\",\"prompt\":\"x\"}\n\n{\"id\":\"a\",\"prompt\":\"y\"}\nnope\n")
            .expect("write");
        let errors = validate_file(&path, 10, |_| None).expect_err("invalid");
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
        let errors = validate_file(&path, 10, |_| None).expect_err("invalid");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0].contains("jobs.jsonl:2: the line is not valid UTF-8 (byte 24); save the jobs file as UTF-8"),
            "{}",
            text[0]
        );
        assert!(text[1].contains("jobs.jsonl:3: invalid JSON"), "{}", text[1]);
    }

    #[test]
    fn counts_jobs_and_blank_lines_and_visits_each_job_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.jsonl");
        std::fs::write(&path, "{\"id\":\"a\",\"prompt\":\"x\"}\n\n{\"id\":\"b\",\"prompt\":\"y\"}\n").expect("write");
        let mut seen = Vec::new();
        let summary = validate_file(&path, 10, |j| {
            seen.push(j.id.clone());
            None
        })
        .expect("valid");
        assert_eq!((summary.jobs, summary.blank_lines), (2, 1));
        assert_eq!(seen, ["a", "b"]);
        std::fs::write(&path, "\n\n").expect("write");
        assert!(matches!(validate_file(&path, 10, |_| None).expect_err("empty")[0], InputError::Empty { .. }));
    }

    #[test]
    fn a_visitor_can_reject_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.jsonl");
        std::fs::write(&path, "{\"id\":\"a\",\"prompt\":\"x\"}\n").expect("write");
        let errors = validate_file(&path, 10, |j| {
            Some(InputError::Line { path: path.clone(), line: j.line, problem: "no".into(), fix: "yes" })
        })
        .expect_err("rejected");
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn many_distinct_ids_are_not_duplicates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.jsonl");
        let text: String = (0..20_000).map(|i| format!("{{\"id\":\"id-{i}\",\"prompt\":\"p\"}}\n")).collect();
        std::fs::write(&path, text).expect("write");
        assert_eq!(validate_file(&path, 10, |_| None).expect("valid").jobs, 20_000);
    }

    #[test]
    fn a_hash_collision_is_confirmed_against_the_ids_and_not_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.jsonl");
        let lines =
            ["{\"id\":\"a\",\"prompt\":\"x\"}", "{\"id\":\"b\",\"prompt\":\"x\"}", "{\"id\":\"a\",\"prompt\":\"x\"}"];
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        // As if line 2's id ("b") had collided with the hash of "a": not a
        // duplicate, and the job is visited like any other.
        let mut visited = Vec::new();
        let mut visit = |j: &Job| {
            visited.push(j.line);
            None
        };
        let collided = confirm_duplicates(&path, &[(2, id_hash("a"))], &mut visit).expect("readable");
        assert!(collided.is_empty(), "{collided:?}");
        assert_eq!(visited, [2]);
        // Line 3 really repeats line 1.
        let real = confirm_duplicates(&path, &[(3, id_hash("a"))], &mut |_: &Job| None).expect("readable");
        assert!(matches!(&real[..], [InputError::Duplicate { line: 3, first: 1, .. }]), "{real:?}");
    }
}
