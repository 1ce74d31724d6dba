#!/usr/bin/env bash
# Builds this Go strategy plugin: dist/$name.wasm (name below).
#
# Toolchain: Go and wasm-tools (PyPI packages pinned by the Go SDK's
# requirements.txt) and the WASI reactor adapter (from crates.io), installed
# by the SDK's toolchain.sh into its .venv/ (ignored) on the first build. The
# SDK is the folder go.mod's `replace batchllm/sdk => ...` names
# (plugins/sdk-go in the repository). Needs Python >= 3.10 with venv and pip,
# and cargo (for the adapter, once). No Go module proxy is used: the plugin
# needs only the standard library and the SDK.
#
# Idempotent and cheap when up to date: nothing runs when the hash of the
# inputs (sources, go.mod, the SDK, WIT, this script) equals the one stamped
# next to the output. Prints the output path on stdout.
set -euo pipefail
cd "$(dirname "$0")"

# The component's file name; rename it with your plugin.
name=my-strategy
out=dist/$name.wasm
stamp=dist/$name.inputs

# The Go SDK, from go.mod's replace directive.
sdk="$(sed -n 's|^replace batchllm/sdk => *\([^ ]*\) *$|\1|p' go.mod)"
[[ -n $sdk && -x $sdk/build-component.sh ]] || {
    echo "error: go.mod must replace batchllm/sdk with the path of the Go SDK (plugins/sdk-go of the" >&2
    echo "       batchllm-host repository); found \`${sdk:-nothing}\`" >&2
    exit 1
}

# The WIT contract this plugin is built against ships with it, in ./wit (a
# copy of the batchllm-host repository's wit/strategy.wit).
wit=wit
[[ -f $wit/strategy.wit ]] || {
    echo "error: no WIT contract in $PWD/wit; copy the batchllm-host repository's wit/strategy.wit there," >&2
    echo "       or start a new project with \`batchllm-host plugin new NAME --lang LANG\`, which includes it" >&2
    exit 1
}

inputs_hash() {
    find go.mod build.sh ./*.go "$sdk" "$wit" -type f -not -path "$sdk/.venv/*" -not -name '*_test.go' |
        LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1
}

hash="$(inputs_hash)"
if [[ -f $out && -f $stamp && "$(cat "$stamp")" == "$hash" ]]; then
    echo "$PWD/$out"
    exit 0
fi

echo "$name: building $out" >&2
mkdir -p dist
started=$EPOCHREALTIME
"$sdk/build-component.sh" . "$out.tmp" "$wit" >&2
mv "$out.tmp" "$out"
awk -v a="$started" -v b="$EPOCHREALTIME" -v s="$(wc -c < "$out")" -v o="$out" \
    'BEGIN { printf "built %s: %d bytes in %.1f s\n", o, s, b - a }' >&2
echo "$hash" > "$stamp"
echo "$PWD/$out"
