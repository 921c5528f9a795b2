"""Checks on a key file the user named, cheap enough to run before anything connects.

Kept apart from :mod:`reproman_backend_ssh.auth` (which imports paramiko) so
the resource can refuse a missing or public key file in a command served by
a session host without loading paramiko, and before starting a host at all.
"""

from __future__ import annotations

import os

from reproman.plugins import ConfigError

_PUBLIC_KEY_STARTS = (b"ssh-", b"ecdsa-", b"sk-ssh-", b"sk-ecdsa-")


def check_key_file(path: str) -> None:
    """Refuse, before any network traffic, a ``key_filename`` that cannot be a private key."""
    if not os.path.exists(path):
        raise ConfigError(
            f"SSH key file {path} does not exist",
            hint="Check -b key_filename (it names the private key, e.g. ~/.ssh/id_ed25519).",
        )
    if os.path.isdir(path):
        raise ConfigError(f"SSH key file {path} is a directory", hint="Name the private key file itself.")
    if path.endswith(".pub") or _looks_public(path):
        private = path[:-4] if path.endswith(".pub") else "the matching private key"
        raise ConfigError(
            f"SSH key file {path} is a public key; ReproMan needs the private key",
            hint=f"Pass -b key_filename={private}.",
        )


def _looks_public(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(16).lstrip().startswith(_PUBLIC_KEY_STARTS)
    except OSError:
        return False
