#!/usr/bin/env bash
# Builds the Python openai strategy plugin from source:
#   plugins/openai-py/dist/openai-py.wasm
#
# The toolchain (componentize-py, pinned in requirements.txt) is installed
# from PyPI into .venv/ (ignored by git). Needs Python >= 3.10 with venv and
# pip (`python3`, or set PYTHON).
#
# Idempotent and cheap when up to date: the output is rebuilt only when the
# hash of its inputs (sources, WIT, requirements, build script) differs from
# the one stamped next to it, and pip runs only when requirements.txt
# changed. Prints the output path on stdout.
set -euo pipefail
cd "$(dirname "$0")"

out=dist/openai-py.wasm
stamp=dist/openai-py.wasm.inputs
python="${PYTHON:-python3}"

command -v "$python" >/dev/null 2>&1 || {
    echo "error: \`$python\` not found; the Python plugin needs Python >= 3.10 with venv and pip" >&2
    exit 1
}

inputs_hash() {
    find requirements.txt build.sh src ../../wit -type f -not -path '*/__pycache__/*' | LC_ALL=C sort | xargs sha256sum |
        sha256sum | cut -d' ' -f1
}

hash="$(inputs_hash)"
if [[ -f $out && -f $stamp && "$(cat "$stamp")" == "$hash" ]]; then
    echo "$PWD/$out"
    exit 0
fi

req_hash="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [[ ! -x .venv/bin/componentize-py || ! -f .venv/.batchllm-req-hash || "$(cat .venv/.batchllm-req-hash)" != "$req_hash" ]]; then
    echo "openai-py: installing the toolchain (pip, requirements.txt)" >&2
    [[ -x .venv/bin/python ]] || "$python" -m venv .venv >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt >&2
    echo "$req_hash" > .venv/.batchllm-req-hash
fi

echo "openai-py: building $out" >&2
mkdir -p dist
started=$EPOCHREALTIME
.venv/bin/componentize-py -d ../../wit -w strategy componentize -p src strategy -o "$out.tmp" >&2
mv "$out.tmp" "$out"
awk -v a="$started" -v b="$EPOCHREALTIME" -v s="$(wc -c < "$out")" -v o="$out" 'BEGIN { printf "built %s: %d bytes in %.1f s\n", o, s, b - a }' >&2
echo "$hash" > "$stamp"
echo "$PWD/$out"
