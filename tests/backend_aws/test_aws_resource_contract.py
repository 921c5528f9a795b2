"""The ``aws-ec2`` resource type against the resource contract suite, on a moto server (not real AWS).

moto's instances do not run anything: their SSH sessions go to the local test sshd through an
``ssh_config`` block written for each public address EC2 gives them (a new one after every start).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from reproman.resources.inventory import Inventory
from reproman.resources.session import CommandResult
from reproman.testing.resource_contract import ResourceContract


class TestEC2ResourceContract(ResourceContract):
    resource_type = "aws-ec2"
    supports_start_stop = True

    @pytest.fixture
    def backend_parameters(self, base_params: dict[str, Any], ssh_params: dict[str, Any]) -> Mapping[str, Any]:
        return {**base_params, **ssh_params}

    @pytest.fixture(autouse=True)
    def _routes(self, route: Callable[[str], None], ec2: Any) -> None:
        self._route = route
        self._ec2 = ec2

    def run(self, name: str, command: str, *args: str) -> CommandResult:
        instance = str(Inventory().load()[name]["id"])
        (reservation,) = self._ec2.describe_instances(InstanceIds=[instance])["Reservations"]
        address = reservation["Instances"][0].get("PublicIpAddress")
        if address:
            self._route(str(address))
        return super().run(name, command, *args)

    def assert_gone(self, record: Mapping[str, Any]) -> None:
        (reservation,) = self._ec2.describe_instances(InstanceIds=[str(record["id"])])["Reservations"]
        assert reservation["Instances"][0]["State"]["Name"] == "terminated"
