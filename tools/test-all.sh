#!/usr/bin/env bash
# Install and start everything the tests need, then run every test session.
# Works as root on a fresh Debian 12 machine; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
if [ ! -f /var/lib/apt/lists/.reproman-updated ] || [ -n "${CI:-}" ]; then
    apt-get update -q
    touch /var/lib/apt/lists/.reproman-updated
fi
apt-get install -y -q --no-install-recommends \
    git git-annex python3 python3-venv python3-pip openssh-client rsync strace subversion rpm parallel >/dev/null

for script in tools/ci/*.sh; do
    echo "== $script"
    bash "$script"
done

git config --global user.name >/dev/null || git config --global user.name "ReproMan Tests"
git config --global user.email >/dev/null || git config --global user.email "tests@reproman.invalid"

# nox lives in its own venv: Debian's system Python refuses pip installs (PEP 668).
[ -x .venv-tools/bin/nox ] || { python3 -m venv .venv-tools && .venv-tools/bin/pip install --quiet nox; }
.venv-tools/bin/nox "$@"
