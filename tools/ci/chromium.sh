#!/bin/sh
# Install Debian's headless-capable Chromium for the job report's browser test.
#
# Idempotent, for a fresh Debian 12 run as root (CI) or a developer machine:
# installs the `chromium` package only when no chromium binary is found.
# Nothing is started: the test runs `chromium --headless` itself on the
# report file (tests/integration/test_report_browser.py). Exits non-zero if
# chromium still cannot be found.
set -eu

say() { printf 'chromium.sh: %s\n' "$*" >&2; }

if ! command -v chromium >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || { say "chromium is missing and installing it needs root"; exit 1; }
    say "installing chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || { say "apt-get update failed"; exit 1; }
    apt-get install -y -q --no-install-recommends chromium >/dev/null || { say "apt-get install chromium failed"; exit 1; }
fi
command -v chromium >/dev/null 2>&1 || { say "chromium not found after installing"; exit 1; }
say "ready: $(chromium --version 2>/dev/null || echo chromium)"
