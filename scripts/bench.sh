#!/usr/bin/env bash
# Runs the benchmark: builds the release host and the benchmark driver,
# builds the JS, Python and Go plugins when the plugins scenario will run
# (their scripts return at once when up to date), then runs
# `batchllm-bench` with the given arguments, e.g.
#   scripts/bench.sh                 # every scenario (~20 minutes on 2 cores)
#   scripts/bench.sh throughput cpu  # some of them
#   scripts/bench.sh quota           # the rate-limit provider matrix (~15 minutes)
#   scripts/bench.sh quota --quick   # the matrix in short windows (~4 minutes)
#   scripts/bench.sh quota --rows A,B
#   scripts/bench.sh cluster         # --cluster: 3 hosts + redis-server (~10 minutes)
#   scripts/bench.sh cluster-cpu     # only its CPU-per-item row (~2 minutes)
#   scripts/bench.sh --quick         # a smoke test of the harness
# The table goes to stdout; progress to stderr. See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p batchllm-host -p batchllm-bench >&2

# The plugins scenario runs when it is named or when no scenario is.
scenarios=(throughput cpu memory plugins quota cluster cluster-cpu)
named=false
wants_plugins=false
wants_cluster=false
for arg in "$@"; do
    for scenario in "${scenarios[@]}"; do
        if [[ $arg == "$scenario" ]]; then
            named=true
            [[ $arg == plugins ]] && wants_plugins=true
            [[ $arg == cluster || $arg == cluster-cpu ]] && wants_cluster=true
        fi
    done
done
if [[ $named == false || $wants_plugins == true ]]; then
    for script in plugins/openai-js/build.sh plugins/openai-py/build.sh plugins/openai-go/build.sh; do
        if [[ -x $script ]]; then
            "$script" >/dev/null
        fi
    done
fi
if [[ $named == false || $wants_cluster == true ]]; then
    scripts/setup-redis.sh
fi
exec target/release/batchllm-bench "$@"
