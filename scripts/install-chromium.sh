#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium, which tests/e2e/report.rs uses
# to render `batchllm-host report` pages (a screenshot and the DOM). Returns
# at once when /usr/bin/chromium is already there.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    exec sudo "$0" "$@"
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version
