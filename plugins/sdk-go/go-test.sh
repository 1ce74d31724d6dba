#!/usr/bin/env bash
# Runs `go vet` and `go test` natively on Go modules of this repository with
# the pinned toolchain (installed by toolchain.sh on first use):
#   plugins/sdk-go/go-test.sh <module dir>...
# Plugin logic is plain Go: outside GOOS=wasip1 the sdk's host imports are
# stand-ins, so the unit tests need no WebAssembly runtime. Prints the
# output only on failure (set VERBOSE=1 for always).
set -euo pipefail
bin="$("$(dirname "$0")/toolchain.sh" | tail -n1)"
status=0
for dir in "$@"; do
    out="$(cd "$dir" && GOPROXY=off GOTOOLCHAIN=local GOWORK=off GOFLAGS= CGO_ENABLED=0 GOOS= GOARCH= \
        bash -c '"$0" vet ./... && "$0" test ./...' "$bin/go" 2>&1)" || status=$?
    if [[ $status -ne 0 || -n ${VERBOSE:-} ]]; then
        echo "$out"
    fi
    [[ $status -eq 0 ]] || { echo "go tests failed in $dir" >&2; exit $status; }
done
