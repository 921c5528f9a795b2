"""The ``ssh`` resource type against the resource contract suite (a real sshd on loopback)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from reproman.testing.resource_contract import ResourceContract


class TestSSHResourceContract(ResourceContract):
    resource_type = "ssh"
    # ReproMan does not power SSH hosts on or off: start and stop are refused, the host stays usable.
    supports_start_stop = False

    @pytest.fixture
    def backend_parameters(self, ssh_params: dict[str, Any]) -> Mapping[str, Any]:
        return ssh_params
