//! The reference for the JS and Python JSON modules: what serde_json, as the
//! Rust plugins build it, makes of each document. Reads one JSON string per
//! line (the document) and writes one JSON string per line: the document
//! printed back, or `ERR <message>`.
//!
//! It lives here, not in the host's tests, because the host links other
//! crates that turn on serde_json features (jsonschema enables
//! `float_roundtrip`), which parse some floats differently.

use std::io::{BufRead, Write};

use serde_json::Value;

fn main() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    for line in stdin.lock().lines() {
        let line = line?;
        let doc: String = serde_json::from_str(&line).map_err(std::io::Error::other)?;
        let view = match serde_json::from_str::<Value>(&doc) {
            Ok(v) => v.to_string(),
            Err(e) => format!("ERR {e}"),
        };
        writeln!(out, "{}", Value::String(view))?;
    }
    out.flush()
}
