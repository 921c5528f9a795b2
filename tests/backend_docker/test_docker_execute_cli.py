"""``reproman execute -r BOX`` as a user runs it: the command's bytes unchanged, and Ctrl-C or SIGTERM stop
the command's whole process group in the container."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from docker_testlib import TEST_LABEL, unique_name

#: Every process in the container as "PID CMDLINE" lines; the script itself names no test tag.
_PROCESSES = "for f in /proc/[0-9]*/cmdline; do printf '%s ' \"${f%/cmdline}\"; tr '\\0' ' ' < \"$f\"; echo; done"


def _reproman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(params=["busybox", "debian"])
def box(request: pytest.FixtureRequest, docker_client: Any) -> Iterator[tuple[str, Any]]:
    """A container created with the CLI in this test's inventory, on the busybox or the Debian test image."""
    image = request.getfixturevalue(f"{request.param}_image")
    name = unique_name("rmt-int")
    created = _reproman("create", name, "-t", "docker-container", "-b", f"image={image}", "-b", f"labels={TEST_LABEL}")
    assert created.returncode == 0, created.stderr
    try:
        yield name, docker_client.containers.get(name)
    finally:
        docker_client.api.remove_container(name, force=True)


def _tagged(container: Any, tag: str) -> list[str]:
    """Processes in ``container`` whose command line mentions ``tag``."""
    listing = container.exec_run(["/bin/sh", "-c", _PROCESSES]).output.decode("utf-8", "replace")
    return [line for line in listing.splitlines() if tag in line]


def test_output_bytes_pass_through_unchanged(box: tuple[str, Any]) -> None:
    name, container = box
    proc = subprocess.run([sys.executable, "-m", "reproman", "execute", "-r", name, "printf", "a\\377b\\000c\\n"],
                          capture_output=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (0, b"a\xffb\x00c\n")
    assert container.exec_run(["/bin/sh", "-c", "head -c 200000 /dev/urandom > /tmp/blob"]).exit_code == 0
    remote_sum = container.exec_run(["sha256sum", "/tmp/blob"]).output.split()[0].decode()
    proc = subprocess.run([sys.executable, "-m", "reproman", "execute", "-r", name, "cat", "/tmp/blob"],
                          capture_output=True, timeout=120)
    assert proc.returncode == 0 and len(proc.stdout) == 200_000
    assert hashlib.sha256(proc.stdout).hexdigest() == remote_sum
    proc = subprocess.run([sys.executable, "-m", "reproman", "execute", "-r", name, "sh", "-c",
                           "printf '\\376' >&2; exit 9"], capture_output=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (9, b"\xfe")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_remote_process_group(box: tuple[str, Any], sig: int, code: int) -> None:
    name, container = box
    tag = f"{os.getpid() % 1000}{int(sig)}{os.urandom(2).hex()}"
    tag = "".join(c for c in tag if c.isdigit()) or "4242"
    # Two children, one in the background, and a grandchild shell: all of them must go.
    command = f"sleep 9{tag} & sh -c 'sleep 8{tag}; true'; wait"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reproman", "execute", "-r", name, "sh", "-c", command],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not all(any(f"sleep {d}{tag}" == line.split(" ", 1)[1].strip() for line in _tagged(container, tag))
                      for d in (8, 9)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command did not start in the container"
            time.sleep(0.2)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err.decode()
    assert b"stopped on the resource" in err and b"Traceback" not in err
    assert _tagged(container, tag) == [], "processes left in the container"


def test_reader_gone_stops_the_command(box: tuple[str, Any]) -> None:
    """``reproman execute -r BOX ... | head -1``: when head exits, the command does not run on in the container.

    The command ignores SIGPIPE (so only the stop through a second exec can end its sleep).
    """
    name, container = box
    tag = "".join(c for c in f"{os.getpid()}{os.urandom(2).hex()}" if c.isdigit())[-7:]
    command = f"trap '' PIPE; echo first; sleep 1; echo second; echo third; sleep 7{tag}"
    proc = subprocess.Popen([sys.executable, "-m", "reproman", "execute", "-r", name, "sh", "-c", command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"first\n"
        proc.stdout.close()  # the reader goes away, as head -1 does
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert err == b"", err  # not "lost the Docker Engine": the broken pipe was ours, and quiet
    assert _tagged(container, tag) == [], "the command runs on in the container"


def _wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_kill_9_of_the_cli_stops_the_command(box: tuple[str, Any]) -> None:
    """``kill -9`` of ``reproman execute -r BOX``: the Engine lets an exec run on after its client is gone, so
    before, ``sleep`` ran to its end in the container. Now the exec's input, held open by the CLI, closes and
    the watch in the container stops the command's group."""
    name, container = box
    tag = "".join(c for c in f"{os.getpid()}{os.urandom(2).hex()}" if c.isdigit())[-6:]
    sleeps = (f"sleep 9{tag}", f"sleep 8{tag}")
    proc = subprocess.Popen([sys.executable, "-m", "reproman", "execute", "-r", name, "sh", "-c",
                             f"{sleeps[0]} & sh -c '{sleeps[1]}; true'; wait"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        running = lambda: [line for line in _tagged(container, tag)  # noqa: E731
                           if line.split(" ", 1)[1].strip() in sleeps]
        assert _wait_until(lambda: len(running()) == 2, 60), "the command did not start in the container"
        proc.kill()
        proc.wait(timeout=30)
        assert _wait_until(lambda: not running(), 15), f"the command runs on in the container: {running()}"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ctrl_c_reaches_the_command_as_sigint_not_as_the_watchs_hangup(box: tuple[str, Any]) -> None:
    """The kill -9 watch must not pre-empt Ctrl-C: the command's own INT handler runs (it may clean up)."""
    name, container = box
    tag = os.urandom(4).hex()
    said, ready = f"/tmp/signal-{tag}", f"/tmp/ready-{tag}"
    script = (f"trap 'echo INT > {said}; exit 5' INT; trap 'echo HUP > {said}; exit 6' HUP; "
              f": > {ready}; sleep 60 & wait")
    proc = subprocess.Popen([sys.executable, "-m", "reproman", "execute", "-r", name, "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert _wait_until(lambda: container.exec_run(["test", "-e", ready]).exit_code == 0, 60), \
            "the command did not start in the container"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert container.exec_run(["cat", said]).output == b"INT\n"


def test_non_utf8_command_words_reach_the_container_byte_exact(box: tuple[str, Any]) -> None:
    """Docker's exec API is JSON (UTF-8 only): a byte 0xff typed by the user must still arrive as 0xff."""
    name, _container = box
    words = [b"printf", b"%s|", b"\xff", b"it's", b"a\\b", b"100%", "\u00e9".encode()]
    result = subprocess.run([sys.executable, "-m", "reproman", "execute", "-r", name.encode(), *words],
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"\xff|it's|a\\b|100%|\xc3\xa9|"
