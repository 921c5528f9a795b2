"""The ``docker-container`` resource type against the resource contract suite (a real Docker Engine)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from reproman.testing.resource_contract import ResourceContract


class TestDockerResourceContract(ResourceContract):
    resource_type = "docker-container"
    supports_start_stop = True
    # The Engine's own word for a stopped container, which `ls --refresh` shows as it is.
    stopped_statuses = frozenset({"exited"})

    @pytest.fixture
    def backend_parameters(self, busybox_image: str) -> Mapping[str, Any]:
        return {"image": busybox_image}

    def assert_gone(self, record: Mapping[str, Any]) -> None:
        import docker
        import docker.errors

        client = docker.from_env()
        try:
            with pytest.raises(docker.errors.NotFound):
                client.containers.get(str(record["id"]))
        finally:
            client.close()
