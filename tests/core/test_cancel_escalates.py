"""``reproman jobs --cancel`` on the local submitter, against subjobs that do not end on SIGTERM.

A new-user trial: a subjob running ``trap '' TERM`` (or a program with a slow cleanup) kept running after
the cancel, still writing into its working directory, while ``jobs --status`` read it "cancelled" at
once. Cancel now escalates to SIGKILL after ``[jobs] kill_after`` seconds, and until the job's processes
are gone its subjobs read running ("cancelling"), so nothing fetches what they are still writing.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from reproman import api
from reproman.cli.main import main
from reproman.config import reset_config
from reproman.jobs.commands import RunResult

#: Writes a new line into out.txt every 0.1 s, and ignores SIGTERM (sleep inherits that).
STUBBORN = "trap '' TERM; i=0; while :; do i=$((i + 1)); echo $i >> out.txt; sleep 0.1; done"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(predicate: object, timeout: float) -> float:
    """Seconds until ``predicate()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
    return time.monotonic() - start


def subjobs(jobid: str) -> list[dict[str, object]]:
    row = api.jobs(jobid, action="show", status=True)[0]
    return list(row["subjobs_status"]["subjobs"])


def test_cancel_kills_a_subjob_that_ignores_sigterm(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Alive after SIGTERM: read running ("cancelling") and not fetched; killed after kill_after; cancelled."""
    monkeypatch.setenv("REPROMAN_JOBS_KILL_AFTER", "6")
    result = api.run(command=STUBBORN, outputs=["out.txt"])
    assert isinstance(result, RunResult)
    job = result.job
    pgid = int(job.submission_id or 0)
    out = Path(job.working_directory, "out.txt")
    try:
        wait_for(lambda: out.exists(), timeout=30)
        check_cancel_escalates(job.jobid, pgid, out, workdir, capsys)
    finally:
        if group_alive(pgid):  # never leave it running, whatever failed
            os.killpg(pgid, signal.SIGKILL)


def check_cancel_escalates(jobid: str, pgid: int, out: Path, workdir: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    cancelled = time.monotonic()
    assert main(["jobs", "--cancel", jobid]) == 0
    err = capsys.readouterr().err
    assert "did not end on SIGTERM; they get SIGKILL 6 s after the SIGTERM" in err, err
    # SIGTERM is ignored: the subjob lives on and writes, and nothing reads it cancelled meanwhile.
    assert group_alive(pgid)
    size = out.stat().st_size
    wait_for(lambda: out.stat().st_size > size, timeout=2)
    [sub] = subjobs(jobid)
    assert (sub["state"], sub["reason"]) == ("running", None), sub
    assert "cancelling" in str(sub["detail"]), sub
    assert main(["jobs", "--status", jobid]) == 0
    shown = capsys.readouterr().out
    assert "1 running" in shown and "cancelling" in shown and "cancelled" not in shown, shown
    # Not fetched while it writes: 'jobs JOB' says it is not finished (exit 3) and brings nothing back.
    assert main(["jobs", jobid]) == 3
    assert not (workdir / "out.txt").exists()
    # Nor deleted: the delete says why, without asking for the cancel already done.
    capsys.readouterr()
    assert main(["jobs", "--delete", jobid]) != 0
    err = capsys.readouterr().err
    assert "it was cancelled, but its processes have not all ended yet" in err and "cancel it first" not in err, err

    # SIGKILL after the grace period, by the killer the cancel left on the resource (this process waits
    # for nothing of it).
    gone_after = time.monotonic() - cancelled + wait_for(lambda: not group_alive(pgid), timeout=15)
    assert 5.5 <= gone_after < 12, gone_after
    [sub] = subjobs(jobid)
    assert (sub["state"], sub["reason"]) == ("failed", "cancelled"), sub
    written = out.read_text()
    time.sleep(0.5)
    assert out.read_text() == written  # nothing writes any more


def test_still_cancelling_however_old_the_cancel(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Core settles a cancelled subjob as cancelled once the cancel is older than ``[jobs] lost_after``
    (for schedulers that keep saying "running"): not while the local submitter sees its processes."""
    monkeypatch.setenv("REPROMAN_JOBS_KILL_AFTER", "60")
    monkeypatch.setenv("REPROMAN_JOBS_LOST_AFTER", "0")
    result = api.run(command=STUBBORN)
    assert isinstance(result, RunResult)
    job = result.job
    pgid = int(job.submission_id or 0)
    try:
        wait_for(lambda: Path(job.working_directory, "out.txt").exists(), timeout=30)
        api.jobs(job.jobid, action="cancel")
        time.sleep(1.5)
        assert group_alive(pgid)
        [sub] = subjobs(job.jobid)
        assert (sub["state"], sub["reason"]) == ("running", None), sub
    finally:
        if group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
    wait_for(lambda: not group_alive(pgid), timeout=10)
    [sub] = subjobs(job.jobid)
    assert (sub["state"], sub["reason"]) == ("failed", "cancelled"), sub


def test_a_subjob_that_ends_on_sigterm_reads_cancelled_at_once(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual case is unchanged: SIGTERM ends it, the killer leaves without signalling anything."""
    monkeypatch.setenv("REPROMAN_JOBS_KILL_AFTER", "30")
    result = api.run(command="echo started > out.txt; sleep 600")
    assert isinstance(result, RunResult)
    job = result.job
    wait_for(lambda: Path(job.working_directory, "out.txt").exists(), timeout=30)
    api.jobs(job.jobid, action="cancel")
    wait_for(lambda: not group_alive(int(job.submission_id or 0)), timeout=5)
    [sub] = subjobs(job.jobid)
    assert (sub["state"], sub["reason"]) == ("failed", "cancelled"), sub


def test_a_wrong_kill_after_is_one_line_and_cancels_nothing(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A kill_after that is not a number refuses the cancel in one line, before anything is marked."""
    result = api.run(command="sleep 600")
    assert isinstance(result, RunResult)
    job = result.job
    monkeypatch.setenv("REPROMAN_JOBS_KILL_AFTER", "soon")
    reset_config()
    try:
        assert main(["jobs", "--cancel", job.jobid]) != 0
        err = capsys.readouterr().err
        assert "[jobs] kill_after must be a finite number of seconds" in err and "Traceback" not in err, err
        assert not Path(job.job_dir, "cancelled").exists()
    finally:
        monkeypatch.setenv("REPROMAN_JOBS_KILL_AFTER", "0")
        reset_config()
        api.jobs(job.jobid, action="cancel")
