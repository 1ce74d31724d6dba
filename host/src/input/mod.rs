//! Reading the jobs (JSONL) and parsing each line into a [`Job`].
//!
//! Two line shapes are accepted, mixed freely:
//! - OpenAI Batch input: `{"custom_id", "method", "url", "body"}`;
//! - simple: `{"id", "prompt", "params"?, "context"?}`.
//!
//! The jobs come from a file, a gzip-compressed file, a pipe or stdin
//! ([`source`]). They are read once: `crate::validate` checks every line
//! before any request is sent (so a typo on line 90,000 costs nothing) and
//! writes what the run needs to a [`spool`] the run reads back. Every error
//! names the input, the line and what to do.

pub mod source;
pub mod spool;

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub use source::{JobsSource, Lines};
pub use spool::{Spool, SpoolEntry, SpoolWriter};

use crate::model::{Job, Params, fingerprint};

/// A problem with the input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {input}: {source}")]
    Io {
        input: JobsSource,
        #[source]
        source: std::io::Error,
    },
    #[error("{input}:{line}: {problem}; {fix}")]
    Line { input: JobsSource, line: usize, problem: String, fix: &'static str },
    #[error(
        "{input}:{line}: duplicate id `{id}` (first used on line {first}); ids must be unique, they join results to inputs"
    )]
    Duplicate { input: JobsSource, line: usize, first: usize, id: String },
    #[error("cannot write the spool {path} (the jobs as the run reads them, next to the results): {source}")]
    Spool {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stopped while reading {input}; nothing was sent")]
    Stopped { input: JobsSource },
}

impl InputError {
    /// The input line the error is about (0 when it is about the whole input).
    pub fn line(&self) -> usize {
        match self {
            InputError::Line { line, .. } | InputError::Duplicate { line, .. } => *line,
            _ => 0,
        }
    }
}

/// The problem on one line, before it is tied to an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub problem: String,
    pub fix: &'static str,
}

const FIX_SHAPE: &str = r#"write {"id": "...", "prompt": "..."} or an OpenAI Batch line {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions", "body": {...}}"#;

fn line_error(problem: impl Into<String>, fix: &'static str) -> LineError {
    LineError { problem: problem.into(), fix }
}

/// A line's fields, each as the JSON text the caller wrote.
type Fields<'a> = BTreeMap<String, &'a RawValue>;

/// Parses one non-blank line.
///
/// Every value is checked as strictly as before (parsed into a
/// `serde_json::Value`, which also computes the fingerprint), but `params`
/// (`body`) and `context` (`metadata`) are kept as written.
pub fn parse_line(text: &str, line: usize) -> Result<Job, LineError> {
    let fields: Fields<'_> = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => line_error("the line is not a JSON object", FIX_SHAPE),
        _ => line_error(format!("invalid JSON ({e})"), "each line must be exactly one JSON object"),
    })?;
    match (fields.contains_key("custom_id"), fields.contains_key("id")) {
        (true, true) => Err(line_error("the line has both `custom_id` and `id`", "keep one of them")),
        (true, false) => parse_batch_line(&fields, line),
        (false, true) => parse_simple_line(&fields, line),
        (false, false) => Err(line_error("missing id: the line has neither `custom_id` nor `id`", FIX_SHAPE)),
    }
}

/// A field's value, parsed (which checks it strictly: a lone surrogate
/// escape, for one, is refused).
fn value(raw: &RawValue, key: &str) -> Result<Value, LineError> {
    serde_json::from_str(raw.get())
        .map_err(|e| line_error(format!("invalid JSON in `{key}` ({e})"), "each line must be exactly one JSON object"))
}

/// The text of a raw value safe to copy into a results line. A `\r` in
/// valid JSON can only be whitespace between tokens (inside strings it must
/// be escaped), and some JSONL readers split lines at it: it becomes a space.
fn one_line(raw: &RawValue) -> Box<RawValue> {
    if raw.get().contains('\r')
        && let Ok(fixed) = RawValue::from_string(raw.get().replace('\r', " "))
    {
        return fixed;
    }
    raw.to_owned()
}

