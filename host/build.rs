//! Builds the bundled plugins (`plugins/`, a wasm32-wasip2 workspace) and
//! places the components in OUT_DIR, where `src/plugin.rs` embeds them
//! through the generated `builtins.rs`. Which plugins: the rows of the
//! provider registry, `src/providers.rs`, read here as a module.
//!
//! The plugins build in their own target directory (`target/plugins`), so the
//! nested cargo never waits on the outer build's lock, and host rebuilds of
//! any profile reuse the same plugin artifacts.

use std::path::{Path, PathBuf};
use std::process::Command;

// The registry is data only; the build script reads the package and directory of each row.
#[allow(dead_code, unreachable_pub)]
#[path = "src/providers.rs"]
mod providers;

use providers::BUILTINS;

#[path = "build/wasm_target.rs"]
mod wasm_target;
include!("guest_build_env.rs");

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("host/ has a parent").to_path_buf();
    let plugins = root.join("plugins");
    println!("cargo:rerun-if-changed={}", plugins.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", plugins.join("Cargo.lock").display());
    println!("cargo:rerun-if-changed={}", manifest_dir.join("src/providers.rs").display());
    println!("cargo:rerun-if-changed={}", manifest_dir.join("guest_build_env.rs").display());
    for p in BUILTINS {
        println!("cargo:rerun-if-changed={}", plugins.join(p.dir).display());
    }
    // The libraries the plugins are built from (a change there changes them).
    for lib in ["classify", "sdk", "openai-core"] {
        println!("cargo:rerun-if-changed={}", plugins.join(lib).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target")).join("plugins");
    // The first `cargo run` or `cargo install` on a machine whose toolchain
    // lacks the wasm target installs it (with rustup), or says how.
    let rustc = PathBuf::from(env("RUSTC"));
    let rustup = wasm_target::find_rustup(std::env::var_os("PATH").as_deref()).or_else(|| {
        std::env::var_os("CARGO_HOME").map(|h| PathBuf::from(h).join("bin/rustup")).filter(|p| p.is_file())
    });
    match wasm_target::ensure(&rustc, rustup.as_deref(), std::env::var("RUSTUP_TOOLCHAIN").ok()) {
        Ok(Some(note)) => println!("cargo:warning={note}"),
        Ok(None) => {}
        Err(e) => panic!("{e}"),
    }
    build_plugins(&plugins, &target_dir);

    let out_dir = PathBuf::from(env("OUT_DIR"));
    // `src/plugin.rs` includes this list: one (name, bytes) entry per row.
    let mut list = String::from("&[\n");
    for p in BUILTINS {
        let file = format!("{}.wasm", p.package.replace('-', "_"));
        let built = target_dir.join("wasm32-wasip2/release").join(&file);
        let dest = out_dir.join(format!("{}.wasm", p.name));
        std::fs::copy(&built, &dest)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", built.display(), dest.display()));
        list.push_str(&format!(
            "    ({:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{}.wasm\"))),\n",
            p.name, p.name
        ));
    }
    list.push(']');
    let generated = out_dir.join("builtins.rs");
    std::fs::write(&generated, list).unwrap_or_else(|e| panic!("writing {}: {e}", generated.display()));
}

fn build_plugins(plugins: &Path, target_dir: &Path) {
    let cargo = env("CARGO");
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--locked")
        .args(["--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for p in BUILTINS {
        cmd.args(["-p", p.package]);
    }
    for var in HOST_ONLY_BUILD_ENV {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("running cargo to build the plugins: {e}"));
    assert!(status.success(), "building the bundled plugins failed ({status}); see the errors above");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name}"))
}
