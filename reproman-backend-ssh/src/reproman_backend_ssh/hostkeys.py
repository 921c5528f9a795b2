"""Host-key checking: which server keys a connection trusts, and the one-line refusals.

Fabric on its own accepts any host key (paramiko's AutoAddPolicy), which
would let anyone on the path impersonate a cluster. Every hop of every
connection is therefore given the user's known_hosts and one of two
policies: refuse unknown hosts (OpenSSH's ``StrictHostKeyChecking=yes``, the
default) or trust and record them once (``accept-new``, opt-in). A key that
differs from a recorded one never reaches a policy: paramiko raises
:class:`paramiko.BadHostKeyException`, which :func:`refusal` words.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path

import paramiko

from reproman.plugins import ConfigError, ResourceConnectionError

log = logging.getLogger("reproman.backend_ssh.hostkeys")

SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"


class UnknownHostKeyError(paramiko.SSHException):
    """The server's key is not in known_hosts and accepting new keys was not asked for."""

    def __init__(self, hostname: str, key: paramiko.PKey, known_hosts: str) -> None:
        super().__init__(f"host key for {hostname} not in {known_hosts}")
        self.hostname = hostname
        self.key = key
        self.known_hosts = known_hosts


def fingerprint(key: paramiko.PKey) -> str:
    """The ``SHA256:...`` fingerprint OpenSSH prints, so users can compare."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


class RejectUnknown(paramiko.MissingHostKeyPolicy):
    """Default policy: an unknown host is refused."""

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise UnknownHostKeyError(hostname, key, self.known_hosts)


class AcceptNew(paramiko.MissingHostKeyPolicy):
    """Opt-in policy: trust an unknown host once and remember it.

    The key is appended to known_hosts rather than rewriting the file, so the
    user's comments and hashed entries survive.
    """

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        path = Path(self.known_hosts)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with path.open("a") as handle:
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        except OSError as exc:
            log.warning("accepted host key for %s but could not record it in %s: %s", hostname, path, exc)
            return
        log.warning("accepted new host key for %s (%s), recorded in %s", hostname, fingerprint(key), path)


def apply(client: paramiko.SSHClient, known_hosts: str, accept_new: bool) -> None:
    """Load the system and user known_hosts into ``client`` and set the policy for unknown hosts."""
    if os.path.isfile(SYSTEM_KNOWN_HOSTS):
        try:
            client.load_system_host_keys(SYSTEM_KNOWN_HOSTS)
        except (OSError, paramiko.SSHException) as exc:
            log.warning("ignoring unreadable %s: %s", SYSTEM_KNOWN_HOSTS, exc)
    if os.path.isfile(known_hosts):
        try:
            client.load_host_keys(known_hosts)
        except (OSError, paramiko.SSHException) as exc:
            raise ConfigError(f"cannot read known_hosts file {known_hosts}: {exc}") from exc
    client.set_missing_host_key_policy(AcceptNew(known_hosts) if accept_new else RejectUnknown(known_hosts))


def refusal(exc: paramiko.BadHostKeyException | UnknownHostKeyError) -> ResourceConnectionError:
    """The one-line error for a host key that is not trusted."""
    if isinstance(exc, UnknownHostKeyError):
        return ResourceConnectionError(
            f"host key of {exc.hostname} ({fingerprint(exc.key)}) is not in {exc.known_hosts}",
            hint="Verify it and add it (ssh-keyscan), or pass -b accept_new_host_key=yes to trust it once.",
        )
    return ResourceConnectionError(
        f"host key of {exc.hostname} does NOT match the one recorded in known_hosts "
        f"(got {fingerprint(exc.key)}, expected {fingerprint(exc.expected_key)}): "
        "someone may be intercepting the connection, or the host was reinstalled",
        hint=f"If the change is expected, remove the old key: ssh-keygen -R '{exc.hostname}'.",
    )
