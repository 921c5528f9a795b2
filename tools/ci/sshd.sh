#!/bin/sh
# Make sure an OpenSSH server binary is available for the SSH backend's tests.
#
# Idempotent, for a fresh Debian 12 run as root (CI) or a developer machine:
# installs openssh-server only when sshd is missing, and prepares the
# privilege-separation directory sshd insists on. It does NOT start a daemon:
# the tests and benchmarks start their own sshd on 127.0.0.1 with their own
# keys and config (reproman_backend_ssh.testing.LocalSSHD). Exits non-zero if
# sshd still cannot be found.
set -eu

find_sshd() {
    for candidate in /usr/sbin/sshd /usr/local/sbin/sshd; do
        if [ -x "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    command -v sshd 2>/dev/null
}

if ! sshd_path=$(find_sshd); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "sshd.sh: sshd is missing and installing it needs root" >&2
        exit 1
    fi
    echo "sshd.sh: installing openssh-server" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || { echo "sshd.sh: apt-get update failed" >&2; exit 1; }
    apt-get install -y -qq --no-install-recommends openssh-server >/dev/null \
        || { echo "sshd.sh: apt-get install openssh-server failed" >&2; exit 1; }
    # The package may try to start the system sshd; our tests never use it.
    sshd_path=$(find_sshd) || { echo "sshd.sh: sshd still missing after install" >&2; exit 1; }
fi

if [ "$(id -u)" -eq 0 ]; then
    mkdir -p /run/sshd
    chmod 0755 /run/sshd
fi

"$sshd_path" -V 2>&1 | head -n 1 >&2 || true
echo "sshd.sh: $sshd_path ready" >&2
