"""Real services for the cross-package tests: an sshd on loopback, Docker, Slurm.

Every fixture skips when its service is absent on a developer machine and
fails under CI (``CI=true``), where ``tools/test-all.sh`` must have started it.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.testing.services import service_missing


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from reproman_backend_ssh.testing import running_sshd

    yield from running_sshd(tmp_path_factory.mktemp("sshd"))


@pytest.fixture
def ssh_resource(sshd: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An ``ssh`` resource in the test's inventory, reaching the loopback sshd.

    Its persistent connection lives in a control directory of the test's own and is stopped after it.
    """
    from reproman_backend_ssh.testing import private_sessions

    for _control_dir in private_sessions(monkeypatch):
        name = f"ssh-{uuid.uuid4().hex[:6]}"
        api.create(name, "ssh", {k: str(v) for k, v in sshd.session_params().items()})
        yield name


@pytest.fixture(scope="session")
def docker_client() -> Any:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:
        service_missing(f"Docker engine not reachable ({exc}); tools/ci/docker.sh starts it")
    return client


@pytest.fixture(scope="session")
def debian_image(docker_client: Any) -> str:
    from reproman_backend_docker.testimages import DEBIAN_IMAGE

    try:
        docker_client.images.get(DEBIAN_IMAGE)
    except Exception:
        service_missing(f"image {DEBIAN_IMAGE} missing; tools/ci/docker.sh builds it with debootstrap")
    return DEBIAN_IMAGE


@pytest.fixture
def make_container(docker_client: Any, debian_image: str) -> Iterator[Callable[[], str]]:
    """Create ``docker-container`` resources from the Debian test image; all deleted afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"ctr-{uuid.uuid4().hex[:6]}"
        api.create(name, "docker-container", {"image": debian_image, "labels": "reproman-test=1"})
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            api.delete(name, skip_confirmation=True, force=True)
        except Exception:
            pass


@pytest.fixture(scope="session")
def slurm() -> None:
    if shutil.which("sinfo") is None:
        service_missing("Slurm not installed (tools/ci/slurm.sh installs and starts it)")
    result = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if result.returncode != 0 or not result.stdout.strip():
        service_missing(f"Slurm not answering: {result.stderr.strip()}")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local directory a user runs ReproMan from (outputs come back here)."""
    local = tmp_path / "local"
    local.mkdir()
    monkeypatch.chdir(local)
    return local
