#!/usr/bin/env bash
# Runs every test: the host (unit + end-to-end, which build the real plugins
# from source and run the real binary against the mock provider) and the
# plugins' own unit tests, natively.
set -euo pipefail
cd "$(dirname "$0")/.."

# rust-toolchain.toml names the compiler and the wasm32-wasip2 target; make
# sure both are installed on a fresh machine (no-op when they are).
if command -v rustup >/dev/null 2>&1; then
    rustup toolchain install >/dev/null 2>&1 || rustup show active-toolchain
    rustup target add wasm32-wasip2 >/dev/null
fi

host_triple="$(rustc -vV | sed -n 's/^host: //p')"

cargo test --workspace --locked "$@"
cargo test --manifest-path plugins/Cargo.toml --target "$host_triple" --locked "$@"
