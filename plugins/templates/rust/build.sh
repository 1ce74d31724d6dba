#!/usr/bin/env bash
# Builds this Rust strategy plugin: dist/<package name>.wasm (my-strategy.wasm
# until you rename the package in Cargo.toml).
#
# Toolchain: the Rust compiler and the wasm32-wasip2 target named in
# rust-toolchain.toml (rustup installs them on first use), and the crates
# pinned in Cargo.lock (from crates.io). Build files go to target/ in this
# folder (or $CARGO_TARGET_DIR when set); both target/ and dist/ are ignored.
#
# Idempotent and cheap when up to date: nothing runs when the hash of the
# inputs (sources, manifests, toolchain file, WIT, this script) equals the
# one stamped next to the output. Prints the output path on stdout.
set -euo pipefail
cd "$(dirname "$0")"

name="$(sed -n 's/^name *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)"
[[ -n $name ]] || { echo "error: no package name in $PWD/Cargo.toml" >&2; exit 1; }
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
    find Cargo.toml Cargo.lock rust-toolchain.toml build.sh src "$wit" -type f | LC_ALL=C sort | xargs sha256sum |
        sha256sum | cut -d' ' -f1
}

hash="$(inputs_hash)"
if [[ -f $out && -f $stamp && "$(cat "$stamp")" == "$hash" ]]; then
    echo "$PWD/$out"
    exit 0
fi

command -v cargo >/dev/null 2>&1 || {
    echo "error: \`cargo\` not found; install Rust with rustup (https://rustup.rs)" >&2
    exit 1
}
# Installs the toolchain and target of rust-toolchain.toml when missing
# (a no-op otherwise). Without rustup, the wasm32-wasip2 target must be
# installed some other way.
if command -v rustup >/dev/null 2>&1; then
    rustup toolchain install >/dev/null 2>&1 || rustup show active-toolchain >&2
fi

target_dir="${CARGO_TARGET_DIR:-target}"
echo "$name: building $out" >&2
started=$EPOCHREALTIME
cargo build --release --target wasm32-wasip2 --target-dir "$target_dir" >&2
mkdir -p dist
cp "$target_dir/wasm32-wasip2/release/${name//-/_}.wasm" "$out.tmp"
mv "$out.tmp" "$out"
awk -v a="$started" -v b="$EPOCHREALTIME" -v s="$(wc -c < "$out")" -v o="$out" \
    'BEGIN { printf "built %s: %d bytes in %.1f s\n", o, s, b - a }' >&2
echo "$hash" > "$stamp"
echo "$PWD/$out"
