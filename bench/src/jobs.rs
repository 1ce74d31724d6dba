//! The input files the scenarios run: simple `{"id","prompt"}` lines.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Writes `items` jobs to `dir/jobs-<items>.jsonl` (once; reused when present).
pub(crate) fn write(dir: &Path, items: usize) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("jobs-{items}.jsonl"));
    if path.is_file() {
        return Ok(path);
    }
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = BufWriter::new(file);
    for i in 0..items {
        writeln!(out, "{{\"id\":\"j{i}\",\"prompt\":\"Summarise item number {i} in one line.\"}}")?;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Writes `items` jobs whose prompts are exactly `chars` characters long to
/// `dir/jobs-<items>x<chars>.jsonl` (once): for token-bound limits, where
/// every request must charge the same.
pub(crate) fn write_long(dir: &Path, items: usize, chars: usize) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("jobs-{items}x{chars}.jsonl"));
    if path.is_file() {
        return Ok(path);
    }
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = BufWriter::new(file);
    for i in 0..items {
        let head = format!("Summarise document {i}: ");
        let filler: String = "lorem ipsum ".chars().cycle().take(chars.saturating_sub(head.len())).collect();
        let line = serde_json::json!({"id": format!("j{i}"), "prompt": format!("{head}{filler}")});
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_valid_line_per_item_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), 3).expect("written");
        let text = std::fs::read_to_string(&path).expect("read");
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(ids, ["j0", "j1", "j2"]);
        assert_eq!(write(dir.path(), 3).expect("reused"), path);
    }

    #[test]
    fn long_prompts_have_exactly_the_length_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_long(dir.path(), 12, 3_920).expect("written");
        let text = std::fs::read_to_string(&path).expect("read");
        for line in text.lines() {
            let job: serde_json::Value = serde_json::from_str(line).expect("json");
            assert_eq!(job["prompt"].as_str().map(|p| p.chars().count()), Some(3_920), "{line}");
        }
        assert_eq!(text.lines().count(), 12);
    }
}
