"""The core session contract in full, run against real containers (busybox always, Debian when built)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from docker_testlib import TEST_LABEL, unique_name

from reproman.testing.session_contract import FullSessionContract
from reproman_backend_docker.resource import DockerContainer
from reproman_backend_docker.session import DockerSession


def _remote_tmp(session: DockerSession) -> Iterator[str]:
    path = session.execute_command("mktemp -d", check=True).stdout.strip()
    yield path
    session.remove(path, recursive=True)


class TestDockerSessionBusybox(FullSessionContract):
    listed_paths = 10_000

    @pytest.fixture
    def session(self, shared_container: DockerContainer) -> Iterator[DockerSession]:
        with shared_container.get_session() as session:
            yield session  # type: ignore[misc]

    @pytest.fixture
    def remote_tmp(self, session: DockerSession) -> Iterator[str]:
        yield from _remote_tmp(session)


@pytest.fixture(scope="class")
def debian_container(docker_client: object, debian_image: str) -> Iterator[DockerContainer]:
    """One container of the full Debian test image, for the whole class."""
    resource = DockerContainer(unique_name("rmt-debian"), image=debian_image, labels=[TEST_LABEL])
    try:
        resource.create()
        yield resource
    finally:
        resource.delete()


class TestDockerSessionDebian(FullSessionContract):
    listed_paths = 10_000

    @pytest.fixture
    def session(self, debian_container: DockerContainer) -> Iterator[DockerSession]:
        # A session of its own (not the resource's client), as another plugin would open one.
        session = DockerSession(debian_container.id or debian_container.name)
        try:
            yield session
        finally:
            session.close()

    @pytest.fixture
    def remote_tmp(self, session: DockerSession) -> Iterator[str]:
        yield from _remote_tmp(session)
