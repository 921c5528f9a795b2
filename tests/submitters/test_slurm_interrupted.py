"""`reproman run --submitter slurm` killed with SIGKILL around `sbatch`: the job's state stays true.

Against the REAL single-node Slurm (tools/ci/slurm.sh). The fault is injected
with an ``sbatch`` first on PATH that runs the real one and then sleeps (the
job is queued, the CLI never learns its id) or sleeps first (nothing reaches
Slurm); the test kills the CLI's whole process group with SIGKILL during that
sleep, as a lost terminal would. Everything else is the real CLI and the real
scheduler: the next ``reproman jobs`` asks Slurm for ``reproman-<jobid>``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from submitters_helpers import CountingSession, killed_during_submission, make_job, submit, wait

from reproman.errors import SubmissionError
from reproman.jobs.registry import Registry
from reproman_submitters.slurm import SlurmSubmitter

pytestmark = pytest.mark.usefixtures("slurm")


def reproman(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=240)


def queued(jobid: str) -> list[str]:
    """What squeue lists under the job's Slurm name (any state)."""
    return subprocess.run(["squeue", "-h", "-t", "all", "-n", f"reproman-{jobid}", "-o", "%F %T"],
                          capture_output=True, text=True, check=True).stdout.split("\n")[:-1]


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    """The user's project; whatever Slurm holds for jobs registered here is cancelled afterwards."""
    work = tmp_path / "project"
    work.mkdir()
    yield work
    for job in Registry().entries():
        subprocess.run(["scancel", "-n", f"reproman-{job.jobid}"], capture_output=True)


def killed_during_sbatch(work: Path, tmp_path: Path, *, queue_first: bool) -> str:
    """Run a 2-subjob `reproman run --submitter slurm`, SIGKILLed while its sbatch wrapper sleeps; the jobid."""
    real = shutil.which("sbatch")
    assert real, "sbatch not on PATH"
    return killed_during_submission(work, tmp_path, submitter="slurm", tool="sbatch", real=real,
                                    queue_first=queue_first)


def test_killed_after_sbatch_queued_it_is_adopted_followed_and_fetched(work: Path, tmp_path: Path) -> None:
    jobid = killed_during_sbatch(work, tmp_path, queue_first=True)
    assert queued(jobid), "the wrapper's sbatch did not queue the job"

    listed = reproman("jobs", "--json", cwd=work)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row.get("outcome") != "submission failed" and "interrupted" not in listed.stdout, row
    job = Registry().load(jobid)
    assert job.status == "submitted" and job.submission_id and job.submission_id.isdigit(), job
    assert {line.split()[0] for line in queued(jobid)} == {job.submission_id}

    followed = reproman("jobs", "--follow", jobid, "--json", cwd=work)
    assert followed.returncode == 0, followed.stderr
    assert sorted(p.read_text() for p in work.glob("out*.txt")) == ["1\n", "2\n"]
    assert Registry().load(jobid).was_fetched
    # Cancelling now is of a finished job, not of one the record lost.
    cancelled = reproman("jobs", "--cancel", jobid, cwd=work)
    assert cancelled.returncode == 0, cancelled.stderr


def test_killed_before_sbatch_ran_is_never_queued_and_deletable(work: Path, tmp_path: Path) -> None:
    jobid = killed_during_sbatch(work, tmp_path, queue_first=False)
    assert not queued(jobid)

    listed = reproman("jobs", "--status", jobid, "--json", cwd=work)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    subjobs = row["subjobs_status"]["subjobs"]
    assert [s["state"] for s in subjobs] == ["failed", "failed"], subjobs
    assert all(s["detail"].startswith("never queued:") for s in subjobs), subjobs
    assert "no record of it" in subjobs[0]["detail"]

    fetched = reproman("jobs", jobid, cwd=work)
    assert fetched.returncode == 1 and "never queued" in fetched.stderr, fetched.stderr
    job_dir = Path(Registry().load(jobid).job_dir)
    assert job_dir.is_dir()
    deleted = reproman("jobs", "--delete", jobid, cwd=work)
    assert deleted.returncode == 0, deleted.stderr
    assert not job_dir.exists() and Registry().entries() == []


