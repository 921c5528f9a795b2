"""``login``: a pty-backed shell in the container, driven through a real pseudo-terminal."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from docker_testlib import TEST_LABEL, unique_name

from reproman import api
from reproman_backend_docker.resource import DockerContainer

_LOGIN_CHILD = (
    "import sys\n"
    "from reproman_backend_docker.session import DockerSession\n"
    "command = sys.argv[2] if len(sys.argv) > 2 else None\n"
    "with DockerSession(sys.argv[1]) as s:\n"
    "    sys.exit(s.login(command))\n"
)


def run_in_pty(argv: list[str], typed: bytes = b"", timeout: float = 60) -> tuple[int, bytes]:
    """Run ``argv`` with a pseudo-terminal as its stdin/stdout/stderr, type ``typed``, return (status, output)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    if typed:
        time.sleep(0.5)  # let the remote shell come up before typing, as a person would
        os.write(master, typed)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=max(1.0, deadline - time.monotonic())), output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


@pytest.fixture
def container_id(shared_container: DockerContainer) -> str:
    assert shared_container.id
    return shared_container.id


def test_login_command_gets_a_tty_and_its_exit_code(container_id: str) -> None:
    status, _ = run_in_pty([sys.executable, "-c", _LOGIN_CHILD, container_id, "test -t 0 && test -t 1 && exit 5"])
    assert status == 5


def test_login_window_size_follows_terminal(container_id: str) -> None:
    status, output = run_in_pty([sys.executable, "-c", _LOGIN_CHILD, container_id, "stty size"])
    assert status == 0
    rows, cols = output.decode().split()[-2:]
    assert int(rows) > 0 and int(cols) > 0


def test_login_without_terminal_forwards_pipes(container_id: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _LOGIN_CHILD, container_id, "cat; echo err >&2; exit 4"],
        input=b"piped in\n", capture_output=True, timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (4, b"piped in\n", b"err\n")


@pytest.fixture
def inventory_container(docker_client: Any, busybox_image: str) -> Iterator[str]:
    name = unique_name("rmt-login")
    api.create(name, "docker-container", [f"image={busybox_image}", f"labels={TEST_LABEL}"])
    yield name
    try:
        docker_client.api.remove_container(name, force=True)
    except Exception:
        pass


def test_cli_login_interactive_shell(inventory_container: str) -> None:
    status, output = run_in_pty(
        [sys.executable, "-m", "reproman", "login", inventory_container],
        typed=b"echo hel''lo-from-pty; exit 3\n",
    )
    assert status == 3, output
    assert b"hello-from-pty" in output
