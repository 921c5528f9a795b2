"""A container that was created but could not be recorded (full disk, bad value) is never left running."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from docker_testlib import TEST_LABEL, unique_name

from reproman import api
from reproman.errors import LocalFileError
from reproman_backend_docker.resource import RESOURCE_LABEL


def _containers(client: Any, name: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"{RESOURCE_LABEL}={name}"})


def test_create_on_a_full_disk_removes_the_container(docker_client: Any, busybox_image: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC while writing the inventory (injected: the test cannot fill the user's disk)."""
    from reproman.resources.inventory import Inventory

    def full(self: Inventory, records: Any) -> None:
        raise LocalFileError(f"cannot write {self.path}: No space left on device")

    monkeypatch.setattr(Inventory, "_write", full)
    name = unique_name("rmt-full")
    try:
        with pytest.raises(LocalFileError, match="No space left"):
            api.create(name, "docker-container", [f"image={busybox_image}", f"labels={TEST_LABEL}"])
        assert _containers(docker_client, name) == []
    finally:
        for container in _containers(docker_client, name):
            container.remove(force=True)


@pytest.mark.parametrize("param", ["image=\udcff", "environment=A=\udcff"])
def test_non_utf8_backend_value_refused_before_anything_exists(docker_client: Any, busybox_image: str,
                                                               param: str) -> None:
    name = unique_name("rmt-bytes")
    args = [b"create", name.encode(), b"-t", b"docker-container", b"-b", f"image={busybox_image}".encode(),
            b"-b", os.fsencode(param), b"-b", f"labels={TEST_LABEL}".encode()]
    result = subprocess.run([sys.executable, "-m", "reproman", *args], capture_output=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count(b"\n") == 1, result.stderr
    assert b"not UTF-8" in result.stderr and b"Traceback" not in result.stderr
    assert _containers(docker_client, name) == []