def test_resource_unreachable_keeps_submission_interrupted(work: Path, tmp_path: Path) -> None:
    """The job IS queued, but its resource cannot be opened: nothing is claimed, `jobs` does not fail.

    Fault injection: the record names a resource that is not in the
    inventory any more (this session has no remote backend to take down).
    """
    jobid = killed_during_sbatch(work, tmp_path, queue_first=True)
    registry = Registry()
    job = registry.load(jobid)
    job.resource_name = "cluster-gone"
    registry.save(job)

    listed = reproman("jobs", "--json", cwd=work)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["outcome"] == "submission failed", row
    job = Registry().load(jobid)
    assert job.submission_id is None
    detail = (job.subjobs[0].outcome or {}).get("detail", "")
    assert detail.startswith("submission interrupted:") and "check its queue" in detail, detail
    assert "'cluster-gone' could not be reached" in detail, detail


# -- the lookup itself, on jobs submitted directly ------------------------------------------------

@pytest.fixture
def sub(session: CountingSession) -> Iterator[SlurmSubmitter]:
    submitter = SlurmSubmitter(session)
    made: list[str] = []
    plain_make = submitter.submission_script

    def tracked(job: Any) -> str:
        made.append(job.jobid)
        return plain_make(job)

    submitter.submission_script = tracked  # type: ignore[method-assign]
    yield submitter
    for jobid in made:
        subprocess.run(["scancel", "-n", f"reproman-{jobid}"], capture_output=True)


def test_lookup_is_one_command_and_finds_every_piece_of_a_split_array(sub, session, jobroot):
    job, script = make_job(session, sub, jobroot, ["sleep 30"] * 7, {"max_array_size": 3,
                                                                      "directives": ["--hold"]})
    submitted = sub.submit(job, script)
    assert len(submitted.split(",")) == 3
    session.commands.clear()
    assert sub.find_submitted(job) == submitted
    assert len(session.commands) == 1 and "squeue" in session.commands[0] and "sacct" in session.commands[0]


def test_lookup_finds_a_job_that_already_left_the_queue_in_sacct(sub, session, jobroot, monkeypatch, tmp_path):
    job = submit(session, sub, jobroot, ["true"])
    wait(session, sub, job)
    deadline = time.monotonic() + 30
    while f"reproman-{job.jobid}" not in subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", str(job.submission_id), "-o", "JobName"],
            capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, "accounting never recorded the job"
        time.sleep(0.5)
    # Fault injection: a controller that already purged it (MinJobAge) lists nothing.
    bindir = tmp_path / "empty-squeue"
    bindir.mkdir()
    (bindir / "squeue").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    assert sub.find_submitted(job) == job.submission_id


def test_lookup_of_a_job_never_submitted_says_so(sub, session, jobroot):
    job, _script = make_job(session, sub, jobroot, ["true"])
    assert sub.find_submitted(job) == ""


def test_lookup_without_accounting_cannot_tell_about_what_squeue_does_not_list(sub, session, jobroot,
                                                                               no_accounting):
    job, _script = make_job(session, sub, jobroot, ["true"])
    assert sub.find_submitted(job) is None


def test_part_of_a_split_array_is_cancelled_and_not_adopted(sub, session, jobroot):
    job, script = make_job(session, sub, jobroot, ["sleep 30"] * 7, {"max_array_size": 3,
                                                                      "directives": ["--hold"]})
    # The submission stopped after the first of three sbatch calls.
    first = sub._sbatch(["--array=0-2", script, "0"], str(job.job_dir), job)
    with pytest.raises(SubmissionError, match=rf"only 1 of the 3 arrays .*\({first}\).* cancelled"):
        sub.find_submitted(job)
    states = subprocess.run(["squeue", "-h", "-t", "all", "-j", first, "-o", "%T"], capture_output=True,
                            text=True).stdout.split()
    assert states and set(states) <= {"CANCELLED"}, states
