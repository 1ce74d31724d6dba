#!/usr/bin/env bash
# Builds this JavaScript strategy plugin: dist/<name in package.json>.wasm
# (my-strategy.wasm until you rename it).
#
# Toolchain: componentize-js (and preview2-shim, which it loads at build
# time), pinned in package.json and package-lock.json, installed from the npm
# registry into node_modules/ (ignored) with `npm ci` on the first build.
# Needs Node >= 18 and npm. To reuse an install of the same versions
# elsewhere instead, point COMPONENTIZE_JS_NODE_MODULES at its node_modules
# folder (the repository's tests do this with plugins/openai-js/node_modules).
#
# Idempotent and cheap when up to date: nothing runs when the hash of the
# inputs (sources, WIT, manifests, this script, the Node version) equals the
# one stamped next to the output, and `npm ci` runs only when
# package-lock.json changed. Prints the output path on stdout.
set -euo pipefail

# Resolved before `cd`: a relative path is relative to the caller's directory.
toolchain=""
if [[ -n ${COMPONENTIZE_JS_NODE_MODULES:-} ]]; then
    toolchain="$(cd "$COMPONENTIZE_JS_NODE_MODULES" 2>/dev/null && pwd)" || {
        echo "error: COMPONENTIZE_JS_NODE_MODULES=$COMPONENTIZE_JS_NODE_MODULES is not a folder" >&2
        exit 1
    }
fi
cd "$(dirname "$0")"

for tool in node npm; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "error: \`$tool\` not found; this plugin's build needs Node.js >= 18 with npm" >&2
        exit 1
    }
done

name="$(node -p 'require("./package.json").name')"
out=dist/$name.wasm
stamp=dist/$name.inputs

# The WIT contract this plugin is built against ships with it, in ./wit (a
# copy of the batchllm-host repository's wit/strategy.wit).
wit=wit
[[ -f $wit/strategy.wit ]] || {
    echo "error: no WIT contract in $PWD/wit; copy the batchllm-host repository's wit/strategy.wit there," >&2
    echo "       or start a new project with \`batchllm-host plugin new NAME --lang LANG\`, which includes it" >&2
    exit 1
}

inputs_hash() {
    {
        node --version
        find package.json package-lock.json build.mjs build.sh src "$wit" -type f | LC_ALL=C sort | xargs sha256sum
    } | sha256sum | cut -d' ' -f1
}

hash="$(inputs_hash)"
if [[ -f $out && -f $stamp && "$(cat "$stamp")" == "$hash" ]]; then
    echo "$PWD/$out"
    exit 0
fi

if [[ -n $toolchain ]]; then
    # Every package pinned in package.json must be there at that version.
    node_modules="$toolchain"
    missing="$(node -e '
        const [manifest, dir] = process.argv.slice(1);
        const pinned = Object.entries(require(manifest).devDependencies);
        const version = (name) => { try { return require(`${dir}/${name}/package.json`).version; } catch { return "none"; } };
        const bad = pinned.filter(([name, want]) => version(name) !== want);
        console.log(bad.map(([name, want]) => `${name} ${want} (found ${version(name)})`).join(", "));
    ' "$PWD/package.json" "$node_modules")"
    if [[ -n $missing ]]; then
        echo "error: COMPONENTIZE_JS_NODE_MODULES=$node_modules lacks the pinned $missing" >&2
        exit 1
    fi
else
    node_modules=node_modules
    lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
    if [[ ! -f node_modules/.batchllm-lock-hash || "$(cat node_modules/.batchllm-lock-hash)" != "$lock_hash" ]]; then
        echo "$name: installing the toolchain (npm ci)" >&2
        npm ci --no-audit --no-fund --loglevel=error >&2
        echo "$lock_hash" > node_modules/.batchllm-lock-hash
    fi
fi

echo "$name: building $out" >&2
node build.mjs "$node_modules" "$wit" "$out" >&2
echo "$hash" > "$stamp"
echo "$PWD/$out"