fn parse_batch_line(fields: &Fields<'_>, line: usize) -> Result<Job, LineError> {
    reject_unknown(
        fields,
        &["custom_id", "method", "url", "body", "metadata"],
        "OpenAI Batch lines have custom_id, method, url, body",
    )?;
    let id = take_id(fields, "custom_id")?;
    match fields.get("method").map(|raw| value(raw, "method")).transpose()? {
        None => {}
        Some(Value::String(m)) if m.eq_ignore_ascii_case("POST") => {}
        Some(other) => {
            return Err(line_error(
                format!("`method` is {other}, only \"POST\" is supported"),
                "set \"method\": \"POST\"",
            ));
        }
    }
    let endpoint = match fields.get("url").map(|raw| value(raw, "url")).transpose()? {
        Some(Value::String(u)) if u.starts_with('/') => u,
        Some(other) => {
            return Err(line_error(
                format!("`url` must be an endpoint path such as \"/v1/chat/completions\", got {other}"),
                "set `url` to the endpoint path",
            ));
        }
        None => return Err(line_error("missing `url`", "add \"url\": \"/v1/chat/completions\"")),
    };
    let (params, parsed) = match fields.get("body") {
        Some(raw) => match value(raw, "body")? {
            Value::Object(body) => (Params::new(&one_line(raw), &body), body),
            _ => return Err(line_error("`body` must be a JSON object", "put the request body object in `body`")),
        },
        None => return Err(line_error("missing `body`", "add the request body as \"body\": {...}")),
    };
    let (context, context_value) = take_context(fields, "metadata")?;
    let fingerprint = fingerprint(&id, "", &parsed, context_value.as_ref(), Some(&endpoint));
    Ok(Job { line, id, prompt: String::new(), params, context, endpoint: Some(endpoint), fingerprint })
}

fn parse_simple_line(fields: &Fields<'_>, line: usize) -> Result<Job, LineError> {
    reject_unknown(fields, &["id", "prompt", "params", "context"], "simple lines have id, prompt, params, context")?;
    let id = take_id(fields, "id")?;
    let prompt = match fields.get("prompt").map(|raw| value(raw, "prompt")).transpose()? {
        None => String::new(),
        Some(Value::String(p)) => p,
        Some(_) => return Err(line_error("`prompt` must be a string", "quote the prompt text")),
    };
    let (params, parsed) = match fields.get("params") {
        None => (Params::default(), Map::new()),
        Some(raw) => match value(raw, "params")? {
            Value::Null => (Params::default(), Map::new()),
            Value::Object(p) => (Params::new(&one_line(raw), &p), p),
            _ => {
                return Err(line_error(
                    "`params` must be a JSON object",
                    "write \"params\": {\"temperature\": 0.2, ...}",
                ));
            }
        },
    };
    if prompt.is_empty() && parsed.is_empty() {
        return Err(line_error(
            "nothing to send: `prompt` is empty and there are no `params`",
            "add a \"prompt\" (or `params` such as `messages`)",
        ));
    }
    let (context, context_value) = take_context(fields, "context")?;
    let fingerprint = fingerprint(&id, &prompt, &parsed, context_value.as_ref(), None);
    Ok(Job { line, id, prompt, params, context, endpoint: None, fingerprint })
}

/// The context as written, and parsed (for the fingerprint).
fn take_context(fields: &Fields<'_>, key: &str) -> Result<(Option<Box<RawValue>>, Option<Value>), LineError> {
    match fields.get(key) {
        None => Ok((None, None)),
        Some(raw) => Ok((Some(one_line(raw)), Some(value(raw, key)?))),
    }
}

