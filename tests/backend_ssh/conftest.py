"""A real sshd for the SSH backend's tests, started once per test session.

Everything it needs (host key, client keys, authorized_keys, known_hosts,
ssh_config) lives in a temporary directory, and each test gets a temporary
HOME with no agent, so nothing reads or writes the real ``~/.ssh``, and a
control directory of its own for session hosts, all stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running :class:`LocalSSHD`; skipped locally (failed under CI) when sshd is absent."""
    from reproman_backend_ssh.testing import running_sshd

    yield from running_sshd(tmp_path_factory.mktemp("sshd"))


@pytest.fixture(autouse=True)
def ssh_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway HOME without an agent: default keys and known_hosts are the test's own."""
    home = tmp_path_factory.mktemp("ssh-home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


@pytest.fixture(autouse=True)
def sessions(isolated_user: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's control directory for persistent connections; its hosts are stopped afterwards."""
    from reproman_backend_ssh.testing import private_sessions

    yield from private_sessions(monkeypatch)


@pytest.fixture
def ssh_params(sshd: Any) -> dict[str, Any]:
    """Session keyword arguments (and backend parameters) reaching the test sshd."""
    return dict(sshd.session_params())


@pytest.fixture
def make_session(ssh_params: dict[str, Any]) -> Iterator[Callable[..., Any]]:
    """Open SSH sessions with overrides; all are closed after the test."""
    from reproman_backend_ssh.session import SSHSession

    opened: list[SSHSession] = []

    def make(**overrides: Any) -> SSHSession:
        session = SSHSession(**{**ssh_params, **overrides})
        opened.append(session)
        return session

    yield make
    for session in opened:
        session.close()
