#!/usr/bin/env bash
# Fuzzes everything the host reads from outside, with cargo-fuzz (libFuzzer):
#
#   scripts/fuzz.sh                    every target, 60 s each
#   scripts/fuzz.sh all SECONDS        every target, SECONDS each
#   scripts/fuzz.sh TARGET [SECONDS]   one target (default 60 s)
#   scripts/fuzz.sh --list             the targets
#   scripts/fuzz.sh --replay [TARGET]  run the seeds and kept crashes once, no fuzzing
#
# Targets live in fuzz/ (its own workspace and lock file); each starts from
# its seeds (fuzz/seeds/TARGET: real provider answers, the README's and
# examples' files) plus the crashes already fixed (fuzz/regressions/TARGET),
# and grows a working corpus in fuzz/corpus/TARGET (not committed).
#
# A crash is saved as fuzz/artifacts/TARGET/crash-*; the script goes on with
# the other targets and exits non-zero. To keep one: `RUSTC_BOOTSTRAP=1 cargo
# fuzz tmin --fuzz-dir fuzz -s none TARGET ARTIFACT`, copy the minimised
# input to fuzz/regressions/TARGET/, and add the unit test beside the code
# that fails without the fix.
#
# Toolchain: cargo-fuzz asks for nightly-only flags (`-Zsanitizer=...` for
# ASan, `-Z` cargo flags); the project builds with the pinned stable compiler
# (rust-toolchain.toml) and CI has no nightly. RUSTC_BOOTSTRAP=1 makes that
# stable compiler accept them, so nothing else is installed.
#
# Without any of this, `cargo test` runs the same harnesses on stable over
# the seeds, the kept crashes and random edits of the seeds
# (tests/e2e/fuzz_replay.rs). The default here
# is `-s none` (SANITIZER=address to change it): the harnessed code is safe
# Rust, so ASan adds little and halves the speed; panics, overflow checks and
# debug assertions (on in cargo-fuzz's build), stack overflows, memory blowups
# (-rss_limit_mb) and hangs (-timeout) are all reported without it.
#
# The machine is small (2 cores): one target at a time, one process each.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_fuzz_version=0.13.2
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
    cargo install --locked cargo-fuzz --version "$cargo_fuzz_version"
fi
export RUSTC_BOOTSTRAP=1

sanitizer="${SANITIZER:-none}"
# 16 codegen units: the first build compiles wasmtime with coverage
# instrumentation; one unit (cargo-fuzz's default) makes it much slower.
build=(--fuzz-dir fuzz -s "$sanitizer" --codegen-units 16)
libfuzzer=(-timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1)

mapfile -t all < <(cargo fuzz list --fuzz-dir fuzz)

corpora() {
    local t="$1"
    mkdir -p "fuzz/corpus/$t"
    echo "fuzz/corpus/$t"
    for d in "fuzz/seeds/$t" "fuzz/regressions/$t"; do
        [[ -d "$d" ]] && echo "$d"
    done
}

case "${1:-}" in
--list)
    printf '%s\n' "${all[@]}"
    exit 0
    ;;
--replay)
    if [[ -n "${2:-}" ]]; then targets=("$2"); else targets=("${all[@]}"); fi
    cargo fuzz build "${build[@]}"
    for t in "${targets[@]}"; do
        mapfile -t dirs < <(corpora "$t")
        # -runs=0 runs every input of the given folders once.
        cargo fuzz run "${build[@]}" "$t" "${dirs[@]:1}" -- -runs=0 "${libfuzzer[@]}"
    done
    exit 0
    ;;
esac

if [[ $# -ge 1 && "$1" != all ]]; then
    targets=("$1")
else
    targets=("${all[@]}")
fi
seconds="${2:-60}"

cargo fuzz build "${build[@]}"
failed=()
for t in "${targets[@]}"; do
    mapfile -t dirs < <(corpora "$t")
    echo "== $t: ${seconds}s"
    if ! cargo fuzz run "${build[@]}" "$t" "${dirs[@]}" -- -max_total_time="$seconds" "${libfuzzer[@]}"; then
        failed+=("$t")
    fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "crashes in: ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
