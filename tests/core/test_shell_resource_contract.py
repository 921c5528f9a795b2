"""The ``shell`` resource type (this machine) against the resource contract suite."""

from __future__ import annotations

from reproman.testing.resource_contract import ResourceContract


class TestShellResourceContract(ResourceContract):
    resource_type = "shell"
    # This machine is not started or stopped by ReproMan.
    supports_start_stop = False
