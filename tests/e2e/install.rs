//! `cargo install --path host --locked`, the first command README gives:
//! the installed binary runs a batch from a folder that has nothing of the
//! source tree, the built-in plugins embedded in it.
//!
//! What this proves and what it does not: it runs the real `cargo install`
//! (the lock file honoured, the build script embedding the plugins, the
//! binary copied to `<root>/bin`) with `--debug` and this test build's own
//! target folder, so it reuses what `cargo test` compiled and costs seconds
//! instead of a release build of wasmtime (several minutes on 2 cores); the
//! release install README recommends differs only in the profile. `--offline`
//! keeps it off the network: `cargo test --locked` fetched every crate.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{cache_dir, job};

/// The folder `cargo test` builds into (`CARGO_TARGET_TMPDIR` is `<it>/tmp`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").to_path_buf()
}

#[test]
fn cargo_install_gives_a_binary_that_runs_a_batch_from_anywhere() {
    let root = tempfile::tempdir().expect("install root");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["install", "--path"])
        .arg(repo.join("host"))
        .args(["--locked", "--offline", "--debug", "--root"])
        .arg(root.path())
        .arg("--target-dir")
        .arg(target_dir())
        // What cargo sets for this test build must not leak into the install.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo install failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let installed = root.path().join("bin/batchllm-host");
    assert!(installed.is_file(), "{} missing", installed.display());

    // Somewhere else entirely, with no source tree around.
    let elsewhere = tempfile::tempdir().expect("elsewhere");
    std::fs::write(elsewhere.path().join("jobs.jsonl"), [job("a", "one"), job("b", "two")].join("\n") + "\n")
        .expect("jobs");
    let run = |args: &[&str]| {
        Command::new(&installed)
            .args(args)
            .arg("--cache-dir")
            .arg(cache_dir())
            .current_dir(elsewhere.path())
            .env_remove("RUST_LOG")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .output()
            .expect("the installed binary runs")
    };
    let out = run(&["--plugin", "openai", "--mock-provider", "jobs.jsonl", "--quiet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results = std::fs::read_to_string(elsewhere.path().join("results.jsonl")).expect("results next to the jobs");
    assert_eq!(results.lines().count(), 2);
    assert!(results.lines().all(|l| l.contains(r#""status":"succeeded""#)), "{results}");
    let out = run(&["--plugin", "mock", "jobs.jsonl", "-o", "mock.jsonl", "--quiet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let version = Command::new(&installed).arg("--version").output().expect("runs");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("batchllm-host "));
}
