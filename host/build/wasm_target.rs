//! Making sure the compiler that builds the host can build the plugins:
//! the `wasm32-wasip2` standard library must be installed for it.
//!
//! `rust-toolchain.toml` names the target, but rustup adds a toolchain's
//! targets only when it installs the toolchain, so a machine that already
//! had Rust 1.95 without it failed deep in the nested plugin build. Now the
//! build script looks in the compiler's sysroot, and when the target is
//! missing it runs `rustup target add wasm32-wasip2` for that toolchain
//! (what `scripts/test.sh` did by hand); without rustup it stops with the
//! command to run. Included by `build.rs` and by the host's unit tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugins' target.
pub(crate) const TARGET: &str = "wasm32-wasip2";

/// The sysroot of `rustc`.
pub(crate) fn sysroot(rustc: &Path) -> Result<PathBuf, String> {
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run `{} --print sysroot`: {e}", rustc.display()))?;
    if !out.status.success() {
        return Err(format!("`{} --print sysroot` failed ({})", rustc.display(), out.status));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Whether the target's standard library is installed in `sysroot`.
pub(crate) fn installed(sysroot: &Path) -> bool {
    sysroot.join("lib/rustlib").join(TARGET).join("lib").is_dir()
}

/// `rustup` on `path` (a `PATH`-style list), if any.
pub(crate) fn find_rustup(path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?).map(|dir| dir.join("rustup")).find(|candidate| candidate.is_file())
}

/// The toolchain to add the target to: rustup's own choice for this build
/// when it set one, else the sysroot's folder name (rustup names toolchain
/// folders after the toolchain).
pub(crate) fn toolchain(rustup_toolchain: Option<String>, sysroot: &Path) -> Option<String> {
    rustup_toolchain.filter(|t| !t.is_empty()).or_else(|| sysroot.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Installs the target when it is missing. `Ok(Some(note))` when it was
/// installed now, `Ok(None)` when it was there; `Err` says what to run.
pub(crate) fn ensure(
    rustc: &Path,
    rustup: Option<&Path>,
    rustup_toolchain: Option<String>,
) -> Result<Option<String>, String> {
    let sysroot = sysroot(rustc)?;
    if installed(&sysroot) {
        return Ok(None);
    }
    let by_hand = format!("rustup target add {TARGET}");
    let Some(rustup) = rustup else {
        return Err(format!(
            "the {TARGET} target is not installed for {} (the bundled plugins are built for it); install it with `{by_hand}`, or add `lib/rustlib/{TARGET}` to that sysroot if you do not use rustup",
            sysroot.display()
        ));
    };
    let mut cmd = Command::new(rustup);
    cmd.args(["target", "add", TARGET]);
    let toolchain = toolchain(rustup_toolchain, &sysroot);
    if let Some(t) = &toolchain {
        cmd.args(["--toolchain", t]);
    }
    let shown = match &toolchain {
        Some(t) => format!("{by_hand} --toolchain {t}"),
        None => by_hand.clone(),
    };
    let status = cmd
        .status()
        .map_err(|e| format!("the {TARGET} target is missing and `{shown}` could not run ({e}); run it by hand"))?;
    if !status.success() || !installed(&sysroot) {
        return Err(format!(
            "the {TARGET} target is missing and `{shown}` failed ({status}); run it by hand (it needs the network once)"
        ));
    }
    Ok(Some(format!("installed the {TARGET} target the bundled plugins are built for (`{shown}`)")))
}
