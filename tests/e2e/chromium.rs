//! Debian's headless Chromium, for the tests that look at a page the way a
//! person would (the report, `serve`'s status page).
//!
//! `scripts/install-chromium.sh` (run by `scripts/test.sh`) installs it. A
//! missing browser fails the test with that command, except when the script
//! tried and could not install it on this machine (no root, no apt): then it
//! left a note saying why, and the browser steps are skipped, each skip
//! written to the terminal past the test harness's capture (a passing
//! test's `eprintln!` is hidden) and repeated by `scripts/test.sh` at its
//! end. The steps that need no browser still run.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Debian's path; `BATCHLLM_TEST_CHROMIUM` names another binary (or a
/// missing one, to see what a machine without it does).
fn browser_path() -> &'static Path {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| std::env::var_os("BATCHLLM_TEST_CHROMIUM").map_or("/usr/bin/chromium".into(), PathBuf::from))
}

/// Where `scripts/install-chromium.sh` says why it could not install it.
fn unavailable_note() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/.chromium-unavailable")
}

/// The browser; `None` (said loudly) when the install script could not
/// install it here; a failure with the command to run otherwise.
pub(crate) fn chromium(step: &str) -> Option<&'static Path> {
    let browser = browser_path();
    if browser.is_file() {
        return Some(browser);
    }
    match std::fs::read_to_string(unavailable_note()) {
        Ok(reason) => {
            // Straight to the process's stderr: the harness captures only
            // the print macros.
            let _ = writeln!(
                std::io::stderr(),
                "\nSKIPPED: {step}: headless Chromium is not installed ({}); run scripts/install-chromium.sh as root\n",
                reason.trim()
            );
            None
        }
        Err(_) => panic!(
            "{} is missing: {step} needs headless Chromium; install it with `scripts/install-chromium.sh` \
             (apt-get install chromium; scripts/test.sh runs it)",
            browser.display()
        ),
    }
}
