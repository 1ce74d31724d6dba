#!/usr/bin/env bash
# Builds the JavaScript openai strategy plugin from source:
#   plugins/openai-js/dist/openai-js.wasm        (HTTP through the `http.send` import)
#   plugins/openai-js/dist/openai-js-fetch.wasm  (the same plugin on `fetch`)
#
# The toolchain (componentize-js and its prebuilt wizer, pinned in
# package-lock.json) is installed from the npm registry into node_modules/
# (ignored by git) with `npm ci`. Needs Node >= 18 and npm.
#
# Idempotent and cheap when up to date: the output is rebuilt only when the
# hash of its inputs (sources, WIT, manifest, lock file, build script, node
# version) differs from the one stamped next to it, and `npm ci` runs only
# when package-lock.json changed. Prints the output paths on stdout, the
# `http.send` one last.
set -euo pipefail
cd "$(dirname "$0")"

out=dist/openai-js.wasm
fetch_out=dist/openai-js-fetch.wasm
stamp=dist/openai-js.inputs

for tool in node npm; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "error: \`$tool\` not found; the JS plugin needs Node.js >= 18 with npm" >&2
        exit 1
    }
done

inputs_hash() {
    {
        node --version
        find package.json package-lock.json build.mjs build.sh src ../../wit -type f | LC_ALL=C sort | xargs sha256sum
    } | sha256sum | cut -d' ' -f1
}

hash="$(inputs_hash)"
if [[ -f $out && -f $fetch_out && -f $stamp && "$(cat "$stamp")" == "$hash" ]]; then
    echo "$PWD/$fetch_out"
    echo "$PWD/$out"
    exit 0
fi

lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f node_modules/.batchllm-lock-hash || "$(cat node_modules/.batchllm-lock-hash)" != "$lock_hash" ]]; then
    echo "openai-js: installing the toolchain (npm ci)" >&2
    npm ci --no-audit --no-fund --loglevel=error >&2
    echo "$lock_hash" > node_modules/.batchllm-lock-hash
fi

echo "openai-js: building $out and $fetch_out" >&2
node build.mjs dist >&2
echo "$hash" > "$stamp"
echo "$PWD/$fetch_out"
echo "$PWD/$out"
