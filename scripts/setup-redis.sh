#!/usr/bin/env bash
# Installs redis-server from Debian when it is missing: the --cluster tests
# and the benchmark's cluster scenario start their own on 127.0.0.1 (on a
# free port, stopped by PID). Returns at once when it is installed.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
as_root=()
if [[ $(id -u) -ne 0 ]]; then
    # A CI runner as a user with password-less sudo.
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        echo "error: redis-server is not installed; install it with: apt-get install -y redis-server" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: redis-server is not installed and there is no apt-get; install redis-server (7.0 or later) with the system's package manager" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >/dev/null
"${as_root[@]}" apt-get install -y -qq --no-install-recommends redis-server >/dev/null
command -v redis-server >/dev/null
