"""In a real busybox container: ``jobs --cancel`` of a subjob that ignores SIGTERM kills it after
``[jobs] kill_after``, the killer outliving the ``docker exec`` that started it (busybox ash, its kill and
sleep); until then the subjob reads running ("cancelling")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from docker_testlib import TEST_LABEL, unique_name

from reproman.jobs.registry import Registry

STUBBORN = "trap '' TERM; while :; do echo x >> out.txt; sleep 1; done"


def _reproman(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={**os.environ, "REPROMAN_JOBS_KILL_AFTER": "5"})


@pytest.mark.timeout(240)
def test_cancel_in_a_container_kills_what_ignores_sigterm(docker_client: Any, busybox_image: str,
                                                          tmp_path: Path) -> None:
    name = unique_name("rmt-cancel")
    created = _reproman("create", name, "-t", "docker-container", "-b", f"image={busybox_image}",
                        "-b", f"labels={TEST_LABEL}", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    try:
        made = _reproman("run", "-r", name, "-o", "out.txt", "sh", "-c", STUBBORN, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        jobid = made.stdout.splitlines()[0]
        record = Registry().load(jobid)
        container = docker_client.containers.get(name)

        def alive() -> bool:
            return container.exec_run(["sh", "-c", f"kill -0 -{record.submission_id}"]).exit_code == 0

        deadline = time.monotonic() + 60
        while container.exec_run(["test", "-s", f"{record.working_directory}/out.txt"]).exit_code != 0:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        cancelled = time.monotonic()
        cancel = _reproman("jobs", "--cancel", jobid, cwd=tmp_path)
        assert cancel.returncode == 0 and "did not end on SIGTERM" in cancel.stderr, cancel.stderr
        assert alive()
        status = _reproman("jobs", "--status", jobid, cwd=tmp_path)
        assert "1 running" in status.stdout and "cancelling" in status.stdout, status.stdout + status.stderr
        while alive():
            assert time.monotonic() - cancelled < 20, "not killed"
            time.sleep(0.2)
        assert time.monotonic() - cancelled >= 4.5
        status = _reproman("jobs", "--status", jobid, cwd=tmp_path)
        assert "1 cancelled" in status.stdout, status.stdout + status.stderr
    finally:
        docker_client.api.remove_container(name, force=True)
