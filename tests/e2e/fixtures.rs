//! Every plugin the end-to-end tests build, built one way: once per test run,
//! whatever the number of tests asking, with the host's own build settings
//! kept out of the guest build by the same list `host/build.rs` uses
//! (`host/guest_build_env.rs`).
//!
//! Three kinds of fixture exist: the hostile and broken plugins of
//! `tests/plugins/` (one cargo workspace, [`test_plugin`]), the repository's
//! plugins in other languages and the templates (each folder's own
//! `build.sh`, [`build_script`]), and the built-in plugins (embedded by
//! `host/build.rs`, nothing to build here). A fixture that cannot be built
//! fails its tests with the build's own message: fixtures are never skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

include!("../../host/guest_build_env.rs");

type Cell = Arc<OnceLock<Result<PathBuf, String>>>;

/// `build()`'s result for `key`, computed by the first test that asks; every
/// other test (on any thread) waits for it and gets the same answer.
pub(crate) fn once(key: &str, build: impl FnOnce() -> Result<PathBuf, String>) -> Result<PathBuf, String> {
    static CELLS: Mutex<BTreeMap<String, Cell>> = Mutex::new(BTreeMap::new());
    let cell = CELLS.lock().unwrap_or_else(PoisonError::into_inner).entry(key.to_owned()).or_default().clone();
    cell.get_or_init(build).clone()
}

/// `cmd` with what belongs to the host's build removed from its environment.
pub(crate) fn guest_build(mut cmd: Command) -> Command {
    for var in HOST_ONLY_BUILD_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// The component `name` (e.g. `batchllm_hostile.wasm`) of the `tests/plugins`
/// workspace, which is built (release, wasm32-wasip2) on first use into
/// `target/test-plugins`: its own target dir, so the nested cargo never waits
/// on the outer build's lock.
pub(crate) fn test_plugin(name: &str) -> PathBuf {
    let dir = once("tests/plugins", || {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("host/ has a parent")?;
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().ok_or("target dir")?.join("test-plugins");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = guest_build(Command::new(cargo));
        cmd.args(["build", "--release", "--locked", "--quiet", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(root.join("tests/plugins/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target);
        let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("building tests/plugins failed ({status})"));
        }
        Ok(target.join("wasm32-wasip2/release"))
    });
    match dir {
        Ok(dir) => dir.join(name),
        Err(e) => panic!("{e}"),
    }
}

/// Runs a plugin's `build.sh` with `env` added (the scripts are idempotent
/// and print the component's path last) and returns the component.
pub(crate) fn build_script(script: &Path, env: &[(&str, PathBuf)]) -> Result<PathBuf, String> {
    let started = std::time::Instant::now();
    let mut cmd = guest_build(Command::new("bash"));
    cmd.arg(script).envs(env.iter().map(|(k, v)| (*k, v.as_os_str()))).env("PYTHONDONTWRITEBYTECODE", "1");
    let out = cmd.output().map_err(|e| format!("cannot run `bash {}`: {e}", script.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("`bash {}` failed ({}):\n{stderr}", script.display(), out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    if !path.is_file() {
        return Err(format!(
            "`bash {}` succeeded but printed no component path (stdout: {stdout:?}; stderr:\n{stderr})",
            script.display()
        ));
    }
    if !stderr.trim().is_empty() {
        let extra: Vec<String> = env.iter().map(|(k, v)| format!("{k}={}", v.display())).collect();
        eprintln!("{}: built in {:.1?} {extra:?}\n{stderr}", script.display(), started.elapsed());
    }
    Ok(path)
}
