// Shared by `host/build.rs` (the built-in plugins) and `tests/e2e/fixtures.rs`
// (every plugin the tests build) through `include!`, so the two nested guest
// builds can never drift apart again.

/// What cargo or the user sets for the host's own build that must not reach a
/// nested build of a wasm32-wasip2 guest: flags and a target meant for the
/// host break the guest build, a shared target dir makes the nested cargo wait
/// on the outer build's lock, and a workspace wrapper (clippy's) would lint
/// the guest as if it were ours.
const HOST_ONLY_BUILD_ENV: [&str; 5] =
    ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER"];
