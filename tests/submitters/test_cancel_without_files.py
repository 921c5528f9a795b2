"""``reproman jobs --cancel`` stops the tasks whatever became of the job's files on the resource.

The user's world: a scratch purge (or a hasty ``rm -rf``) removed the job
directory and the working directory while the tasks still run. Cancel must
still reach the scheduler by the job id ReproMan recorded, and the tasks must
stop. SGE and Slurm run for real (tools/ci/sge.sh, tools/ci/slurm.sh), the
``local`` submitter with real processes; PBS Pro, Torque, HTCondor and LSF
cannot be installed here and run on the fakes of
:mod:`reproman.testing.fakesched`, which answer as the vendors document.

Whether a task still runs is read from ``/proc``: each test's command is a
``sleep`` with a duration no other process on the machine uses.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reproman import api
from reproman.cli.main import main
from reproman.config import reset_config
from reproman.jobs.commands import RunResult
from reproman.jobs.registry import Registry

REAL = ["sge", "slurm", "local"]
FAKES = ["pbs", "torque", "condor", "lsf"]
#: How each scheduler is told to stop a job behind ReproMan's back (clean-up after a failed test).
NATIVE_CANCEL = {"sge": "qdel", "slurm": "scancel", "pbs": "qdel", "torque": "qdel", "condor": "condor_rm",
                 "lsf": "bkill"}


def sleeping(token: str) -> list[int]:
    """PIDs of ``sleep TOKEN`` processes on this machine (the tasks of this test's job)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"sleep", token.encode()]:
            pids.append(int(proc.name))
    return pids


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.3)


@pytest.fixture
def submitter_for(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Name -> the ``--submitter`` to use, with its scheduler up (real or fake); stops what is left after."""
    started: list[tuple[str, str, str]] = []  # (flavour, scheduler id, token)

    def prepare(flavour: str) -> str:
        if flavour in ("sge", "slurm"):
            request.getfixturevalue(flavour)
        elif flavour in FAKES:
            request.getfixturevalue("fake_scheduler")
            if flavour == "torque":
                monkeypatch.setenv("FAKE_PBS_FLAVOR", "torque")
                monkeypatch.setenv("REPROMAN_SUBMITTER-PBS_FLAVOR", "torque")
                reset_config()
                return "pbs"
        return flavour

    prepare.started = started  # type: ignore[attr-defined]
    yield prepare
    for flavour, sid, token in started:
        if flavour in NATIVE_CANCEL:
            subprocess.run([NATIVE_CANCEL[flavour], *sid.split(",")], capture_output=True, check=False)
        for pid in sleeping(token):  # this test's own tasks, by PID
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.timeout(240)
@pytest.mark.parametrize("flavour", REAL + FAKES)
def test_cancel_stops_the_tasks_when_the_job_directory_is_gone(flavour, project, submitter_for):
    """Before: SGE's cancel began with writing its marker into the job directory; dash ended the
    command there ("cannot create .../cancelled: Directory nonexistent"), qdel never ran, the command
    failed and the tasks kept running (the local submitter likewise)."""
    token = f"{300 + random.random():.6f}"
    result = api.run(command=f"sleep {token}", batch_parameters=["i=1,2"], submitter=submitter_for(flavour))
    assert isinstance(result, RunResult)
    job = result.job
    submitter_for.started.append((flavour, str(job.submission_id), token))
    wait_until(lambda: sleeping(token), 180, f"a task of {job.jobid} starting")

    shutil.rmtree(job.job_dir)
    shutil.rmtree(job.working_directory)
    assert main(["jobs", "--cancel", job.jobid]) == 0

    wait_until(lambda: not sleeping(token), 60, f"the tasks of {job.jobid} stopping after 'jobs --cancel'")
    assert Registry().load(job.jobid).cancelled

    def states() -> list[tuple[str, str | None]]:
        row = api.jobs(job.jobid, action="show", status=True)[0]
        return [(s["state"], s["reason"]) for s in row["subjobs_status"]["subjobs"]]

    wait_until(lambda: states() == [("failed", "cancelled")] * 2, 60, f"{job.jobid} reading cancelled")
