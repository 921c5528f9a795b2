"""A container removed behind ReproMan's back while a job in it is followed: one line at once, not an outage."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from docker_testlib import TEST_LABEL, unique_name

from reproman.errors import ResourceGoneError, SessionError


def _reproman(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


@pytest.mark.timeout(240)
def test_follow_stops_with_one_line_when_the_container_is_removed(
    docker_client: Any, busybox_image: str, tmp_path: Path
) -> None:
    name = unique_name("rmt-gone")
    created = _reproman("create", name, "-t", "docker-container", "-b", f"image={busybox_image}",
                        "-b", f"labels={TEST_LABEL}", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    try:
        follow = subprocess.Popen(
            [sys.executable, "-m", "reproman", "run", "-r", name, "--follow", "sh", "-c", "sleep 120"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 60
        container = docker_client.containers.get(name)
        while b"sleep 120" not in container.exec_run(["ps"]).output:  # the job is running
            assert time.monotonic() < deadline and follow.poll() is None, follow.communicate()
            time.sleep(0.5)
        docker_client.api.remove_container(name, force=True)
        removed = time.monotonic()
        # [jobs] retry_for is 300 s by default: an outage would still be retried long after this.
        _out, err = follow.communicate(timeout=60)
        waited = time.monotonic() - removed
    finally:
        if follow.poll() is None:
            follow.kill()
        try:
            docker_client.api.remove_container(name, force=True)
        except Exception:  # already removed by the test
            pass
    assert follow.returncode == 1, err
    assert waited < 30, (waited, err)
    errors = [line for line in err.splitlines() if line.startswith("reproman: error:")]
    assert len(errors) == 1 and "no longer exists" in errors[0] and "Traceback" not in err, err
    # A poll may catch the container being killed on its way out (a short outage warning); the end is one error.


def test_the_session_says_gone_not_just_failed() -> None:
    # Plugin authors and embedders can tell "gone for good" from other session failures.
    assert issubclass(ResourceGoneError, SessionError)
