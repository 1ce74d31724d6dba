//! Properties of reading the jobs file, whatever the bytes (the `jobs_line`
//! fuzz target's checks, run on generated inputs and on the crashes the
//! fuzzer kept in `fuzz/regressions/jobs_line/`).

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::input::{InputError, parse_line};
use crate::validate::validate_file;

/// What must hold for one line: a job with a usable id, or a problem with a fix.
fn check_line(text: &str, line: usize) {
    match parse_line(text, line) {
        Ok(job) => {
            assert_eq!(job.line, line);
            assert!(!job.id.trim().is_empty() && !job.id.chars().any(char::is_control), "{text:?}");
            assert!(!job.fingerprint.is_empty());
        }
        Err(e) => assert!(!e.problem.is_empty() && !e.fix.is_empty(), "{e:?}"),
    }
}

/// What must hold for a whole file: every refusal names the file and a line.
fn check_file(dir: &Path, bytes: &[u8]) {
    let path = dir.join("jobs.jsonl");
    std::fs::write(&path, bytes).expect("write");
    let lines = bytes.split(|&b| b == b'\n').count();
    if let Err(errors) = validate_file(&path, 1000, |_| ()) {
        for e in errors {
            let message = e.to_string();
            match e {
                InputError::Line { line, .. } | InputError::Duplicate { line, .. } => {
                    assert!(message.starts_with(&format!("{}:{line}: ", path.display())), "{message}");
                    assert!((1..=lines).contains(&line), "{message}");
                }
                other => panic!("refused without naming a line: {other}"),
            }
        }
    }
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any text, and text shaped like the jobs lines users write.
    #[test]
    fn any_line_is_a_job_or_a_problem_with_a_fix(
        text in prop_oneof![
            ".{0,64}",
            r#"\{"(id|custom_id|prompt|params|url|method|body|context)": ?("[^"]{0,8}"|\{\}|\[\]|[0-9]{1,3}|null)(, ?"(id|prompt|params|url|method|body)": ?("[^"]{0,8}"|\{\}|null))*\}"#,
        ],
        line in 1usize..1_000_000,
    ) {
        check_line(&text, line);
    }

    /// A line written by a program (any id without control characters,
    /// any prompt, params and context) reads back as the same job, and its
    /// fingerprint follows the content, not the key order or spacing.
    #[test]
    fn a_written_job_reads_back_the_same(
        id in "[^\\p{Cc}]{0,6}[a-zA-Z0-9é中][^\\p{Cc}]{0,6}",
        prompt in ".{1,20}",
        params in prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..4),
        context in prop::option::of(json_value()),
    ) {
        let params: Map<String, Value> = params.into_iter().collect();
        let mut line = json!({"id": id, "prompt": prompt, "params": params});
        if let Some(c) = &context {
            line["context"] = c.clone();
        }
        let job = parse_line(&line.to_string(), 7).expect("a valid line");
        prop_assert_eq!(&job.id, &id);
        prop_assert_eq!(&job.prompt, &prompt);
        prop_assert_eq!(&job.params, &params);
        let pretty = serde_json::to_string_pretty(&line).expect("print").replace('\n', " ");
        let again = parse_line(&pretty, 9).expect("the same line, spaced out");
        prop_assert_eq!(job.fingerprint, again.fingerprint);
    }

    /// Any bytes as a whole file (invalid UTF-8, CRLF, blank lines, repeated ids).
    #[test]
    fn any_file_is_valid_or_refused_line_by_line(
        lines in prop::collection::vec(prop_oneof![
            Just(b"{\"id\":\"a\",\"prompt\":\"x\"}".to_vec()),
            Just(b"{\"custom_id\":\"b\",\"url\":\"/v1/x\",\"body\":{}}\r".to_vec()),
            Just(Vec::new()),
            prop::collection::vec(any::<u8>(), 0..24),
            "[ -~]{0,24}".prop_map(String::into_bytes),
        ], 0..8),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        check_file(dir.path(), &lines.join(&b'\n'));
    }
}

/// The `jobs_line` fuzz target's seeds and kept crashes, replayed.
#[test]
fn replays_the_fuzz_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in crate::fuzz_inputs("jobs_line") {
        let text = String::from_utf8_lossy(&bytes);
        for (i, line) in text.lines().enumerate() {
            check_line(line, i + 1);
        }
        check_file(dir.path(), &bytes);
        eprintln!("replayed {name}");
    }
}
