"""kill -9 during ``create -t docker-container``: what is left can be cleaned up, and the name can be used again.

The kill is real (SIGKILL to a ``reproman create`` process); only its timing is arranged: the process runs the
ordinary ``api.create`` with the container start wrapped so that it signals, then waits, at the moment
between the Engine making the container and the inventory recording it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_testlib import TEST_LABEL, unique_name

from reproman import api
from reproman_backend_docker.ownership import CREATOR_LABEL, INVENTORY_LABEL, creator_exited, creator_id

#: ``python -c`` driver: argv = name, image, moment ("created" or "running"), signal file, test label.
_DRIVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from reproman import api
    from reproman_backend_docker import resource

    name, image, moment, signal_file, label = sys.argv[1:6]
    original = resource.DockerContainer._start_and_check

    def start_and_wait(self, container):
        if moment == "running":
            original(self, container)
        Path(signal_file).write_text(container.id)
        time.sleep(600)

    resource.DockerContainer._start_and_check = start_and_wait
    api.create(name, "docker-container", [f"image={image}", f"labels={label}"])
    """
)


def _reproman(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], capture_output=True, text=True, timeout=120,
                          env=env)


class Creator:
    """A ``create`` process stopped at the bad moment, to be killed with SIGKILL."""

    def __init__(self, name: str, image: str, moment: str, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.signal_file = tmp / f"{name}.id"
        self.proc = subprocess.Popen([sys.executable, "-c", _DRIVER, name, image, moment, str(self.signal_file), TEST_LABEL],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 60
        while not self.signal_file.exists() or not self.signal_file.read_text():
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "create did not reach the container start"
            time.sleep(0.05)
        self.container_id = self.signal_file.read_text()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL


@pytest.fixture
def cleanup(docker_client: Any) -> Iterator[list[str]]:
    """Container names and IDs to remove at the end, whatever the test left."""
    refs: list[str] = []
    yield refs
    for ref in refs:
        try:
            docker_client.api.remove_container(ref, force=True)
        except Exception:
            pass


def _exists(docker_client: Any, ref: str) -> bool:
    import docker

    try:
        docker_client.api.inspect_container(ref)
    except docker.errors.NotFound:
        return False
    return True


@pytest.mark.parametrize("moment", ["created", "running"])
def test_killed_create_is_cleaned_by_the_next_create(
    docker_client: Any, busybox_image: str, tmp_path: Path, cleanup: list[str], moment: str
) -> None:
    name = unique_name("rmt-crash")
    cleanup.append(name)
    creator = Creator(name, busybox_image, moment, tmp_path)
    creator.kill()
    orphan = creator.container_id
    cleanup.append(orphan)
    # The bad state: the Engine has the container, the inventory does not.
    assert [r["name"] for r in api.ls()] == ["local"]
    assert _exists(docker_client, orphan)
    # The same name again, through the CLI as a user would.
    created = _reproman("create", name, "-t", "docker-container", "-b", f"image={busybox_image}",
                        "-b", f"labels={TEST_LABEL}")
    assert created.returncode == 0, created.stderr
    assert "interrupted" in created.stderr and "Traceback" not in created.stderr
    assert not _exists(docker_client, orphan)
    (row,) = [r for r in api.ls() if r["name"] != "local"]
    assert row["name"] == name and row["id"] != orphan and row["status"] == "running"
    # A finished create (its process gone, its container recorded) is no leftover for the next one.
    second = unique_name("rmt-second")
    cleanup.append(second)
    assert _reproman("create", second, "-t", "docker-container", "-b", f"image={busybox_image}",
                     "-b", f"labels={TEST_LABEL}").returncode == 0
    assert _exists(docker_client, row["id"])
    assert _reproman("delete", "-y", second).returncode == 0
    deleted = _reproman("delete", "-y", name)
    assert deleted.returncode == 0, deleted.stderr
    assert not _exists(docker_client, row["id"]) and [r["name"] for r in api.ls()] == ["local"]


def test_only_interrupted_creates_of_this_inventory_are_removed(
    docker_client: Any, busybox_image: str, tmp_path: Path, cleanup: list[str]
) -> None:
    """A create still running, and a dead one of another inventory, are left alone."""
    running = Creator(unique_name("rmt-alive"), busybox_image, "running", tmp_path)
    cleanup.append(running.container_id)
    other_home = tmp_path / "other-user"
    other_env = {**os.environ, "XDG_CONFIG_HOME": str(other_home / "config"),
                 "XDG_DATA_HOME": str(other_home / "data")}
    foreign = Creator(unique_name("rmt-foreign"), busybox_image, "running", tmp_path, env=other_env)
    cleanup.append(foreign.container_id)
    foreign.kill()
    try:
        name = unique_name("rmt-next")
        cleanup.append(name)
        created = _reproman("create", name, "-t", "docker-container", "-b", f"image={busybox_image}",
                            "-b", f"labels={TEST_LABEL}")
        assert created.returncode == 0, created.stderr
        assert _exists(docker_client, running.container_id), "a create in progress lost its container"
        assert _exists(docker_client, foreign.container_id), "another inventory's container was removed"
        # Once the other inventory creates again, its own leftover goes.
        other_name = unique_name("rmt-other")
        cleanup.append(other_name)
        again = _reproman("create", other_name, "-t", "docker-container", "-b", f"image={busybox_image}",
                          "-b", f"labels={TEST_LABEL}", env=other_env)
        assert again.returncode == 0, again.stderr
        assert not _exists(docker_client, foreign.container_id)
    finally:
        running.kill()


def test_creator_label_tells_running_from_exited(tmp_path: Path) -> None:
    assert not creator_exited(creator_id())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    label = creator_id(child.pid)
    child.wait()
    assert creator_exited(label)
    host, pid, start = creator_id().split("/")
    assert not creator_exited(f"another-host/{pid}/{start}")  # cannot be checked from here: not gone
    assert creator_exited(f"{host}/{pid}/{int(start) + 1}")  # the PID now belongs to another process
    assert not creator_exited(None) and not creator_exited("garbage")


def test_labels_on_created_containers(docker_client: Any, busybox_image: str, cleanup: list[str]) -> None:
    name = unique_name("rmt-labels")
    cleanup.append(name)
    api.create(name, "docker-container", [f"image={busybox_image}", f"labels={TEST_LABEL},{CREATOR_LABEL}=spoof"])
    labels = docker_client.containers.get(name).labels
    assert labels[CREATOR_LABEL] == creator_id() and len(labels[INVENTORY_LABEL]) == 16
