"""Names and builders shared by the docker backend's tests and fixtures (not a conftest, so tests can import it)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from reproman_backend_docker.testimages import BUSYBOX_IMAGE, DEBIAN_IMAGE, build_busybox_image

if TYPE_CHECKING:
    import docker

__all__ = ["BUSYBOX_IMAGE", "DEBIAN_IMAGE", "TEST_LABEL", "build_busybox_image", "sweep", "unique_name"]
TEST_LABEL = "reproman-test=1"


def sweep(client: docker.DockerClient) -> None:
    for container in client.containers.list(all=True, filters={"label": TEST_LABEL}):
        try:
            container.remove(force=True)
        except Exception:  # already going away
            pass


def unique_name(prefix: str = "rmt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
