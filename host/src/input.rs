//! Reading and validating the jobs file (JSONL).
//!
//! Two line shapes are accepted, mixed freely:
//! - OpenAI Batch input: `{"custom_id", "method", "url", "body"}`;
//! - simple: `{"id", "prompt", "params"?, "context"?}`.
//!
//! The whole file is validated before any request is sent, so a typo on line
//! 90,000 is reported up front and costs nothing. Every error names the file,
//! the line and what to do.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::model::Job;

/// A problem with the input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {problem}; {fix}")]
    Line { path: PathBuf, line: usize, problem: String, fix: &'static str },
    #[error(
        "{path}:{line}: duplicate id `{id}` (first used on line {first}); ids must be unique, they join results to inputs"
    )]
    Duplicate { path: PathBuf, line: usize, first: usize, id: String },
    #[error("{path}: no jobs found; the file needs one JSON object per line")]
    Empty { path: PathBuf },
    #[error(
        "{path}: not a regular file (a pipe, a socket or a device); the jobs file is read twice, once to validate every line before anything is sent and once to run it, so save the stream to a file first, e.g. `your-command > jobs.jsonl`"
    )]
    NotAFile { path: PathBuf },
}

/// The problem on one line, before it is tied to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub problem: String,
    pub fix: &'static str,
}

const FIX_SHAPE: &str = r#"write {"id": "...", "prompt": "..."} or an OpenAI Batch line {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions", "body": {...}}"#;

fn line_error(problem: impl Into<String>, fix: &'static str) -> LineError {
    LineError { problem: problem.into(), fix }
}

/// Parses one non-blank line.
pub fn parse_line(text: &str, line: usize) -> Result<Job, LineError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| line_error(format!("invalid JSON ({e})"), "each line must be exactly one JSON object"))?;
    let Value::Object(obj) = value else {
        return Err(line_error("the line is not a JSON object", FIX_SHAPE));
    };
    match (obj.contains_key("custom_id"), obj.contains_key("id")) {
        (true, true) => Err(line_error("the line has both `custom_id` and `id`", "keep one of them")),
        (true, false) => parse_batch_line(obj, line),
        (false, true) => parse_simple_line(obj, line),
        (false, false) => Err(line_error("missing id: the line has neither `custom_id` nor `id`", FIX_SHAPE)),
    }
}

fn parse_batch_line(mut obj: Map<String, Value>, line: usize) -> Result<Job, LineError> {
    reject_unknown(
        &obj,
        &["custom_id", "method", "url", "body", "metadata"],
        "OpenAI Batch lines have custom_id, method, url, body",
    )?;
    let id = take_id(&mut obj, "custom_id")?;
    match obj.remove("method") {
        None => {}
        Some(Value::String(m)) if m.eq_ignore_ascii_case("POST") => {}
        Some(other) => {
            return Err(line_error(
                format!("`method` is {other}, only \"POST\" is supported"),
                "set \"method\": \"POST\"",
            ));
        }
    }
    let endpoint = match obj.remove("url") {
        Some(Value::String(u)) if u.starts_with('/') => u,
        Some(other) => {
            return Err(line_error(
                format!("`url` must be an endpoint path such as \"/v1/chat/completions\", got {other}"),
                "set `url` to the endpoint path",
            ));
        }
        None => return Err(line_error("missing `url`", "add \"url\": \"/v1/chat/completions\"")),
    };
    let params = match obj.remove("body") {
        Some(Value::Object(body)) => body,
        Some(_) => return Err(line_error("`body` must be a JSON object", "put the request body object in `body`")),
        None => return Err(line_error("missing `body`", "add the request body as \"body\": {...}")),
    };
    let context = obj.remove("metadata");
    let job =
        Job { line, id, prompt: String::new(), params, context, endpoint: Some(endpoint), fingerprint: String::new() };
    Ok(job.with_fingerprint())
}

fn parse_simple_line(mut obj: Map<String, Value>, line: usize) -> Result<Job, LineError> {
    reject_unknown(&obj, &["id", "prompt", "params", "context"], "simple lines have id, prompt, params, context")?;
    let id = take_id(&mut obj, "id")?;
    let prompt = match obj.remove("prompt") {
        None => String::new(),
        Some(Value::String(p)) => p,
        Some(_) => return Err(line_error("`prompt` must be a string", "quote the prompt text")),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err(line_error("`params` must be a JSON object", "write \"params\": {\"temperature\": 0.2, ...}"));
        }
    };
    if prompt.is_empty() && params.is_empty() {
        return Err(line_error(
            "nothing to send: `prompt` is empty and there are no `params`",
            "add a \"prompt\" (or `params` such as `messages`)",
        ));
    }
    let context = obj.remove("context");
    Ok(Job { line, id, prompt, params, context, endpoint: None, fingerprint: String::new() }.with_fingerprint())
}

