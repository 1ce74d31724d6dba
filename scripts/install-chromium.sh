#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium (the `chromium` package), which
# the end-to-end tests use to look at pages as a person would:
# tests/e2e/report.rs renders `batchllm-host report` pages, tests/e2e/serve_page.rs
# screenshots `serve`'s status page. Returns at once when /usr/bin/chromium runs.
#
# apt-get needs root: run as root (a CI container), or with password-less sudo.
# When the install cannot happen (no root and no sudo, no apt-get, apt fails,
# a distribution whose `chromium` is a snap stub), the script says why, leaves
# the reason in tests/peers/.chromium-unavailable and exits 1. Only with that
# note do the tests skip their browser steps, each saying so on the terminal;
# without it a missing browser fails them with this script's name. So a
# browser step is never skipped unnoticed: the note names the failed install,
# and scripts/test.sh repeats it after the tests.
#
#   scripts/install-chromium.sh
set -euo pipefail
cd "$(dirname "$0")/.."

note=tests/peers/.chromium-unavailable
browser=/usr/bin/chromium

works() {
    [[ -x $browser ]] && "$browser" --headless --no-sandbox --version >/dev/null 2>&1
}

unavailable() {
    mkdir -p "$(dirname "$note")"
    printf '%s\n' "$1" > "$note"
    {
        echo "install-chromium: WARNING: headless Chromium is not installed: $1"
        echo "install-chromium: the browser steps of tests/e2e/report.rs and serve_page.rs will be SKIPPED"
        echo "install-chromium: (as root: apt-get install -y chromium, then run this script again)"
    } >&2
    exit 1
}

if works; then
    rm -f "$note"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || unavailable "no apt-get on this machine (the tests use Debian's chromium package)"
if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    unavailable "apt-get needs root, and this user is not root and has no password-less sudo"
fi

echo "install-chromium: installing Debian's chromium with apt-get" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! "${as_root[@]}" apt-get update -qq >"$log" 2>&1; then
    unavailable "apt-get update failed: $(tail -n 3 "$log" | tr '\n' ' ')"
fi
if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
    >"$log" 2>&1; then
    unavailable "apt-get install chromium failed: $(tail -n 3 "$log" | tr '\n' ' ')"
fi
works || unavailable "chromium was installed but \`$browser --headless --version\` does not run (a snap stub?)"
rm -f "$note"
echo "install-chromium: $("$browser" --version 2>/dev/null)" >&2
