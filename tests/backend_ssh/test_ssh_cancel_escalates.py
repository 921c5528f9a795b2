"""Over a real sshd: ``jobs --cancel`` of a subjob that ignores SIGTERM kills it after ``[jobs] kill_after``.

The SIGKILL is sent by a killer the cancel leaves on the resource; it must outlive the connection that
started it: with ``persistent=no`` every CLI command opens its own SSH connection and closes it on exit,
and with a kept connection the CLI must not wait for the killer either. Until the job's processes are gone, its subjob reads running ("cancelling"), not cancelled.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.jobs.registry import Registry
from reproman.testing.cli import run_cli

STUBBORN = "trap '' TERM; while :; do date >> out.txt; sleep 0.1; done"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("persistent", ["no", "yes"], ids=["direct", "persistent"])
def test_cancel_over_ssh_kills_what_ignores_sigterm(ssh_params: dict[str, Any], tmp_path: Path,
                                                    persistent: str) -> None:
    name = f"ssh-{uuid.uuid4().hex[:6]}"
    api.create(name, "ssh", {**{k: str(v) for k, v in ssh_params.items() if v is not None},
                             "persistent": persistent})
    work = tmp_path / "work"
    work.mkdir()
    env = {"REPROMAN_JOBS_KILL_AFTER": "8"}
    made = run_cli(["run", "-r", name, "--jp", f"root_directory={tmp_path / 'root'}", "-o", "out.txt",
                    "sh", "-c", STUBBORN], cwd=work, env=env)
    assert made.returncode == 0, made.stderr
    jobid = made.stdout.splitlines()[0]
    record = Registry().load(jobid)
    pgid = int(record.submission_id or 0)
    out = Path(record.working_directory, "out.txt")  # the sshd is this machine
    try:
        deadline = time.monotonic() + 30
        while not out.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        cancelled = time.monotonic()
        cancel = run_cli(["jobs", "--cancel", jobid], cwd=work, env=env)
        assert cancel.returncode == 0 and "did not end on SIGTERM" in cancel.stderr, cancel.stderr
        assert time.monotonic() - cancelled < 7  # the CLI did not wait for the SIGKILL
        # The connection that sent the cancel is closed; the job lives on, and reads so.
        assert group_alive(pgid)
        status = run_cli(["jobs", "--status", jobid], cwd=work, env=env)
        assert "1 running" in status.stdout and "cancelling" in status.stdout, status.stdout + status.stderr
        fetch = run_cli(["jobs", jobid], cwd=work, env=env)
        assert fetch.returncode == 3 and not (work / "out.txt").exists(), fetch.stderr
        while group_alive(pgid):
            assert time.monotonic() - cancelled < 20, "not killed"
            time.sleep(0.1)
        assert time.monotonic() - cancelled >= 7.5
    finally:
        if group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
    status = run_cli(["jobs", "--status", jobid], cwd=work, env=env)
    assert "1 cancelled" in status.stdout and "cancelling" not in status.stdout, status.stdout + status.stderr
