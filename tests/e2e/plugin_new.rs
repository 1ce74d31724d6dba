//! `batchllm-host plugin new`: a plugin project written by the real binary
//! into a folder outside the repository builds with its own `build.sh`,
//! passes every row of `plugin check` and runs a small batch (the helpers of
//! `templates`). The Rust project is built; every language's project is
//! checked to carry the repository's WIT contract and nothing that points
//! back into the repository. Bad names and occupied folders are refused
//! with the fix.

use std::path::Path;

use crate::support::*;
use crate::templates::{plugin_check, repo, run_batch, rust_target_dir};

/// Runs `plugin new` with `args`: (exit code, stdout, stderr).
fn plugin_new(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(BIN)
        .args(["plugin", "new"])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A scratch folder that is not inside the repository.
fn outside_the_repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = repo().canonicalize().expect("repo path");
    assert!(!dir.path().canonicalize().expect("tempdir path").starts_with(&repo), "{}", dir.path().display());
    dir
}

fn text_files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                out.push((path.strip_prefix(dir).expect("inside").display().to_string(), text));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_rust_plugin_builds_outside_the_repository_and_passes_plugin_check() {
    let tmp = outside_the_repository();
    let project = tmp.path().join("acme-strategy");
    let (code, stdout, stderr) =
        plugin_new(&["acme-strategy", "--lang", "rust", "--dir", &project.display().to_string()]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("dist/acme-strategy.wasm"), "{stdout}");
    let wasm = tokio::task::spawn_blocking(move || {
        crate::fixtures::build_script(&project.join("build.sh"), &rust_target_dir())
    })
    .await
    .expect("build task")
    .unwrap_or_else(|e| panic!("the new project does not build:\n{e}"));
    assert!(wasm.starts_with(tmp.path()), "the component is the project's own: {}", wasm.display());
    assert_eq!(wasm.file_name().and_then(|n| n.to_str()), Some("acme-strategy.wasm"));
    let table = plugin_check(&wasm).await.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{table}");
    run_batch(&wasm).await.unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn every_language_gets_the_contract_and_nothing_from_the_repository() {
    let contract = std::fs::read_to_string(repo().join("wit/strategy.wit")).expect("the repository's WIT");
    let tmp = outside_the_repository();
    for lang in ["rust", "js", "python", "go"] {
        let project = tmp.path().join(lang);
        let (code, stdout, stderr) = plugin_new(&["acme", "--lang", lang, "--dir", &project.display().to_string()]);
        assert_eq!(code, 0, "{lang}: {stdout}{stderr}");
        let files = text_files(&project);
        let wit = files.iter().find(|(p, _)| p == "wit/strategy.wit").map(|(_, t)| t);
        assert_eq!(wit, Some(&contract), "{lang}: the project carries the repository's contract");
        for (path, text) in &files {
            assert!(!text.contains("my-strategy"), "{lang}: {path} is not renamed");
            if !path.starts_with("sdk-go/") {
                assert!(
                    !text.contains("../../sdk-go") && !text.contains("../../../wit"),
                    "{lang}: {path} points into the repository"
                );
            }
        }
        let script = project.join("build.sh");
        assert!(script.is_file(), "{lang}: build.sh");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&script).expect("build.sh").permissions().mode();
            assert_eq!(mode & 0o100, 0o100, "{lang}: build.sh is executable");
        }
    }
    assert!(tmp.path().join("go/sdk-go/build-component.sh").is_file(), "the Go project carries its SDK");
}

#[test]
fn bad_names_and_occupied_folders_are_refused_with_the_fix() {
    let tmp = outside_the_repository();
    let dir = tmp.path().join("x").display().to_string();
    let (code, _, stderr) = plugin_new(&["My Plugin", "--lang", "rust", "--dir", &dir]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("invalid plugin name `My Plugin`") && stderr.contains("e.g. `my-plugin`"), "{stderr}");
    assert!(!tmp.path().join("x").exists(), "nothing written");

    std::fs::create_dir(tmp.path().join("taken")).expect("mkdir");
    std::fs::write(tmp.path().join("taken/keep.txt"), "mine").expect("write");
    let taken = tmp.path().join("taken").display().to_string();
    let (code, _, stderr) = plugin_new(&["p", "--lang", "go", "--dir", &taken]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not empty") && stderr.contains("--dir"), "{stderr}");
    assert_eq!(std::fs::read_to_string(tmp.path().join("taken/keep.txt")).expect("kept"), "mine");

    let (code, _, stderr) = plugin_new(&["p", "--lang", "cobol", "--dir", &dir]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("rust") && stderr.contains("python"), "clap lists the languages: {stderr}");
}
