//! `--schema FILE`: structured-output validation in the host.
//!
//! Each successful output must be a JSON document (a Markdown code fence
//! around it is accepted) that matches the JSON Schema. A mismatch is an
//! `invalid_response`, which the engine retries without backoff and whose
//! message (the schema errors) reaches the plugin's `on-error`, so a strategy
//! can adapt, e.g. show the model what was wrong. Remote `$ref`s are not
//! resolved: validation never touches the network.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// How many schema errors a message lists.
const MAX_ERRORS: usize = 5;

/// A compiled schema.
pub struct OutputSchema {
    validator: jsonschema::Validator,
    path: PathBuf,
}

impl std::fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputSchema").field("path", &self.path).finish()
    }
}

/// A schema file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read schema {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("schema {path} is not JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("schema {path} is not a valid JSON Schema: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl OutputSchema {
    /// Reads and compiles the schema at `path`.
    pub fn load(path: &Path) -> Result<Self, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read { path: path.into(), source })?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| SchemaError::Json { path: path.into(), source: e })?;
        let validator = jsonschema::validator_for(&value)
            .map_err(|e| SchemaError::Invalid { path: path.into(), message: e.to_string() })?;
        Ok(OutputSchema { validator, path: path.into() })
    }

    /// Checks one output; the error explains what to fix.
    pub fn check(&self, output: &str) -> Result<(), String> {
        let json = strip_fence(output);
        let value: Value =
            serde_json::from_str(json).map_err(|e| format!("the output is not JSON ({e}); answer with JSON only"))?;
        let errors: Vec<String> = self
            .validator
            .iter_errors(&value)
            .take(MAX_ERRORS)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() { e.to_string() } else { format!("at {at}: {e}") }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("the output does not match the schema: {}", errors.join("; ")))
        }
    }
}

/// The JSON inside a Markdown code fence, or the text itself.
fn strip_fence(text: &str) -> &str {
    let t = text.trim();
    t.strip_prefix("```json")
        .or_else(|| t.strip_prefix("```JSON"))
        .or_else(|| t.strip_prefix("```"))
        .and_then(|rest| rest.trim_end().strip_suffix("```"))
        .map_or(t, str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> OutputSchema {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.json");
        std::fs::write(&path, text).expect("write");
        OutputSchema::load(&path).expect("valid schema")
    }

    const PERSON: &str = r#"{"type":"object","required":["name","age"],"properties":{"name":{"type":"string"},"age":{"type":"integer"}}}"#;

    #[test]
    fn accepts_matching_json_with_or_without_a_fence() {
        let s = schema(PERSON);
        s.check(r#"{"name":"Ada","age":36}"#).expect("valid");
        s.check("```json\n{\"name\":\"Ada\",\"age\":36}\n```").expect("fenced");
        s.check("```\n{\"name\":\"Ada\",\"age\":36}```").expect("bare fence");
    }

    #[test]
    fn explains_what_is_wrong() {
        let s = schema(PERSON);
        let e = s.check(r#"{"name":"Ada","age":"old"}"#).expect_err("wrong type");
        assert!(e.contains("at /age:") && e.contains("integer"), "{e}");
        let e = s.check(r#"{"name":"Ada"}"#).expect_err("missing");
        assert!(e.contains("age"), "{e}");
        let e = s.check("Sure! Here you go.").expect_err("not json");
        assert!(e.contains("not JSON"), "{e}");
    }

    #[test]
    fn bad_schema_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.json");
        std::fs::write(&path, "{nope").expect("write");
        assert!(OutputSchema::load(&path).expect_err("json").to_string().contains("s.json is not JSON"));
        std::fs::write(&path, r#"{"type": 12}"#).expect("write");
        assert!(OutputSchema::load(&path).expect_err("schema").to_string().contains("not a valid JSON Schema"));
    }
}
