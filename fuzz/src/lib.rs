//! The harnesses behind the fuzz targets: each feeds the fuzzer's bytes to
//! a public entry point of the host (or the classifier) and checks what must
//! hold whatever the input: no panic, errors that name the file, line or key,
//! and the round trips and shape guarantees the results file relies on.
//!
//! Kept thin on purpose: they call the same functions a run calls, so they
//! follow the parsers when those change, and every check here is also a
//! property test or unit test beside the code in the host's suite.
//!
//! The same functions run on stable in the host's test suite
//! (`tests/e2e/fuzz_replay.rs` includes this crate's sources): over the
//! seeds and kept crashes, and over random edits of the seeds. That is why
//! the modules refer to each other with `super::`, never `crate::`.
//!
//! Inputs are text in small formats a person can write (the seeds in
//! `seeds/<target>/` are real answers and files), so the fuzzer mutates
//! realistic inputs rather than random bytes.

pub mod checkpoint;
pub mod classify;
pub mod config;
pub mod jobs;
pub mod record;
pub mod scrub;
pub mod tables;
pub mod wire;

use std::path::{Path, PathBuf};

/// A private folder for the harnesses that must give the host a file;
/// under `/dev/shm` when there is one, so each run stays in memory.
pub fn scratch() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        tempfile::Builder::new().prefix("batchllm-fuzz").tempdir_in(base).expect("a scratch folder")
    })
    .path()
}

/// A fresh, empty folder under [`scratch`] for one run of a harness; one
/// per thread, since the stable replay (`tests/e2e/fuzz_replay.rs`) runs
/// the harnesses on the test runner's threads at once.
pub fn fresh_dir(name: &str) -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    let dir = scratch().join(format!("{name}-{thread}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch folder");
    dir
}

/// Whether `text` is JSON by RFC 8259 as a strict reader sees it: it
/// parses, and no string holds a lone UTF-16 surrogate. Numbers beyond
/// `f64` (`1e999`) are grammatical JSON: serde_json's `Value` refuses them,
/// so they are checked by the grammar only.
pub fn is_strict_json(text: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(_) => true,
        Err(e) if e.to_string().contains("number out of range") => {
            serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
        }
        Err(_) => false,
    }
}

/// Splits `text` at the first line that is exactly `marker`: (before, after).
pub fn split_at_marker<'a>(text: &'a str, marker: &str) -> (&'a str, Option<&'a str>) {
    let needle = format!("\n{marker}\n");
    match text.find(&needle) {
        Some(i) => (&text[..i], Some(&text[i + needle.len()..])),
        None => (text, None),
    }
}
