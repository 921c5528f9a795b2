"""Slurm states that stay true when Slurm's own answers are odd (trial R 5, 6, 7, 12), on a REAL Slurm.

Faults a working cluster cannot produce (a ``squeue`` that never answers, a
``sacct`` whose database is down) are injected with fake commands put first
on PATH; everything else is the real scheduler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from submitters_helpers import submit

from reproman import api
from reproman.cli.main import main
from reproman.config import reset_config
from reproman.jobs.commands import RunResult
from reproman.jobs.contracts import State
from reproman.jobs.status import poll
from reproman_submitters.slurm import SlurmSubmitter

pytestmark = pytest.mark.usefixtures("slurm")


def run(**kwargs: object) -> RunResult:
    kwargs.setdefault("submitter", "slurm")
    result = api.run(**kwargs)  # type: ignore[arg-type]
    assert isinstance(result, RunResult)
    return result


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


def fake_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> None:
    """Fault injection: a ``name`` first on PATH running ``body`` (a real cluster's clients answer)."""
    bindir = tmp_path / f"fake-{name}"
    bindir.mkdir()
    (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
    (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.timeout(120)
def test_a_squeue_that_never_answers_is_named_not_waited_on_for_ever(project, tmp_path, monkeypatch, capsys):
    """A stuck slurmctld: 'reproman jobs --status' waits the configured time, says in one line that
    squeue did not answer, and still shows what the status files say."""
    job = run(command="sleep 30").job
    try:
        fake_on_path(tmp_path, monkeypatch, "squeue", "sleep 40")
        monkeypatch.setenv("REPROMAN_JOBS_SCHEDULER_TIMEOUT", "3")
        reset_config()
        capsys.readouterr()
        started = time.monotonic()
        code = main(["jobs", "--status", job.jobid])
        took = time.monotonic() - started
        out, err = capsys.readouterr()
        assert took < 20, took
        assert code == 0, (out, err)
        said = [line for line in err.splitlines() if "squeue did not answer within 3 s" in line]
        assert len(said) == 1, err
        assert job.jobid in out, out
    finally:
        subprocess.run(["scancel", str(job.submission_id)], capture_output=True)


def subjob_rows(jobid: str) -> list[dict]:
    [row] = api.jobs([jobid], action="show", status=True)
    return row["subjobs_status"]["subjobs"]


@pytest.mark.timeout(180)
def test_cancel_wins_over_a_follower_that_polled_in_between(project):
    """'jobs --cancel' while 'jobs --follow' runs: the follower loaded the record before the cancel and
    polls after scancel, so it sees a cancel it does not know of ("cancelled outside ReproMan") and
    saves that after the cancel was recorded. The user's cancel must survive that save, labelled ours."""
    from reproman.jobs.connection import Connection
    from reproman.jobs.follow import follow as follow_job
    from reproman.jobs.registry import Registry
    from reproman.jobs.status import poll

    job = run(command="sleep 60", batch_parameters=["n=1,2"]).job
    try:
        deadline = time.monotonic() + 120
        while [s["state"] for s in subjob_rows(job.jobid)] != ["running", "running"]:
            assert time.monotonic() < deadline, subjob_rows(job.jobid)
            time.sleep(0.5)
        registry = Registry()
        follower = registry.load(job.jobid)  # what 'jobs --follow' holds in memory
        stale = registry.load(job.jobid)
        assert api.jobs(job.jobid, action="cancel") == [{"jobid": job.jobid, "cancelled": True}]
        with Connection.for_job(follower) as connection:
            submitter = connection.submitter(follower.submitter)
            deadline = time.monotonic() + 60
            while not (seen := poll(connection.session, submitter, [registry.load(job.jobid)])[job.jobid]).finished:
                assert time.monotonic() < deadline, seen
                time.sleep(0.5)
            # What a poll by a process that has not seen the cancel says (never saved):
            raced = poll(connection.session, submitter, [stale])[job.jobid]
            assert all("outside ReproMan" in s.detail for s in raced.subjobs), raced  # the race is set up
            # The follower's next poll, as 'jobs --follow' makes it (saving with registry.save):
            told = follow_job(connection, follower, on_change=registry.save, timeout=60)
        wanted = "cancelled with 'reproman jobs --cancel'"
        assert [s.detail for s in told.subjobs] == [wanted, wanted], told  # what the follower says at its end
        stored = registry.load(job.jobid)
        assert stored.cancelled and stored.cancelled_subjobs == [0, 1], stored.cancelled_subjobs
        assert [s.outcome["detail"] for s in stored.subjobs] == [wanted, wanted]  # type: ignore[index]
        assert [(r["reason"], r["detail"]) for r in subjob_rows(job.jobid)] == [("cancelled", wanted)] * 2
    finally:
        subprocess.run(["scancel", str(job.submission_id)], capture_output=True)


def squeue_knows(job_id: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%i"], capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


@pytest.mark.timeout(240)
def test_forgotten_by_squeue_while_sacct_fails_is_not_running_for_ever(project, tmp_path, monkeypatch):
    """scancel behind ReproMan's back, squeue forgets the job (MinJobAge), and sacct fails (slurmdbd
    down): the job is not 'running' for ever; after the grace period it is lost, saying sacct failed."""
    job = run(command="sleep 120").job
    try:
        deadline = time.monotonic() + 120
        while subjob_rows(job.jobid)[0]["state"] != "running":
            assert time.monotonic() < deadline, subjob_rows(job.jobid)
            time.sleep(0.5)
        subprocess.run(["scancel", str(job.submission_id)], check=True)
        deadline = time.monotonic() + 120
        while squeue_knows(str(job.submission_id)):
            assert time.monotonic() < deadline, "squeue never forgot the job"
            time.sleep(1)
        fake_on_path(tmp_path, monkeypatch, "sacct",
                     'echo "sacct: error: Problem talking to the database: Connection refused" >&2; exit 1')
        monkeypatch.setenv("REPROMAN_JOBS_LOST_AFTER", "2")
        reset_config()
        deadline = time.monotonic() + 30
        while (row := subjob_rows(job.jobid)[0])["state"] == "running":
            assert time.monotonic() < deadline, f"still {row}"
            time.sleep(1)
        assert (row["state"], row["reason"]) == ("failed", "lost (ended without writing its status)"), row
        assert "(gone from squeue, and sacct failed (exit 1): " in row["detail"], row
        assert row["detail"].endswith("Connection refused)"), row
    finally:
        subprocess.run(["scancel", str(job.submission_id)], capture_output=True)


@pytest.mark.timeout(240)
def test_task_cancelled_while_running_does_not_carry_its_old_pending_reason(session, jobroot):
    """A throttled task waits (JobArrayTaskLimit), runs, and is scancelled: once squeue forgot it, sacct
    still gives JobArrayTaskLimit as its Reason; that is not why it ended, so it is not shown."""
    sub = SlurmSubmitter(session)
    job = submit(session, sub, jobroot, ["sleep 2", "sleep 120"], {"throttle": 1})
    try:
        deadline = time.monotonic() + 90
        while poll(session, sub, [job])[job.jobid].subjobs[1].state is not State.RUNNING:
            assert time.monotonic() < deadline, "subjob 1 never started"
            time.sleep(0.5)
        time.sleep(1.5)  # sacct's Elapsed counts whole seconds
        subprocess.run(["scancel", f"{job.submission_id}_1"], check=True)
        deadline = time.monotonic() + 120
        while squeue_knows(str(job.submission_id)):
            assert time.monotonic() < deadline, "squeue never forgot the job"
            time.sleep(1)
        said = sub.scheduler_states([job])[job.jobid][1]
        assert said.state is State.FAILED and said.detail == "CANCELLED", said
    finally:
        subprocess.run(["scancel", str(job.submission_id)], capture_output=True)
