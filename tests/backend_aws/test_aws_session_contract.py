"""The core session contract through an ``aws-ec2`` resource's session.

Each test launches an instance on moto, routes its fake public IP to the
local sshd with an ssh_config ``Host`` block, and runs the contract on the
session the resource hands out: the registry's ``ssh`` session type,
reached through the instance's address exactly as on AWS, living in a
persistent session host as it does by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman.resources.session import Session
from reproman.testing.session_contract import FullSessionContract


class TestEC2Session(FullSessionContract):
    listed_paths = 10_000

    @pytest.fixture
    def session(
        self, base_params: dict[str, Any], ssh_params: dict[str, Any], route: Callable[[str], None]
    ) -> Iterator[Session]:
        from reproman_backend_aws.resource import EC2Resource

        resource = EC2Resource("contract", **{**base_params, **ssh_params})
        resource.create()
        assert resource.public_ip
        route(resource.public_ip)
        session = resource.get_session()
        try:
            yield session
        finally:
            session.close()
            resource.delete()

    @pytest.fixture
    def remote_tmp(self, session: Session) -> Iterator[str]:
        path = session.execute_command("mktemp -d", check=True).stdout.strip()
        yield path
        session.remove(path, recursive=True)


def test_session_is_the_registry_ssh_type(
    base_params: dict[str, Any], ssh_params: dict[str, Any], route: Callable[[str], None]
) -> None:
    from reproman.plugins.manager import get_plugin_manager
    from reproman_backend_aws.resource import EC2Resource

    resource = EC2Resource("which", **{**base_params, **ssh_params, "persistent": False})
    resource.create()
    assert resource.public_ip
    route(resource.public_ip)
    with resource.get_session() as session:
        assert type(session) is get_plugin_manager().session_type("ssh").load()
        assert getattr(session, "host", None) == resource.public_ip
    resource.delete()


def _gone_soon(sessions: Path, timeout: float = 15.0) -> bool:
    """Whether the session hosts in ``sessions`` have exited within ``timeout`` seconds.

    A host asked to stop finishes what it serves first, and the request of
    the session just closed may still be winding down in its thread: CI once
    saw the host alive right after ``delete`` returned, on a loaded machine.
    """
    import time

    from reproman_backend_ssh.testing import host_pids

    deadline = time.monotonic() + timeout
    while host_pids(sessions) and time.monotonic() < deadline:
        time.sleep(0.05)
    return host_pids(sessions) == []


def test_session_persists_until_stop_and_delete(
    base_params: dict[str, Any], ssh_params: dict[str, Any], route: Callable[[str], None], sshd: Any,
    sessions: Path,
) -> None:
    """By default the instance's ssh session lives in a session host: one login for many sessions."""
    from reproman.resources.persistent import PersistentSession
    from reproman_backend_aws.resource import EC2Resource
    from reproman_backend_ssh.testing import host_pids

    resource = EC2Resource("kept", **{**base_params, **ssh_params})
    resource.create()
    assert resource.public_ip
    route(resource.public_ip)
    logins = sshd.authentications()
    for word in ("one", "two", "three"):
        with resource.get_session() as session:
            assert isinstance(session, PersistentSession)
            assert session.endpoint.type_name == "ssh" and session.endpoint.params["host"] == resource.public_ip
            assert session.execute_command(["echo", word]).stdout == f"{word}\n"
    assert sshd.authentications() == logins + 1
    assert len(host_pids(sessions)) == 1
    resource.stop()
    assert _gone_soon(sessions)
    resource.start()
    route(resource.public_ip)
    with resource.get_session() as session:
        assert session.execute_command("echo back").stdout == "back\n"
    assert len(host_pids(sessions)) == 1
    resource.delete()
    assert _gone_soon(sessions)
