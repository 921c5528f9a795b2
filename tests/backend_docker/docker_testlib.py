"""Names and builders shared by the docker backend's tests and fixtures (not a conftest, so tests can import it)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from reproman_backend_docker.ownership import creator_exited, creator_id
from reproman_backend_docker.testimages import BUSYBOX_IMAGE, DEBIAN_IMAGE, build_busybox_image

if TYPE_CHECKING:
    import docker

__all__ = ["BUSYBOX_IMAGE", "DEBIAN_IMAGE", "TEST_LABEL", "build_busybox_image", "sweep", "unique_name"]
_TEST_KEY = "reproman-test"
#: On every container these tests make; the value names this test run (host, pytest's PID and start time),
#: because the Engine is shared: a sweep removes this run's containers and those of runs that have exited,
#: never those of a test run still going on (another checkout, another developer).
TEST_LABEL = f"{_TEST_KEY}={creator_id()}"


def sweep(client: docker.DockerClient) -> None:
    """Remove this run's test containers, and those left by test runs that have exited."""
    for row in client.api.containers(all=True, filters={"label": _TEST_KEY}):
        run = (row.get("Labels") or {}).get(_TEST_KEY)
        if f"{_TEST_KEY}={run}" == TEST_LABEL or creator_exited(run):
            try:
                client.api.remove_container(row["Id"], force=True)
            except Exception:  # already going away
                pass


def unique_name(prefix: str = "rmt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
