"""`reproman run --submitter sge` killed with SIGKILL around `qsub`: the job's state stays true.

Against the REAL single-node Son of Grid Engine (tools/ci/sge.sh). The fault
is injected with a ``qsub`` first on PATH that runs the real one and then
sleeps (the job is queued, the CLI never learns its id) or sleeps first
(nothing reaches Grid Engine); the test kills the CLI's whole process group
with SIGKILL during that sleep, as a lost terminal would. Everything else is
the real CLI and the real cell: the next ``reproman jobs`` asks ``qstat`` and
``qacct`` for ``reproman-<jobid>``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from submitters_helpers import killed_during_submission, make_job, submit, wait

from reproman.errors import SubmissionError
from reproman.jobs.registry import Registry
from reproman_submitters.sge import SGESubmitter

pytestmark = pytest.mark.usefixtures("sge")


def reproman(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=240)


def listed(name: str) -> list[str]:
    """Numbers of the jobs ``qstat -xml`` lists (live or recently finished) under ``name``."""
    from reproman_submitters.sge_records import parse_qstat_xml

    out = subprocess.run(["qstat", "-xml", "-u", "$user", "-s", "prsz"], capture_output=True, text=True,
                         check=True).stdout
    return sorted({e.number for e in parse_qstat_xml(out) if e.name == name and not e.zombie})


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    """The user's project; whatever Grid Engine holds for jobs registered here is deleted afterwards."""
    work = tmp_path / "project"
    work.mkdir()
    yield work
    for job in Registry().entries():
        numbers = listed(f"reproman-{job.jobid}")
        if numbers:
            subprocess.run(["qdel", *numbers], capture_output=True)


def killed_during_qsub(work: Path, tmp_path: Path, *, queue_first: bool) -> str:
    """Run a 2-subjob `reproman run --submitter sge`, SIGKILLed while its qsub wrapper sleeps; the jobid."""
    real = shutil.which("qsub")
    assert real, "qsub not on PATH"
    return killed_during_submission(work, tmp_path, submitter="sge", tool="qsub", real=real,
                                    queue_first=queue_first)


def test_killed_after_qsub_queued_it_is_adopted_followed_and_fetched(work: Path, tmp_path: Path) -> None:
    jobid = killed_during_qsub(work, tmp_path, queue_first=True)
    deadline = time.monotonic() + 30
    while not (queued := subprocess.run(["qstat", "-xml"], capture_output=True, text=True).stdout.count(
            f"reproman-{jobid}")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert queued or qacct_knows(f"reproman-{jobid}"), "the wrapper's qsub did not queue the job"

    shown = reproman("jobs", "--json", cwd=work)
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)
    assert row.get("outcome") != "submission failed" and "interrupted" not in shown.stdout, row
    job = Registry().load(jobid)
    assert job.status == "submitted" and job.submission_id and job.submission_id.isdigit(), job

    followed = reproman("jobs", "--follow", jobid, "--json", cwd=work)
    assert followed.returncode == 0, followed.stderr
    assert sorted(p.read_text() for p in work.glob("out*.txt")) == ["1\n", "2\n"]
    assert Registry().load(jobid).was_fetched


def test_killed_before_qsub_ran_is_never_queued_and_deletable(work: Path, tmp_path: Path) -> None:
    jobid = killed_during_qsub(work, tmp_path, queue_first=False)
    assert not listed(f"reproman-{jobid}")

    shown = reproman("jobs", "--status", jobid, "--json", cwd=work)
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)
    subjobs = row["subjobs_status"]["subjobs"]
    assert [s["state"] for s in subjobs] == ["failed", "failed"], subjobs
    assert all(s["detail"].startswith("never queued:") for s in subjobs), subjobs

    job_dir = Path(Registry().load(jobid).job_dir)
    deleted = reproman("jobs", "--delete", jobid, cwd=work)
    assert deleted.returncode == 0, deleted.stderr
    assert not job_dir.exists() and Registry().entries() == []


# -- the lookup itself, on jobs submitted directly ------------------------------------------------

def qacct_knows(name: str) -> bool:
    return "jobnumber" in subprocess.run(["qacct", "-j", name], capture_output=True, text=True).stdout


