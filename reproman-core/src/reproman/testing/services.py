"""How tests treat a missing real service: skip locally, fail under CI.

CI sets ``CI=true`` and must have every service running; a developer
without Docker or Slurm still gets a green run of what they can test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def service_missing(reason: str) -> None:
    """Skip the test with ``reason``, or fail it when running under CI."""
    if in_ci():
        pytest.fail(f"required service missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_executable(name: str, why: str = "") -> str:
    path = shutil.which(name)
    if path is None:
        service_missing(f"{name} not on PATH" + (f" ({why})" if why else ""))
    return path  # type: ignore[return-value]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process_group(process: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 10) -> None:
    """Stop a service started with ``start_new_session=True`` and everything it forked.

    SIGTERM to the whole group, then SIGKILL if it has not gone within
    ``timeout``: a test's sshd or moto server must not outlive the test run.
    """
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
