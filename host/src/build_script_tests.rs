//! Tests of what `build.rs` decides before building the plugins: the
//! wasm32-wasip2 target installed when missing, or the command to run.
//! A fake `rustc` (reporting a sysroot) and a fake `rustup` (recording its
//! arguments) stand in for the real ones.

#[path = "../build/wasm_target.rs"]
mod wasm_target;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// An executable shell script at `dir/name`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

struct Fake {
    dir: tempfile::TempDir,
    rustc: PathBuf,
    sysroot: PathBuf,
}

fn fake() -> Fake {
    let dir = tempfile::tempdir().expect("tempdir");
    let sysroot = dir.path().join("toolchains/1.95.0-x86_64-unknown-linux-gnu");
    std::fs::create_dir_all(sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/lib")).expect("sysroot");
    let rustc = script(dir.path(), "rustc", &format!("echo {}", sysroot.display()));
    Fake { dir, rustc, sysroot }
}

#[test]
fn an_installed_target_needs_nothing() {
    let f = fake();
    std::fs::create_dir_all(f.sysroot.join("lib/rustlib/wasm32-wasip2/lib")).expect("target");
    let rustup = script(f.dir.path(), "rustup", "exit 1");
    assert_eq!(wasm_target::ensure(&f.rustc, Some(&rustup), None), Ok(None));
}

#[test]
fn a_missing_target_is_added_with_rustup_for_the_toolchain_in_use() {
    let f = fake();
    let log = f.dir.path().join("rustup.log");
    let rustup = script(
        f.dir.path(),
        "rustup",
        &format!("echo \"$@\" > {}\nmkdir -p {}/lib/rustlib/wasm32-wasip2/lib", log.display(), f.sysroot.display()),
    );
    let note = wasm_target::ensure(&f.rustc, Some(&rustup), None).expect("installed").expect("a note");
    assert!(note.contains("rustup target add wasm32-wasip2 --toolchain 1.95.0-x86_64-unknown-linux-gnu"), "{note}");
    let args = std::fs::read_to_string(&log).expect("rustup ran");
    assert_eq!(args.trim(), "target add wasm32-wasip2 --toolchain 1.95.0-x86_64-unknown-linux-gnu");
    // rustup's own choice of toolchain wins when it set one.
    std::fs::remove_dir_all(f.sysroot.join("lib/rustlib/wasm32-wasip2")).expect("rm");
    wasm_target::ensure(&f.rustc, Some(&rustup), Some("1.95.0".into())).expect("installed");
    assert_eq!(std::fs::read_to_string(&log).expect("log").trim(), "target add wasm32-wasip2 --toolchain 1.95.0");
}

#[test]
fn without_rustup_or_when_it_fails_the_error_is_the_command_to_run() {
    let f = fake();
    let e = wasm_target::ensure(&f.rustc, None, None).expect_err("no rustup");
    assert!(e.contains("install it with `rustup target add wasm32-wasip2`"), "{e}");
    let rustup = script(f.dir.path(), "rustup", "echo offline >&2; exit 1");
    let e = wasm_target::ensure(&f.rustc, Some(&rustup), None).expect_err("rustup failed");
    assert!(e.contains("`rustup target add wasm32-wasip2 --toolchain 1.95.0-x86_64-unknown-linux-gnu` failed"), "{e}");
    // rustup said yes but the target is still not there: not believed.
    let rustup = script(f.dir.path(), "rustup", "exit 0");
    assert!(wasm_target::ensure(&f.rustc, Some(&rustup), None).is_err());
}

#[test]
fn rustup_is_found_on_the_path() {
    let f = fake();
    let bin = f.dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let rustup = script(&bin, "rustup", "exit 0");
    let path = std::env::join_paths([f.dir.path().join("nowhere"), bin]).expect("path");
    assert_eq!(wasm_target::find_rustup(Some(&path)), Some(rustup));
    assert_eq!(wasm_target::find_rustup(None), None);
}

/// The real toolchain building this crate has the target (the build script
/// made sure of it): the check agrees with what the build did.
#[test]
fn the_toolchain_building_this_crate_has_the_target() {
    let rustc = std::env::var_os("RUSTC").map_or_else(|| PathBuf::from("rustc"), PathBuf::from);
    let sysroot = wasm_target::sysroot(&rustc).expect("sysroot");
    assert!(wasm_target::installed(&sysroot), "{}", sysroot.display());
}