def test_lookup_is_one_command_and_finds_every_piece_of_a_split_array(sge_sub: SGESubmitter, session, jobroot):
    job, script = make_job(session, sge_sub, jobroot, ["sleep 30"] * 5, {"max_array_size": 2,
                                                                          "directives": ["-h"]})
    submitted = sge_sub.submit(job, script)
    assert len(submitted.split(",")) == 3
    session.commands.clear()
    assert SGESubmitter(session).find_submitted(job) == submitted
    assert len(session.commands) == 1 and "qstat" in session.commands[0] and "qacct" in session.commands[0]


def test_lookup_finds_by_the_name_a_directive_gave(sge_sub: SGESubmitter, session, jobroot):
    """A user's ``-N`` directive renames the job; the lookup follows it (and a long name is never cut)."""
    name = f"renamed-{uuid.uuid4().hex}"  # longer than the 10 characters plain qstat shows
    job, script = make_job(session, sge_sub, jobroot, ["sleep 30"], {"directives": ["-h", f"-N {name}"]})
    submitted = sge_sub.submit(job, script)
    assert sge_sub.find_submitted(job) == submitted


def test_lookup_finds_a_job_that_already_left_the_queue_in_qacct(sge_sub: SGESubmitter, session, jobroot,
                                                                 monkeypatch, tmp_path):
    job = submit(session, sge_sub, jobroot, ["true"])
    wait(session, sge_sub, job)
    deadline = time.monotonic() + 30
    while not qacct_knows(f"reproman-{job.jobid}"):
        assert time.monotonic() < deadline, "accounting never recorded the job"
        time.sleep(0.5)
    # Fault injection: a qmaster that keeps no finished jobs (finished_jobs 0) lists nothing.
    bindir = tmp_path / "empty-qstat"
    bindir.mkdir()
    (bindir / "qstat").write_text("#!/bin/sh\necho '<?xml version=\"1.0\"?><job_info></job_info>'\n")
    (bindir / "qstat").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    assert sge_sub.find_submitted(job) == job.submission_id


def test_lookup_of_a_job_never_submitted_says_so(sge_sub: SGESubmitter, session, jobroot):
    job, _script = make_job(session, sge_sub, jobroot, ["true"])
    assert sge_sub.find_submitted(job) == ""


def test_a_job_that_started_is_never_called_never_queued(sge_sub: SGESubmitter, session, jobroot):
    """Neither qstat nor qacct lists it (e.g. forgotten before the accounting flush), but a subjob started."""
    job, _script = make_job(session, sge_sub, jobroot, ["true"])
    Path(job.job_dir, "status.0").write_text("running\n")
    assert sge_sub.find_submitted(job) is None


def test_lookup_without_accounting_cannot_tell_about_what_qstat_does_not_list(sge_sub: SGESubmitter, session,
                                                                              jobroot, monkeypatch, tmp_path):
    """Fault injection: a cell without an accounting file (``qacct`` cannot read it), which the CI cell has."""
    bindir = tmp_path / "no-accounting"
    bindir.mkdir()
    (bindir / "qacct").write_text("#!/bin/sh\necho 'error: unable to open accounting file' >&2\nexit 1\n")
    (bindir / "qacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    job, _script = make_job(session, sge_sub, jobroot, ["true"])
    assert sge_sub.find_submitted(job) is None


def test_part_of_a_split_array_is_deleted_and_not_adopted(sge_sub: SGESubmitter, session, jobroot):
    job, script = make_job(session, sge_sub, jobroot, ["sleep 30"] * 5, {"max_array_size": 2,
                                                                          "directives": ["-h"]})
    # The submission stopped after the first of three qsub calls.
    first = sge_sub._qsub(["-t", "1-2", script, "0"], str(job.job_dir), job)
    try:
        with pytest.raises(SubmissionError, match=rf"only 1 of the 3 arrays .*\({first}\).* cancelled"):
            sge_sub.find_submitted(job)
        assert first not in listed(f"reproman-{job.jobid}")
    finally:
        subprocess.run(["qdel", first], capture_output=True)


def test_a_failing_qstat_is_an_error(sge_sub: SGESubmitter, session, jobroot, monkeypatch, tmp_path):
    bindir = tmp_path / "broken-qstat"
    bindir.mkdir()
    (bindir / "qstat").write_text("#!/bin/sh\necho 'error: unable to contact qmaster' >&2\nexit 1\n")
    (bindir / "qstat").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    job, _script = make_job(session, sge_sub, jobroot, ["true"])
    with pytest.raises(SubmissionError, match="qstat failed: error: unable to contact qmaster"):
        sge_sub.find_submitted(job)
