//! The jobs file: each line through `parse_line`, the whole file (any
//! bytes, invalid UTF-8 included) through `validate_file`.

use batchllm_host::input::{InputError, parse_line};
use batchllm_host::validate::validate_file;

/// Input: the jobs file's bytes.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line, i + 1) {
            Ok(job) => {
                assert_eq!(job.line, i + 1);
                assert!(!job.id.trim().is_empty(), "an empty id was accepted: {line:?}");
                assert!(!job.id.chars().any(char::is_control), "a control character in an id: {line:?}");
                assert!(!job.fingerprint.is_empty());
                assert!(job.endpoint.as_deref().is_none_or(|e| e.starts_with('/')));
            }
            Err(e) => assert!(!e.problem.is_empty() && !e.fix.is_empty(), "{e:?}"),
        }
    }

    let path = super::fresh_dir("jobs").join("jobs.jsonl");
    std::fs::write(&path, data).expect("write jobs file");
    let shown = path.display().to_string();
    let lines = data.split(|&b| b == b'\n').count();
    let mut visited = Vec::new();
    match validate_file(&path, 1000, |job| visited.push(job.line)) {
        Ok(summary) => {
            assert!(summary.jobs + summary.blank_lines <= lines);
            assert_eq!(visited.len(), summary.jobs, "every valid job is visited once");
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                let message = e.to_string();
                // Every complaint about the content names the file and the line.
                match e {
                    InputError::Line { line, .. } | InputError::Duplicate { line, .. } => {
                        assert!(message.starts_with(&format!("{shown}:{line}: ")), "{message}");
                        assert!(*line >= 1 && *line <= lines, "{message}");
                    }
                    other => panic!("a readable file refused without naming a line: {other}"),
                }
            }
        }
    }
}
