"""Fixtures for the docker backend's tests: a real Docker Engine and locally built images.

No registry is reachable where these tests run, so the images are built
here (or by ``tools/ci/docker.sh``) from what Debian ships: busybox-static
for a 2 MB image with every tool the session contract needs, debootstrap
for a full Debian. Every container a test makes carries the label
``reproman-test=<this test run>``; they are removed by the fixture that made
them and, as a safety net, swept at the start and end of the session
(with those of earlier runs that have exited; see ``docker_testlib``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from docker_testlib import BUSYBOX_IMAGE, DEBIAN_IMAGE, TEST_LABEL, build_busybox_image, sweep, unique_name

from reproman.testing.services import service_missing

if TYPE_CHECKING:
    import docker

    from reproman_backend_docker.resource import DockerContainer


@pytest.fixture(scope="session", autouse=True)
def isolated_session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throwaway HOME from the first fixture on: session fixtures (the client, the images) run before a test's."""
    home = tmp_path_factory.mktemp("session-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.delenv("XDG_CACHE_HOME", raising=False)
        yield home


@pytest.fixture(autouse=True)
def isolated_home(isolated_user: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's HOME is the throwaway user's: a job's default root is ``~/.reproman/run-root``.

    Without it, jobs run on a container from these tests (and every CLI they
    start, which inherits HOME) wrote their local records and caches into the
    real HOME of whoever ran the suite.
    """
    monkeypatch.setenv("HOME", str(isolated_user))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return isolated_user


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """An SDK client to an Engine that answers; a missing engine skips (fails under CI)."""
    try:
        import docker
    except ImportError:
        service_missing("the docker SDK is not installed")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        service_missing(f"no Docker Engine answers ({type(exc).__name__}); run tools/ci/docker.sh")
    sweep(client)
    yield client
    sweep(client)
    client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_client: docker.DockerClient) -> str:
    """The tiny test image, built on first use if ``tools/ci/docker.sh`` has not made it."""
    import docker

    try:
        docker_client.images.get(BUSYBOX_IMAGE)
    except docker.errors.ImageNotFound:
        try:
            build_busybox_image(docker_client)
        except FileNotFoundError as exc:
            service_missing(str(exc))
    return BUSYBOX_IMAGE


@pytest.fixture(scope="session")
def debian_image(docker_client: docker.DockerClient) -> str:
    """The full Debian test image; building it takes debootstrap, so only tools/ci/docker.sh does."""
    import docker

    try:
        docker_client.images.get(DEBIAN_IMAGE)
    except docker.errors.ImageNotFound:
        service_missing(f"image {DEBIAN_IMAGE} is absent; build it with tools/ci/docker.sh")
    return DEBIAN_IMAGE


@pytest.fixture
def make_container(docker_client: docker.DockerClient, busybox_image: str) -> Iterator[Callable[..., DockerContainer]]:
    """Create labelled containers from ``DockerContainer``; all are removed at teardown, pass or fail."""
    from reproman_backend_docker.resource import DockerContainer

    made: list[DockerContainer] = []

    def make(name: str | None = None, **params: Any) -> DockerContainer:
        params.setdefault("image", busybox_image)
        params["labels"] = [TEST_LABEL, *params.get("labels", [])]
        resource = DockerContainer(name or unique_name(), **params)
        made.append(resource)
        resource.create()
        return resource

    yield make
    for resource in made:
        try:
            docker_client.api.remove_container(resource.id or resource.name, force=True)
        except Exception:  # never created, or removed by the test itself
            pass


@pytest.fixture(scope="module")
def shared_container(docker_client: docker.DockerClient, busybox_image: str) -> Iterator[DockerContainer]:
    """One busybox container for a whole module of session tests (containers take ~0.5 s to make)."""
    from reproman_backend_docker.resource import DockerContainer

    resource = DockerContainer(unique_name("rmt-shared"), image=busybox_image, labels=[TEST_LABEL])
    try:
        resource.create()
        yield resource
    finally:
        try:
            docker_client.api.remove_container(resource.id or resource.name, force=True)
        except Exception:
            pass
