"""Slurm states that stay true when Slurm's own answers are odd (trial R 5, 6, 7, 12), on a REAL Slurm.

Faults a working cluster cannot produce (a ``squeue`` that never answers, a
``sacct`` whose database is down) are injected with fake commands put first
on PATH; everything else is the real scheduler.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from submitters_helpers import submit

from reproman.jobs.contracts import State
from reproman.jobs.status import poll
from reproman_submitters.slurm import SlurmSubmitter

pytestmark = pytest.mark.usefixtures("slurm")


@pytest.mark.timeout(120)
def test_launch_failure_is_not_an_invented_exit_code_or_signal(session, jobroot):
    """A task Slurm could not launch (its job directory, where slurm.log goes, vanished while it waited)
    shows 'FAILED 0:53' in sacct: no process exited 181 or got signal 53, so neither is shown."""
    sub = SlurmSubmitter(session)
    job = submit(session, sub, jobroot, ["sleep 4", "true"], {"throttle": 1})
    try:
        deadline = time.monotonic() + 60
        while poll(session, sub, [job])[job.jobid].subjobs[0].state is not State.RUNNING:
            assert time.monotonic() < deadline, "subjob 0 never started"
            time.sleep(0.5)
        shutil.rmtree(job.job_dir)  # subjob 1 is still pending (throttle 1): it cannot open slurm.log
        deadline = time.monotonic() + 60
        while (second := poll(session, sub, [job])[job.jobid].subjobs[1]).state is not State.FAILED:
            assert time.monotonic() < deadline, f"subjob 1 never failed: {second}"
            time.sleep(0.5)
        assert second.exit_code is None, second
        assert "launch failed" in second.detail and "signal" not in second.detail, second
        assert second.detail.endswith("(FAILED 0:53)"), second  # Slurm's own words, not its stale pending reason
    finally:
        subprocess.run(["scancel", str(job.submission_id)], capture_output=True)