fn take_id(fields: &Fields<'_>, key: &str) -> Result<String, LineError> {
    match fields.get(key).map(|raw| value(raw, key)).transpose()? {
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

fn reject_unknown(fields: &Fields<'_>, known: &[&str], fix: &'static str) -> Result<(), LineError> {
    match fields.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(line_error(format!("unknown field `{k}`"), fix)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> LineError {
        parse_line(text, 1).expect_err("should be rejected")
    }

    fn context(job: &Job) -> Option<&str> {
        job.context.as_deref().map(RawValue::get)
    }

    #[test]
    fn parses_simple_lines() {
        let job =
            parse_line(r#"{"id":"a","prompt":"hi","params":{"temperature":0.5},"context":{"k":1}}"#, 3).expect("ok");
        assert_eq!(job.id, "a");
        assert_eq!(job.prompt, "hi");
        assert_eq!(job.params.text(), r#"{"temperature":0.5}"#);
        assert_eq!(context(&job), Some(r#"{"k":1}"#));
        assert_eq!(job.line, 3);
        assert_eq!(job.endpoint, None);
        let bare = parse_line(r#"{"id":"b","prompt":"hi","params":null}"#, 1).expect("ok");
        assert_eq!((bare.params.text(), context(&bare)), ("{}", None));
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
        assert_eq!(job.params.model(), Some("m"));
        assert!(job.prompt.is_empty());
    }

    #[test]
    fn params_and_context_are_kept_as_written() {
        let line = r#"{"id":"a","prompt":"x","params":{"z": 1.10, "a": 123456789012345678901234567890},"context":{"row_id": 123456789012345678901234567890, "b": [1.50, {"y": 1, "x": 2}]}}"#;
        let job = parse_line(line, 1).expect("ok");
        assert_eq!(job.params.text(), r#"{"z": 1.10, "a": 123456789012345678901234567890}"#);
        assert_eq!(context(&job), Some(r#"{"row_id": 123456789012345678901234567890, "b": [1.50, {"y": 1, "x": 2}]}"#));
        // A \r between tokens would split the results line for some readers.
        let job = parse_line("{\"id\":\"a\",\"prompt\":\"x\",\"context\":{\"k\":\r1}}", 1).expect("ok");
        assert_eq!(context(&job), Some("{\"k\": 1}"));
    }

    #[test]
    fn fingerprints_follow_content_not_formatting() {
        let a = parse_line(r#"{"id":"a","prompt":"x","params":{"t":1,"u":2}}"#, 1).expect("ok");
        let b = parse_line(r#"{ "params": {"u": 2, "t": 1}, "prompt": "x", "id": "a" }"#, 9).expect("ok");
        let c = parse_line(r#"{"id":"a","prompt":"y","params":{"t":1,"u":2}}"#, 1).expect("ok");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        // The value earlier versions wrote for this line (see model::job).
        let old = parse_line(
            r#"{"id":"a","prompt":"hi","params":{"temperature":1.10,"z":[1,{"b":2,"a":1}]},"context":{"row":123456789012345678901234567890,"k":"v"}}"#,
            1,
        )
        .expect("ok");
        assert_eq!(old.fingerprint, "923b052e68288744");
    }

    #[test]
    fn rejects_bad_lines_with_a_fix() {
        assert!(err("{not json").problem.contains("invalid JSON"));
        assert!(err("[1,2]").problem.contains("not a JSON object"));
        assert!(err("\"text\"").problem.contains("not a JSON object"));
        assert!(err(r#"{"id":"a","prompt":"x"} trailing"#).problem.contains("invalid JSON"));
        assert!(err(r#"{"prompt":"x"}"#).problem.contains("missing id"));
        assert!(err(r#"{"id":"","prompt":"x"}"#).problem.contains("empty"));
        assert!(err(r#"{"id":7,"prompt":"x"}"#).fix.contains("quote"));
        assert!(err(r#"{"id":"a","promt":"x"}"#).problem.contains("unknown field `promt`"));
        assert!(err(r#"{"id":"a"}"#).problem.contains("nothing to send"));
        assert!(err(r#"{"id":"a","params":{}}"#).problem.contains("nothing to send"));
        assert!(err(r#"{"id":"a","prompt":"x","params":[1]}"#).problem.contains("must be a JSON object"));
        assert!(err(r#"{"custom_id":"a","method":"GET","url":"/v1/x","body":{}}"#).problem.contains("POST"));
        assert!(err(r#"{"custom_id":"a","url":"/v1/x"}"#).problem.contains("missing `body`"));
        assert!(err(r#"{"custom_id":"a","id":"b"}"#).problem.contains("both"));
        // A lone surrogate is refused, as it was when every value was parsed.
        assert!(err(r#"{"id":"a","prompt":"x","context":"\ud800"}"#).problem.contains("invalid JSON in `context`"));
    }
}
