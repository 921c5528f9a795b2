"""Helpers for the submitters' tests: job directories, fake schedulers, a real Slurm.

The job helpers build what core builds before submitting (job directory,
runscript, the submitter's script), so the submitters are exercised exactly
as ``reproman run`` uses them, and :func:`reproman.jobs.status.poll` (core's
poller: one status read plus one scheduler query) follows them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reproman.jobs.contracts import Submitter
from reproman.jobs.layout import render_runscript
from reproman.jobs.spec import JobSpec, Subjob, new_jobid
from reproman.jobs.status import JobStatus, poll
from reproman.resources.session import CommandResult, Session
from reproman.resources.shell import ShellSession
from reproman.testing.fake_schedulers import fake_calls, fake_options  # noqa: F401 - re-exported for the tests


class CountingSession(ShellSession):
    """A shell session that records every command, to count scheduler queries."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[str] = []

    def execute_command(self, command: Any, env: Any = None, cwd: Any = None, *, check: bool = False,
                        stdin: bytes | None = None) -> CommandResult:
        self.commands.append(command if isinstance(command, str) else " ".join(map(str, command)))
        return super().execute_command(command, env, cwd, check=check, stdin=stdin)


def make_job(
    session: Session,
    submitter: Submitter,
    root: Path,
    commands: Sequence[str],
    parameters: dict[str, Any] | None = None,
) -> tuple[JobSpec, str]:
    """Write job directory, runscript and submission script; return the job and the script path."""
    jobid = new_jobid()
    job_dir = root / ".reproman" / "jobs" / "local" / jobid
    work = root / "work dir"
    work.mkdir(exist_ok=True)
    job = JobSpec(
        jobid=jobid, command="test", resource_name="local", resource_type="shell",
        submitter=submitter.name, orchestrator="plain", parameters=dict(parameters or {}),
        subjobs=[Subjob(command=c) for c in commands], root_directory=str(root),
        working_directory=str(work), job_dir=str(job_dir), status="submitted",
    )
    session.mkdir(str(job_dir), parents=True)
    session.put_text(render_runscript(jobid=jobid, jobdir=str(job_dir), working_directory=str(work),
                                      commands=list(commands)), str(job_dir / "runscript"))
    script = str(job_dir / submitter.script_name)
    session.put_text(submitter.submission_script(job), script)
    return job, script


def submit(session: Session, submitter: Submitter, root: Path, commands: Sequence[str],
           parameters: dict[str, Any] | None = None) -> JobSpec:
    job, script = make_job(session, submitter, root, commands, parameters)
    job.submission_id = submitter.submit(job, script)
    return job


def wait(session: Session, submitter: Submitter, job: JobSpec, timeout: float = 60.0,
         until: str = "finished") -> JobStatus:
    """Poll like core does until the job finished (or ``until`` is ``"any-running"``)."""
    deadline = time.monotonic() + timeout
    status = poll(session, submitter, [job])[job.jobid]
    while time.monotonic() < deadline:
        status = poll(session, submitter, [job])[job.jobid]
        if until == "finished" and status.finished:
            return status
        if until == "any-running" and status.counts()["running"]:
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job.jobid} not {until} after {timeout} s: {status.summary()}")


def slurm_available() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and any(s.strip() in ("idle", "mixed", "allocated") for s in out.stdout.split())


def sge_available() -> bool:
    """A Grid Engine cell answers and has the queue tools/ci/sge.sh makes."""
    if shutil.which("qstat") is None:
        return False
    try:
        out = subprocess.run(["qstat", "-f"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "all.q@" in out.stdout


def killed_during_submission(work: Path, tmp_path: Path, *, submitter: str, tool: str, real: str,
                             queue_first: bool) -> str:
    """A 2-subjob ``reproman run --submitter SUBMITTER``, SIGKILLed while its wrapped ``tool`` sleeps; the jobid.

    The wrapper runs the real ``tool`` first (``queue_first``: the scheduler took the job) or after the kill
    (it never did), so the CLI dies without learning a submission id, as after a lost terminal.
    """
    import os
    import signal
    import sys

    from reproman.jobs.registry import Registry

    bindir = tmp_path / "wrapped-bin"
    bindir.mkdir()
    marker = tmp_path / f"{tool}-reached"
    body = (f'"{real}" "$@"; rc=$?; touch "{marker}"; sleep 120; exit $rc' if queue_first
            else f'touch "{marker}"; sleep 120; exec "{real}" "$@"')
    (bindir / tool).write_text(f"#!/bin/sh\n{body}\n")
    (bindir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reproman", "run", "--submitter", submitter, "--jp",
         f"root_directory={tmp_path / 'remote root'}", "--bp", "n=1,2", "-o", "out{p[n]}.txt",
         "sh", "-c", "echo {p[n]} > out{p[n]}.txt"],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{tool} was never called"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its submission tool and the sleep: a lost terminal
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    [job] = Registry().entries()
    assert isinstance(job, JobSpec), job
    assert job.status == "registered" and not job.submission_id  # the CLI never learnt the id
    return job.jobid