fn take_id(obj: &mut Map<String, Value>, key: &str) -> Result<String, LineError> {
    match obj.remove(key) {
        Some(Value::String(id)) if !id.trim().is_empty() => {
            if id.chars().any(char::is_control) {
                Err(line_error(format!("`{key}` contains control characters"), "use printable ids"))
            } else {
                Ok(id)
            }
        }
        Some(Value::String(_)) => Err(line_error(format!("`{key}` is empty"), "give every line a unique non-empty id")),
        Some(Value::Number(n)) => {
            Err(line_error(format!("`{key}` must be a string, got the number {n}"), "quote it, e.g. \"id\": \"42\""))
        }
        _ => Err(line_error(format!("`{key}` must be a non-empty string"), "give every line a unique string id")),
    }
}

fn reject_unknown(obj: &Map<String, Value>, known: &[&str], fix: &'static str) -> Result<(), LineError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(line_error(format!("unknown field `{k}`"), fix)),
        None => Ok(()),
    }
}

/// Iterates `(line number, text)` over a file, lazily.
pub fn read_lines(path: &Path) -> Result<impl Iterator<Item = Result<(usize, String), InputError>>, InputError> {
    let file = std::fs::File::open(path).map_err(|source| InputError::Io { path: path.into(), source })?;
    // A pipe would be used up by validation and look empty to the run.
    let meta = file.metadata().map_err(|source| InputError::Io { path: path.into(), source })?;
    if !meta.is_file() {
        return Err(InputError::NotAFile { path: path.into() });
    }
    let path = path.to_path_buf();
    // Bytes, then UTF-8 per line: a line that is not text is that line's
    // error (`lines()` would fail the whole file with no line number).
    Ok(BufReader::with_capacity(1 << 16, file).split(b'\n').enumerate().map(move |(i, r)| {
        let line = i + 1;
        let mut bytes = r.map_err(|source| InputError::Io { path: path.clone(), source })?;
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        String::from_utf8(bytes).map(|text| (line, text)).map_err(|e| InputError::Line {
            path: path.clone(),
            line,
            problem: format!("the line is not valid UTF-8 (byte {})", e.utf8_error().valid_up_to() + 1),
            fix: "save the jobs file as UTF-8",
        })
    }))
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> LineError {
        parse_line(text, 1).expect_err("should be rejected")
    }

    #[test]
    fn parses_simple_lines() {
        let job =
            parse_line(r#"{"id":"a","prompt":"hi","params":{"temperature":0.5},"context":{"k":1}}"#, 3).expect("ok");
        assert_eq!(job.id, "a");
        assert_eq!(job.prompt, "hi");
        assert_eq!(job.params["temperature"], 0.5);
        assert_eq!(job.context, Some(serde_json::json!({"k":1})));
        assert_eq!(job.line, 3);
        assert_eq!(job.endpoint, None);
    }

    #[test]
    fn parses_openai_batch_lines() {
        let job = parse_line(
            r#"{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}"#,
            1,
        )
        .expect("ok");
        assert_eq!(job.id, "r1");
        assert_eq!(job.endpoint.as_deref(), Some("/v1/chat/completions"));
        assert_eq!(job.params["model"], "m");
        assert!(job.prompt.is_empty());
    }

    #[test]
    fn fingerprints_follow_content_not_formatting() {
        let a = parse_line(r#"{"id":"a","prompt":"x","params":{"t":1,"u":2}}"#, 1).expect("ok");
        let b = parse_line(r#"{ "params": {"u": 2, "t": 1}, "prompt": "x", "id": "a" }"#, 9).expect("ok");
        let c = parse_line(r#"{"id":"a","prompt":"y","params":{"t":1,"u":2}}"#, 1).expect("ok");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
    }

    #[test]
    fn rejects_bad_lines_with_a_fix() {
        assert!(err("{not json").problem.contains("invalid JSON"));
        assert!(err("[1,2]").problem.contains("not a JSON object"));
        assert!(err(r#"{"prompt":"x"}"#).problem.contains("missing id"));
        assert!(err(r#"{"id":"","prompt":"x"}"#).problem.contains("empty"));
        assert!(err(r#"{"id":7,"prompt":"x"}"#).fix.contains("quote"));
        assert!(err(r#"{"id":"a","promt":"x"}"#).problem.contains("unknown field `promt`"));
        assert!(err(r#"{"id":"a"}"#).problem.contains("nothing to send"));
        assert!(err(r#"{"custom_id":"a","method":"GET","url":"/v1/x","body":{}}"#).problem.contains("POST"));
        assert!(err(r#"{"custom_id":"a","url":"/v1/x"}"#).problem.contains("missing `body`"));
        assert!(err(r#"{"custom_id":"a","id":"b"}"#).problem.contains("both"));
    }
}
