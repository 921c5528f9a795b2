"""Finding a job whose `reproman run` was killed during submission, on PBS Pro, Torque, LSF and HTCondor.

NOT run against live PBS, LSF or HTCondor (none can be installed here): the
fake tools of :mod:`reproman.testing.fakesched` answer the documented lookups
(``qselect [-x] -N NAME -u USER`` and ``qstat -B -f``; ``bjobs -a -J 'NAME*'
-o "jobid job_name"`` and ``bparams -a``; ``condor_q``/``condor_history
-constraint ... -af ClusterId``) in the documented output formats, and forget
finished jobs the way each scheduler does. These tests show that each
submitter asks in its scheduler's documented dialect and reads the answer
by the contract of :meth:`Submitter.find_submitted` (id, "", None, or an
error), not that it works on a live cluster. The end-to-end case kills the
real CLI with SIGKILL inside the (fake) submission command, as
test_slurm_interrupted.py does against the real Slurm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from submitters_helpers import killed_during_submission, make_job, submit, wait

from reproman.config import reset_config
from reproman.errors import SubmissionError
from reproman.jobs.contracts import Submitter
from reproman.jobs.registry import Registry
from reproman_submitters.condor import CondorSubmitter
from reproman_submitters.lsf import LSFSubmitter
from reproman_submitters.pbs import PBSSubmitter

FLAVOURS = ["pbs", "torque", "lsf", "condor"]
#: Those that split a large batch into several arrays (HTCondor submits one cluster and refuses max_array_size).
SPLITTING = ["pbs", "torque", "lsf"]
#: Each flavour's submission command (wrapped to inject the kill) and its own words for a split array.
SUBMIT_TOOL = {"pbs": "qsub", "torque": "qsub", "lsf": "bsub", "condor": "condor_submit"}
#: Setting that makes each scheduler keep nothing of finished jobs, or be unable to say.
NO_HISTORY = {"pbs": ("FAKE_PBS_HISTORY", "0"), "torque": ("FAKE_SCHED_FORGET_AFTER", "0"),
              "lsf": ("FAKE_SCHED_FORGET_AFTER", "0"), "condor": ("FAKE_CONDOR_HISTORY", "unreadable")}


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest, fake_scheduler: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "torque":
        monkeypatch.setenv("FAKE_PBS_FLAVOR", "torque")
        monkeypatch.setenv("REPROMAN_SUBMITTER-PBS_FLAVOR", "torque")
        reset_config()
    return str(request.param)


@pytest.fixture
def sub(flavour: str, session) -> Submitter:
    cls = {"pbs": PBSSubmitter, "torque": PBSSubmitter, "lsf": LSFSubmitter, "condor": CondorSubmitter}[flavour]
    return cls(session)


def test_a_queued_job_is_found_in_one_command(sub, session, jobroot, monkeypatch):
    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    job = submit(session, sub, jobroot, ["true", "true"])
    session.commands.clear()
    assert sub.find_submitted(job) == job.submission_id
    assert len(session.commands) == 1


def test_a_finished_job_is_found_in_the_history(sub, session, jobroot):
    job = submit(session, sub, jobroot, ["true", "true"])
    wait(session, sub, job)
    assert sub.find_submitted(job) == job.submission_id


def test_a_job_never_submitted_is_never_queued(sub, session, jobroot):
    job, _script = make_job(session, sub, jobroot, ["true"])
    assert sub.find_submitted(job) == ""


def test_other_jobs_are_not_taken_for_it(sub, session, jobroot, monkeypatch):
    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    submit(session, sub, jobroot, ["true"])
    job, _script = make_job(session, sub, jobroot, ["true"])
    assert sub.find_submitted(job) == ""


def test_without_history_nothing_found_cannot_tell(flavour, sub, session, jobroot, monkeypatch):
    """The scheduler keeps no finished jobs (or cannot say): a job it does not list may have run and left."""
    monkeypatch.setenv(*NO_HISTORY[flavour])
    job, _script = make_job(session, sub, jobroot, ["true"])
    assert sub.find_submitted(job) is None


@pytest.mark.parametrize("flavour", ["pbs", "torque", "lsf"], indirect=True)  # HTCondor's history rotates by size
def test_a_job_registered_longer_ago_than_the_scheduler_remembers_cannot_tell(flavour, sub, session, jobroot,
                                                                              monkeypatch):
    monkeypatch.setenv("FAKE_SCHED_FORGET_AFTER", "3600")
    job, _script = make_job(session, sub, jobroot, ["true"])
    job.created = "2000-01-01T00:00:00"
    assert sub.find_submitted(job) is None
    job.created = time.strftime("%Y-%m-%dT%H:%M:%S")
    assert sub.find_submitted(job) == ""


def test_a_job_that_started_is_never_called_never_queued(sub, session, jobroot):
    """The scheduler lists nothing (it forgot), but a subjob wrote its status file: it ran."""
    job, _script = make_job(session, sub, jobroot, ["true"])
    Path(job.job_dir, "status.0").write_text("succeeded 0\n")
    assert sub.find_submitted(job) is None


@pytest.mark.parametrize("flavour", SPLITTING, indirect=True)
def test_every_piece_of_a_split_array_is_found(flavour, sub, session, jobroot, monkeypatch):
    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    job = submit(session, sub, jobroot, ["true"] * 5, {"max_array_size": 2})
    assert len(job.submission_id.split(",")) == 3
    assert sub.find_submitted(job) == job.submission_id


@pytest.mark.parametrize("flavour", SPLITTING, indirect=True)
def test_part_of_a_split_array_is_cancelled_and_not_adopted(flavour, sub, session, jobroot, monkeypatch,
                                                            fake_scheduler):
    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    job = submit(session, sub, jobroot, ["true"] * 5, {"max_array_size": 2})
    first, *rest = job.submission_id.split(",")
    # The submission stopped after the first piece: the others never reached the scheduler.
    for piece in rest:
        number = piece.split("[")[0].split(".")[0]
        (fake_scheduler / f"{number}.json").unlink()
    with pytest.raises(SubmissionError, match=r"only 1 of the 3 arrays .* cancelled"):
        sub.find_submitted(job)
    number = first.split("[")[0].split(".")[0]
    states = {e["state"] for e in json.loads((fake_scheduler / f"{number}.json").read_text())["elements"].values()}
    assert states == {"cancelled"}


@pytest.mark.parametrize("flavour", SPLITTING, indirect=True)
def test_part_of_a_split_array_the_scheduler_may_have_forgotten_is_left_running(flavour, sub, session, jobroot,
                                                                                monkeypatch, fake_scheduler):
    """Registered longer ago than the scheduler keeps finished jobs: the pieces not found may have run and
    been forgotten, so the one still queued is not cancelled (and not adopted: it is not the whole job)."""
    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    monkeypatch.setenv("FAKE_SCHED_FORGET_AFTER", "3600")
    job = submit(session, sub, jobroot, ["true"] * 5, {"max_array_size": 2})
    first, *rest = job.submission_id.split(",")
    for piece in rest:
        (fake_scheduler / f"{piece.split('[')[0].split('.')[0]}.json").unlink()
    job.created = "2000-01-01T00:00:00"
    assert sub.find_submitted(job) is None
    number = first.split("[")[0].split(".")[0]
    states = {e["state"] for e in json.loads((fake_scheduler / f"{number}.json").read_text())["elements"].values()}
    assert states == {"queued"}


@pytest.mark.parametrize("flavour", SPLITTING, indirect=True)
def test_a_name_from_the_users_directives_is_followed(flavour, sub, session, jobroot, monkeypatch):
    """PBS and LSF: a ``-N``/``-J`` among the directives renames the job, and the lookup asks for that name."""
    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    flag = "-J" if flavour == "lsf" else "-N"
    job = submit(session, sub, jobroot, ["true"], {"directives": [f"{flag} mine"]})
    assert sub.find_submitted(job) == job.submission_id


@pytest.mark.parametrize("flavour", ["condor"], indirect=True)
def test_condor_finds_its_cluster_whatever_batch_name_says(flavour, sub, session, jobroot, monkeypatch):
    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    job = submit(session, sub, jobroot, ["true"], {"directives": ["batch_name = mine"]})
    assert sub.find_submitted(job) == job.submission_id


def test_a_failing_query_is_an_error(flavour, sub, session, jobroot, tmp_path, monkeypatch):
    tool = {"pbs": "qselect", "torque": "qselect", "lsf": "bjobs", "condor": "condor_q"}[flavour]
    bindir = tmp_path / "broken"
    bindir.mkdir()
    (bindir / tool).write_text("#!/bin/sh\necho 'cannot connect to server' >&2\nexit 1\n")
    (bindir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    job, _script = make_job(session, sub, jobroot, ["true"])
    with pytest.raises(SubmissionError, match="cannot connect to server"):
        sub.find_submitted(job)


# -- end to end: the CLI killed inside the submission command ----------------------------------------------

def test_killed_cli_job_is_adopted_followed_and_fetched(flavour, tmp_path, monkeypatch):
    work = tmp_path / "project"
    work.mkdir()
    tool = SUBMIT_TOOL[flavour]
    real = Path(os.environ["PATH"].split(os.pathsep)[0]) / tool  # the fake, first on PATH
    submitter = "pbs" if flavour == "torque" else flavour
    jobid = killed_during_submission(work, tmp_path, submitter=submitter, tool=tool, real=str(real),
                                     queue_first=True)
    job = Registry().load(jobid)

    def reproman(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reproman", *args], cwd=work, capture_output=True,
                              text=True, timeout=120)

    shown = reproman("jobs", "--json")
    assert shown.returncode == 0, shown.stderr
    assert "interrupted" not in shown.stdout and "never queued" not in shown.stdout, shown.stdout
    adopted = Registry().load(job.jobid)
    assert adopted.status == "submitted" and adopted.submission_id, adopted
    followed = reproman("jobs", "--follow", job.jobid, "--json")
    assert followed.returncode == 0, followed.stderr
    assert sorted(p.read_text() for p in work.glob("out*.txt")) == ["1\n", "2\n"]
