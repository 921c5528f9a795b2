"""The result-safety suite on a docker-container resource with the plain orchestrator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from docker_testlib import unique_name

from reproman.resources.inventory import Inventory
from reproman.testing.result_safety import ResultSafetyContract
from reproman_backend_docker.resource import DockerContainer


class TestDockerPlainResults(ResultSafetyContract):
    """docker-container resource, local submitter (run in the container), plain orchestrator."""

    @pytest.fixture
    def resref(self, shared_container: DockerContainer) -> Iterator[str]:
        # One container serves the module; each test's own (isolated) inventory records it under a new name,
        # as 'reproman create' would have.
        name = unique_name("rmt-results")
        with Inventory().edit() as records:
            records[name] = {**shared_container.to_record(), "name": name}
        yield name
