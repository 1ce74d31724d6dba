#!/usr/bin/env bash
# Builds a Go strategy plugin into a WebAssembly component:
#   plugins/sdk-go/build-component.sh <main package dir> <output.wasm> [<wit dir>]
# (the WIT folder defaults to the repository's wit/).
#
# 1. `go build` for GOOS=wasip1 GOARCH=wasm with -buildmode=c-shared: a
#    reactor module whose exports are the sdk package's //go:wasmexport glue;
# 2. add-adapter-realloc.py adds a `cabi_realloc_adapter` export that gives
#    the WASI adapter memory the Go runtime never uses (see
#    adapter_arena_wasip1.go for why neither cabi_realloc nor wasm-tools'
#    --realloc-via-memory-grow will do);
# 3. `wasm-tools component embed` records the world `strategy` of wit/;
# 4. `wasm-tools component new` wraps it with the WASI preview1 reactor
#    adapter, which turns the Go runtime's wasip1 imports into WASI 0.2.
#
# The toolchain comes from toolchain.sh (pinned, installed on first use).
# Only the standard library and this repository's modules are used: no Go
# module proxy (GOPROXY=off, GOTOOLCHAIN=local).
set -euo pipefail

if [[ $# -ne 2 && $# -ne 3 ]]; then
    echo "usage: $0 <main package dir> <output.wasm> [<wit dir>]" >&2
    exit 2
fi
sdk="$(cd "$(dirname "$0")" && pwd)"
pkg="$(cd "$1" && pwd)"
out="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
wit="$(cd "${3:-$sdk/../../wit}" && pwd)"
bin="$("$sdk/toolchain.sh" | tail -n1)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(
    cd "$pkg"
    GOOS=wasip1 GOARCH=wasm GOPROXY=off GOTOOLCHAIN=local GOWORK=off GOFLAGS= CGO_ENABLED=0 \
        "$bin/go" build -buildmode=c-shared -trimpath -ldflags="-s -w" -o "$tmp/core.wasm" .
)
"$bin/python" "$sdk/add-adapter-realloc.py" "$tmp/core.wasm" "$tmp/core-adapted.wasm"
"$bin/wasm-tools" component embed "$wit" --world strategy "$tmp/core-adapted.wasm" -o "$tmp/embedded.wasm"
"$bin/wasm-tools" component new "$tmp/embedded.wasm" \
    --adapt wasi_snapshot_preview1="$sdk/.venv/wasi_snapshot_preview1.reactor.wasm" -o "$tmp/component.wasm"
mv "$tmp/component.wasm" "$out"
