//! Validating the whole jobs file before anything is sent, in flat memory.
//!
//! Every line is parsed (so a typo on line 9,000,000 is reported up front)
//! and ids are checked for duplicates without holding the ids themselves:
//! the check keeps an 8-byte hash and a line number per id (about 16 bytes
//! of memory per line, instead of every id and job), and a hash seen twice
//! is confirmed by re-reading just those lines, so a hash collision can never
//! be reported as a duplicate.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::path::Path;

use crate::input::{InputError, Job, parse_line, read_lines};

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
    // Hash of each id -> the first line it was seen on.
    let mut first_line: HashMap<u64, usize> = HashMap::new();
    // (line, first line) pairs whose id hashes collide: duplicates to confirm.
    let mut suspects: Vec<(usize, usize)> = Vec::new();
    let lines = read_lines(path).map_err(|e| vec![e])?;
    for entry in lines {
        let (line, text) = match entry {
            Ok(entry) => entry,
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
            Ok(job) => match first_line.entry(id_hash(&job.id)) {
                std::collections::hash_map::Entry::Occupied(first) => suspects.push((line, *first.get())),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(line);
                    errors.extend(visit(&job));
                }
            },
            Err(e) => errors.push(InputError::Line { path: path.into(), line, problem: e.problem, fix: e.fix }),
        }
        if errors.len() >= max_errors {
            break;
        }
    }
    drop(first_line);
    if !suspects.is_empty() && errors.len() < max_errors {
        errors.extend(confirm_duplicates(path, &suspects)?.into_iter().take(max_errors - errors.len()));
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

/// Re-reads only the suspect lines and reports the pairs whose ids are equal.
fn confirm_duplicates(path: &Path, suspects: &[(usize, usize)]) -> Result<Vec<InputError>, Vec<InputError>> {
    let wanted: HashSet<usize> = suspects.iter().flat_map(|&(a, b)| [a, b]).collect();
    let mut ids: HashMap<usize, String> = HashMap::with_capacity(wanted.len());
    for entry in read_lines(path).map_err(|e| vec![e])? {
        let (line, text) = entry.map_err(|e| vec![e])?;
        if wanted.contains(&line)
            && let Ok(job) = parse_line(&text, line)
        {
            ids.insert(line, job.id);
        }
    }
    Ok(suspects
        .iter()
        .filter_map(|&(line, first)| match (ids.get(&line), ids.get(&first)) {
            (Some(a), Some(b)) if a == b => {
                Some(InputError::Duplicate { path: path.into(), line, first, id: a.clone() })
            }
            _ => None,
        })
        .collect())
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
}
