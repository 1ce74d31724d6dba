#!/usr/bin/env bash
# Runs the benchmark: builds the release host and the benchmark driver,
# builds the JS, Python and Go plugins (their scripts return at once when up
# to date), then runs `batchllm-bench` with the given arguments, e.g.
#   scripts/bench.sh                 # every scenario (~6 minutes on 2 cores)
#   scripts/bench.sh throughput cpu  # some of them
#   scripts/bench.sh --quick         # a smoke test of the harness
# The table goes to stdout; progress to stderr. See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p batchllm-host -p batchllm-bench >&2
for script in plugins/openai-js/build.sh plugins/openai-py/build.sh plugins/openai-go/build.sh; do
    if [[ -x $script ]]; then
        "$script" >/dev/null
    fi
done
exec target/release/batchllm-bench "$@"
