#!/usr/bin/env bash
# Builds this Python strategy plugin: dist/$name.wasm (name below).
#
# Toolchain: componentize-py, pinned in requirements.txt, installed from PyPI
# into .venv/ (ignored) on the first build. Needs Python >= 3.10 with venv
# and pip (`python3`, or set PYTHON). To reuse an install of the same
# componentize-py version elsewhere instead, point COMPONENTIZE_PY at its
# executable (the repository's tests do this with
# plugins/openai-py/.venv/bin/componentize-py).
#
# Idempotent and cheap when up to date: nothing runs when the hash of the
# inputs (sources, WIT, requirements, this script) equals the one stamped
# next to the output, and pip runs only when requirements.txt changed.
# Prints the output path on stdout.
set -euo pipefail

# Resolved before `cd`: a relative path is relative to the caller's directory.
toolchain=""
if [[ -n ${COMPONENTIZE_PY:-} ]]; then
    toolchain="$(command -v "$COMPONENTIZE_PY" 2>/dev/null)" && toolchain="$(cd "$(dirname "$toolchain")" && pwd)/$(basename "$toolchain")" || {
        echo "error: COMPONENTIZE_PY=$COMPONENTIZE_PY is not an executable" >&2
        exit 1
    }
fi
cd "$(dirname "$0")"

# The component's file name; rename it with your plugin.
name=my-strategy
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
    find requirements.txt build.sh src "$wit" -type f -not -path '*/__pycache__/*' | LC_ALL=C sort | xargs sha256sum |
        sha256sum | cut -d' ' -f1
}

hash="$(inputs_hash)"
if [[ -f $out && -f $stamp && "$(cat "$stamp")" == "$hash" ]]; then
    echo "$PWD/$out"
    exit 0
fi

# The pinned componentize-py version, from requirements.txt.
pinned="$(sed -n 's/^componentize-py==\([^ ]*\).*/\1/p' requirements.txt)"
if [[ -n $toolchain ]]; then
    componentize_py="$toolchain"
    found="$("$componentize_py" --version 2>/dev/null | awk '{ print $2 }' || true)"
    if [[ $found != "$pinned" ]]; then
        echo "error: COMPONENTIZE_PY=$componentize_py is componentize-py ${found:-(unknown)}; this plugin pins $pinned" >&2
        exit 1
    fi
else
    python="${PYTHON:-python3}"
    componentize_py=.venv/bin/componentize-py
    req_hash="$(sha256sum requirements.txt | cut -d' ' -f1)"
    if [[ ! -x $componentize_py || ! -f .venv/.batchllm-req-hash || "$(cat .venv/.batchllm-req-hash)" != "$req_hash" ]]; then
        command -v "$python" >/dev/null 2>&1 || {
            echo "error: \`$python\` not found; this plugin's build needs Python >= 3.10 with venv and pip" >&2
            exit 1
        }
        echo "$name: installing the toolchain (pip, requirements.txt)" >&2
        [[ -x .venv/bin/python ]] || "$python" -m venv .venv >&2
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt >&2
        echo "$req_hash" > .venv/.batchllm-req-hash
    fi
fi

echo "$name: building $out" >&2
mkdir -p dist
started=$EPOCHREALTIME
# -d the WIT folder, -w the world, -p where the app module is, `strategy` the
# module (src/strategy.py) that defines the export class.
"$componentize_py" -d "$wit" -w strategy componentize -p src strategy -o "$out.tmp" >&2
mv "$out.tmp" "$out"
awk -v a="$started" -v b="$EPOCHREALTIME" -v s="$(wc -c < "$out")" -v o="$out" \
    'BEGIN { printf "built %s: %d bytes in %.1f s\n", o, s, b - a }' >&2
echo "$hash" > "$stamp"
echo "$PWD/$out"
