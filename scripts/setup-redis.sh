#!/usr/bin/env bash
# Installs redis-server from Debian when it is missing: the --cluster tests
# and the benchmark's cluster scenario start their own on 127.0.0.1 (on a
# free port, stopped by PID). Returns at once when it is installed.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: redis-server is not installed; install it with: apt-get install -y redis-server" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq redis-server >/dev/null
command -v redis-server >/dev/null
