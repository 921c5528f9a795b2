"""The core session contract, run against a real sshd."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reproman.testing.session_contract import FullSessionContract


class TestSSHSession(FullSessionContract):
    listed_paths = 10_000

    @pytest.fixture
    def session(self, make_session: Callable[..., Any]) -> Iterator[Any]:
        with make_session() as session:
            yield session

    @pytest.fixture
    def remote_tmp(self, session: Any) -> Iterator[str]:
        path = session.execute_command("mktemp -d", check=True).stdout.strip()
        yield path
        session.remove(path, recursive=True)


@pytest.fixture(scope="class")
def alias_session(sshd: Any) -> Iterator[Any]:
    """One SSH session reaching the server through the ``rmtest`` ssh_config alias."""
    from reproman_backend_ssh.session import SSHSession

    params = {**sshd.session_params(), "host": "rmtest", "port": None, "user": None, "key_filename": None}
    with SSHSession(**params) as session:
        yield session


class TestSSHSessionThroughAlias(FullSessionContract):
    """The same contract through an ssh_config alias, on ONE session kept across all its tests.

    HostName, Port, User and IdentityFile come from the file only. Sharing
    the session checks that a long-lived session stays in sync through every
    kind of call the contract makes (only its variables are reset between tests).
    """

    @pytest.fixture
    def session(self, alias_session: Any) -> Iterator[Any]:
        yield alias_session
        alias_session._env.clear()

    @pytest.fixture
    def remote_tmp(self, session: Any) -> Iterator[str]:
        path = session.execute_command("mktemp -d", check=True).stdout.strip()
        yield path
        session.remove(path, recursive=True)


class TestSSHSessionThroughItsHost(FullSessionContract):
    """The same contract through a persistent connection: the ssh session lives in a session host.

    This is how the ssh resource's sessions work by default; 3,000 names are
    already past the 128 KiB one command-line argument may hold.
    """

    listed_paths = 3_000

    @pytest.fixture
    def session(self, ssh_params: dict[str, Any]) -> Iterator[Any]:
        from reproman.resources import persistent
        from reproman_backend_ssh.resource import session_parameters

        hosted = persistent.attach("ssh", session_parameters(ssh_params), label="contract")
        assert hosted is not None
        with hosted.open() as session:
            yield session

    @pytest.fixture
    def remote_tmp(self, session: Any) -> Iterator[str]:
        path = session.execute_command("mktemp -d", check=True).stdout.strip()
        yield path
        session.remove(path, recursive=True)
