"""Job states on a REAL Son of Grid Engine cell (tools/ci/sge.sh): what the submitter contract asks beyond
running jobs. A task killed while the rest of its array waits, a task that ended moments ago and one the
cell never knew, cancellation that stays true after the cell forgot, usage from ``qacct`` kept in the
record, a request no queue can meet, a job in error state, and the launcher's width.

Grid Engine forgets a task the moment it ends (its accounting file, read with ``qacct``, is the
history). Two tests need what the cell cannot be made to do on demand: an accounting file that
has no record of a task that ran (a record still waiting for the accounting flush, or a file
rotated away). They put a ``qacct`` first on PATH that answers as qacct does for an id it
does not know (fault injection, the ``qacct_forgets`` fixture).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from submitters_helpers import make_job, submit

from reproman import api
from reproman.cli.main import main
from reproman.config import reset_config
from reproman.jobs.commands import RunResult
from reproman.jobs.contracts import FailureReason, State
from reproman.jobs.registry import Registry
from reproman.jobs.status import poll
from reproman_submitters.sge import SGESubmitter

pytestmark = pytest.mark.usefixtures("sge")

LOST = "lost (ended without writing its status)"


def run(**kwargs: object) -> RunResult:
    kwargs.setdefault("submitter", "sge")
    result = api.run(**kwargs)  # type: ignore[arg-type]
    assert isinstance(result, RunResult)
    return result


def states(jobids: list[str]) -> dict[str, list[tuple[str, str | None]]]:
    """Every subjob's (state, reason), polled now: one poll for all jobs, outcomes saved in the records."""
    return {r["jobid"]: [(s["state"], s["reason"]) for s in r["subjobs_status"]["subjobs"]]
            for r in api.jobs(jobids, action="show", status=True)}


def wait_until(predicate: object, timeout: float, what: object) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what() if callable(what) else what}: not within {timeout} s")
        time.sleep(0.5)


def live(number: str) -> bool:
    """Grid Engine lists the job as queued or running (not only as a zombie)."""
    out = subprocess.run(["qstat", "-u", "$user"], capture_output=True, text=True, check=True).stdout
    return any(line.split()[:1] == [number] for line in out.splitlines())


def forget_outcomes(jobid: str) -> None:
    """The record as it would be had nobody polled before the cell forgot (checking back next morning)."""
    registry = Registry()
    job = registry.load(jobid)
    for subjob in job.subjobs:
        subjob.outcome = None
    job.unaccounted.clear()
    registry.save(job)


@pytest.fixture
def sub(sge_sub: SGESubmitter) -> SGESubmitter:
    return sge_sub


@pytest.fixture
def cancel_later() -> Iterator[list[str]]:
    """Job IDs (of ``reproman run``) to cancel after the test, passed or not."""
    jobids: list[str] = []
    yield jobids
    for jobid in jobids:
        try:
            api.jobs(jobid, action="cancel")
        except Exception:  # already finished or gone: nothing to stop
            pass


@pytest.fixture
def grace(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """A short ``[jobs] lost_after`` (the default is 60 s)."""
    monkeypatch.setenv("REPROMAN_JOBS_LOST_AFTER", "4")
    reset_config()
    yield 4.0
    monkeypatch.delenv("REPROMAN_JOBS_LOST_AFTER")
    reset_config()


@pytest.fixture
def qacct_forgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``qacct`` that knows no job, worded as the real one (fault injection: see the module docstring)."""
    bindir = tmp_path / "qacct-forgets"
    bindir.mkdir()
    fake = bindir / "qacct"
    fake.write_text('#!/bin/sh\necho "error: job id $2 not found" >&2\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")


# -- history: what qstat no longer lists --------------------------------------------------------------

@pytest.mark.timeout(240)
def test_task_killed_mid_array_is_reported_while_the_rest_wait(sub, session, jobroot):
    """Task 1's runscript dies by SIGKILL (no final status line) while the array's other tasks run and wait:
    core wants it, so qacct is asked although qstat still lists the array. Grid Engine records a kill of
    the job's shell as it records qdel (failed 100), and no limit was asked for: it reads as cancelled."""
    job = submit(session, sub, jobroot, ["kill -9 $PPID", "sleep 120", "sleep 120"], {"throttle": 1})
    deadline = time.monotonic() + 180
    status = poll(session, sub, [job])[job.jobid]
    while not status.subjobs[0].state.finished:
        assert time.monotonic() < deadline, status.summary()
        time.sleep(0.5)
        status = poll(session, sub, [job])[job.jobid]
    killed = status.subjobs[0]
    assert (killed.state, killed.reason, killed.exit_code) == (State.FAILED, FailureReason.CANCELLED, None)
    assert killed.detail.startswith("cancelled outside ReproMan: qdel (Grid Engine: failed 100"), killed.detail
    assert not status.subjobs[2].state.finished and live(str(job.submission_id))  # the rest still queued


@pytest.mark.timeout(180)
def test_task_that_just_ended_waits_for_accounting_before_it_is_lost(sub, session, jobroot, grace, qacct_forgets):
    """The task ran 6 s and was killed; its accounting record is not there (qacct_forgets). Its status file
    has been silent for longer than the grace period, yet the qmaster lists it among the jobs that just
    ended: it is not declared lost before the grace period has passed since it was seen ended."""
    job = submit(session, sub, jobroot, ["sleep 6; kill -9 $PPID"])
    number = str(job.submission_id)
    wait_until(lambda: Path(job.job_dir, "status.0").exists(), 120, "the task starting")
    wait_until(lambda: not live(number), 60, "the task ending")
    assert time.time() - Path(job.job_dir, "status.0").stat().st_mtime >= grace
    first = poll(session, sub, [job])[job.jobid].subjobs[0]
    assert not first.state.finished, first
    time.sleep(grace + 0.5)
    lost = poll(session, sub, [job])[job.jobid].subjobs[0]
    assert (lost.state, lost.reason) == (State.FAILED, FailureReason.LOST)


def test_task_the_cell_does_not_know_is_lost_after_the_grace_period(sub, session, jobroot, grace):
    """Neither qstat nor qacct knows the id (the cell was reinstalled, the accounting rotated away):
    forgotten, so a subjob whose status file says running is lost once that file has been silent."""
    job, _ = make_job(session, sub, jobroot, ["sleep 600"])
    job.submission_id = "9999999"
    Path(job.job_dir, "status.0").write_text("running\n")  # what the runscript writes when it starts
    first = poll(session, sub, [job])[job.jobid].subjobs[0]
    assert first.state is State.RUNNING
    time.sleep(grace + 0.5)
    lost = poll(session, sub, [job])[job.jobid].subjobs[0]
    assert (lost.state, lost.reason) == (State.FAILED, FailureReason.LOST)
    assert "no longer knows it" in lost.detail


# -- cancel ----------------------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_cancel_stays_cancelled_after_the_cell_forgot(project, cancel_later):
    """'jobs --cancel' with tasks running and queued; checked again, from the record as nobody saw it,
    once Grid Engine forgot every task: qacct says qdel for those that ran, the cancel marker speaks for
    those that never ran (no accounting record), at once rather than after the grace period."""
    job = run(command="sleep 300", batch_parameters=["i=1,2,3"]).job
    cancel_later.append(job.jobid)
    wait_until(lambda: any(s == "running" for s, _ in states([job.jobid])[job.jobid]), 180, "a task starting")
    assert api.jobs(job.jobid, action="cancel") == [{"jobid": job.jobid, "cancelled": True}]
    number = str(Registry().load(job.jobid).submission_id)
    wait_until(lambda: not live(number), 60, "qdel taking effect")
    forget_outcomes(job.jobid)
    assert states([job.jobid]) == {job.jobid: [("failed", "cancelled")] * 3}
    details = [s["detail"] for s in api.jobs(job.jobid, action="show", status=True)[0]["subjobs_status"]["subjobs"]]
    assert any("(qdel)" in d for d in details) and any("before it started" in d for d in details), details


@pytest.mark.timeout(300)
def test_cancel_of_a_launcher_job(project, cancel_later):
    job = run(command="sleep 300", batch_parameters=["i=1,2,3"], job_parameters=["launcher=true", "throttle=1"]).job
    cancel_later.append(job.jobid)
    wait_until(lambda: ("running", None) in states([job.jobid])[job.jobid], 180, "the launcher starting")
    assert api.jobs(job.jobid, action="cancel") == [{"jobid": job.jobid, "cancelled": True}]
    wait_until(lambda: states([job.jobid])[job.jobid] == [("failed", "cancelled")] * 3, 60,
               lambda: f"cancelled launcher: {states([job.jobid])}")


# -- usage -------------------------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_usage_in_show_and_json(project, capsys):
    """Elapsed, CPU time, peak RSS and node of each subjob, from one accounting command, kept in the record."""
    hog = "sleep 1; python3 -c 'b = bytearray(60 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\nimport time; time.sleep(2)'"
    assert main(["run", "--submitter", "sge", "--follow", "--bp", "i=1,2", "sh", "-c", hog]) == 0
    jobid = capsys.readouterr().out.strip()
    usage = api.jobs(jobid, action="show")[0]["usage"]
    assert isinstance(usage, list) and [u["subjob"] for u in usage] == ["i=1", "i=2"], usage
    for row in usage:
        assert row["elapsed"] >= 3 and row["node"] and row["cpu_time"] is not None
        assert 60 * 2**20 <= row["max_rss"] < 1024 * 2**20  # qacct's ru_maxrss is kilobytes printed as bytes
    record = Registry().load(jobid)
    assert all(s.outcome and s.outcome["usage"]["elapsed"] >= 3 for s in record.subjobs)
    kept = json.loads(Path(project, ".reproman", "jobs", "local", jobid, "spec.yaml").read_text())
    assert [s["outcome"]["usage"]["node"] for s in kept["subjobs"]] == [usage[0]["node"]] * 2  # with the results
    assert main(["jobs", "--show", "--json", jobid]) == 0
    assert json.loads(capsys.readouterr().out)[0]["usage"] == usage
    assert main(["jobs", "--show", jobid]) == 0
    assert "elapsed:" in capsys.readouterr().out


@pytest.mark.timeout(300)
def test_log_shows_grid_engines_reason_for_a_walltime_kill(project, capsys, cancel_later):
    """'jobs --log JOB t=600' for a task killed at its h_rt, on the resource (nobody polled since) and after
    the fetch. Grid Engine writes nothing into the job's output when it kills a task at h_rt; its reason is
    in its accounting. Before: --log showed the (empty) streams and no word of Grid Engine's."""
    job = run(command="echo started; sleep {p[t]}", batch_parameters=["t=600,0"],
              job_parameters=["walltime=00:00:03"]).job
    cancel_later.append(job.jobid)
    number = str(job.submission_id)
    wait_until(lambda: not live(number), 120, "the walltime kill")

    def log() -> str:
        capsys.readouterr()
        assert main(["jobs", "--log", job.jobid, "t=600"]) == 0
        return capsys.readouterr().out

    wait_until(lambda: "h_rt" in log(), 60, lambda: f"Grid Engine's words in --log: {log()}")
    out = log()
    assert "==> the scheduler's words on subjob t=600 (as recorded from the scheduler) <==" in out, out
    assert "walltime exceeded: Grid Engine: failed 37 : qmaster enforced h_rt" in out, out
    assert "started" in out
    assert main(["jobs", job.jobid]) == 1  # fetched: the words now come from the record with the fetched copy
    assert "walltime exceeded: Grid Engine: failed 37" in log()
    assert "scheduler's words" not in (capsys.readouterr(), main(["jobs", "--log", job.jobid, "t=0"]),
                                       capsys.readouterr().out)[2]


@pytest.mark.timeout(300)
def test_report_of_a_fetched_job_offline(project, capsys):
    """Walltime kill, fetched; the resource's copy is then gone: the report still names the walltime,
    draws the killed task up to its end (start + elapsed from accounting) and shows the usage."""
    pytest.importorskip("plotly", reason="the report extra (pip install 'reproman-core[report]')")
    assert main(["run", "--submitter", "sge", "--follow", "--jp", "walltime=00:00:03", "--bp", "t=600,0",
                 "sleep {p[t]}"]) == 1
    jobid = capsys.readouterr().out.strip()
    record = Registry().load(jobid)
    subprocess.run(["rm", "-rf", "--", record.job_dir], check=True)
    out = project / "report.html"
    assert main(["jobs", "--report", jobid, "-o", str(out), "--json"]) == 0
    assert "fetched copy" in json.loads(capsys.readouterr().out)["source"]
    text = out.read_text(encoding="utf-8")
    failures = text[text.index("<h2>Failures</h2>"):text.index("<h2>Resource usage</h2>")]
    # Killed by Grid Engine before the command ended: no exit code of the command's own.
    assert "<td>0</td><td>walltime exceeded</td><td>-</td>" in failures and "<td>t=600</td>" in failures
    assert "2 of 2 subjobs have accounting figures" in text
    from reproman.report.collect import collect

    killed = collect(Registry().load(jobid)).subjobs[0]
    assert killed.start is not None and killed.end is not None and 2 <= killed.end - killed.start <= 10


# -- requests that cannot start -------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_request_no_queue_can_meet_is_refused_at_submission(project, capsys):
    """64 slots on a 2-slot cell: qsub -w e refuses it with Grid Engine's words; nothing waits forever."""
    assert main(["run", "--submitter", "sge", "--jp", "num_processes=64", "--follow", "true"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "no suitable queues" in err and "fewer slots" in err
    listed = subprocess.run(["qstat", "-xml", "-u", "$user"], capture_output=True, text=True, check=True).stdout
    for row in api.jobs(action="list"):
        assert row["outcome"] == "submission failed" and f"reproman-{row['jobid']}<" not in listed


@pytest.mark.timeout(120)
def test_job_in_error_state_stops_follow(project, capsys, cancel_later):
    """Grid Engine cannot chdir to the job's directory (Eqw): it waits for someone to act, so
    'run --follow' stops with Grid Engine's state and what to run, exit 3."""
    code = main(["run", "--submitter", "sge", "--jp", "directives=-wd /nonexistent/reproman-dir", "--follow", "true"])
    out, err = capsys.readouterr()
    jobid = out.strip()
    cancel_later.append(jobid)
    assert code == 3, err
    assert "can never start as submitted" in err and "error state (Eqw)" in err and "qmod -cj" in err
    assert main(["jobs", "--status", jobid]) == 0
    assert "error state" in capsys.readouterr().out


# -- launcher width ------------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_launcher_without_throttle_asks_for_what_the_queue_has(sub, session, jobroot):
    """1,000 subjobs in launcher mode: as many slots as the queue instance has, not 1,000, and it runs."""
    slots = subprocess.run(["qstat", "-f", "-xml"], capture_output=True, text=True, check=True).stdout
    width = max(int(x) for x in re.findall(r"<slots_total>(\d+)</slots_total>", slots))
    job = submit(session, sub, jobroot, [f"echo {i}" for i in range(1000)], {"launcher": True})
    script = Path(job.job_dir, "submit.sge").read_text()
    assert (f"#$ -pe smp {width}\n" in script if width > 1 else "-pe" not in script) and f"-P {width} " in script
    deadline = time.monotonic() + 240
    status = poll(session, sub, [job])[job.jobid]
    while not status.finished:
        assert time.monotonic() < deadline, status.summary()
        time.sleep(1)
        status = poll(session, sub, [job])[job.jobid]
    assert status.ok and Path(job.job_dir, "stdout.999").read_text() == "999\n"


# -- scheduler load -----------------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_many_jobs_cost_one_qstat_and_cancel_while_queued(project, tmp_path, monkeypatch, capsys, cancel_later):
    """'jobs --status' over 20 held jobs: one qstat (and no qacct); 'jobs --cancel --all' then reads every
    never-started task as cancelled."""
    jobids = [run(command="true", job_parameters=["directives=-h"]).job.jobid for _ in range(20)]
    cancel_later.extend(jobids)
    bindir = tmp_path / "counting-bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("qstat", "qacct"):
        real = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        (bindir / tool).write_text(f'#!/bin/sh\necho {tool} >> "{log}"\nexec {real} "$@"\n')
        (bindir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")

    def calls() -> list[str]:
        return log.read_text().split() if log.exists() else []

    assert main(["jobs", "--status"]) == 0
    assert calls() == ["qstat"]
    assert capsys.readouterr().out.count("1 pending (on hold (hqw)") == 20
    assert main(["jobs", "--cancel", "--all"]) == 0
    wait_until(lambda: states(jobids) == {j: [("failed", "cancelled")] for j in jobids}, 60,
               lambda: f"cancelled held jobs: {states(jobids)}")


# -- behind ReproMan's back -------------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_qdel_behind_repromans_back_reads_cancelled(project, cancel_later):
    """qdel of a running task (no limits asked) and of a task still queued: both read cancelled, the queued
    one at once (long before the 60 s grace for silent subjobs), never 'the scheduler says it completed'."""
    job = run(command="sleep 300", batch_parameters=["i=0,1,2"], job_parameters=["throttle=1"]).job
    cancelled = "cancelled outside ReproMan"
    cancel_later.append(job.jobid)
    number = str(job.submission_id)

    def rows() -> list[dict]:
        return api.jobs(job.jobid, action="show", status=True)[0]["subjobs_status"]["subjobs"]

    wait_until(lambda: rows()[0]["state"] == "running", 180, lambda: f"i=0 running: {rows()}")
    subprocess.run(["qdel", number, "-t", "3"], check=True, capture_output=True)  # i=2, queued
    started = time.monotonic()
    wait_until(lambda: rows()[2]["state"] == "failed", 20, lambda: f"queued i=2 cancelled: {rows()}")
    assert time.monotonic() - started < 20
    queued = rows()[2]
    assert (queued["reason"], queued["exit_code"]) == ("cancelled", None), queued
    assert queued["detail"] == f"{cancelled}: removed from the queue before it started (qdel)", queued
    subprocess.run(["qdel", number, "-t", "1"], check=True, capture_output=True)  # i=0, running
    wait_until(lambda: rows()[0]["state"] == "failed", 60, lambda: f"running i=0 cancelled: {rows()}")
    ran = rows()[0]
    assert (ran["reason"], ran["exit_code"]) == ("cancelled", None), ran
    assert ran["detail"].startswith(f"{cancelled}: qdel (Grid Engine: failed 100"), ran
    assert rows()[1]["state"] in ("pending", "running")


@pytest.mark.timeout(240)
def test_refused_allocation_under_h_vmem_reads_out_of_memory(project, cancel_later):
    """memory=100M becomes h_vmem: Python's 300 MiB allocation is refused (MemoryError, exit 1), nothing is
    killed. The subjob reads out of memory, with its exit code and why, not just 'exit code 1'."""
    job = run(command="python3 -c 'x = bytearray(300 * 1024 * 1024)'", job_parameters=["memory=100M"]).job
    cancel_later.append(job.jobid)

    def row() -> dict:
        return api.jobs(job.jobid, action="show", status=True)[0]["subjobs_status"]["subjobs"][0]

    wait_until(lambda: row()["state"] == "failed", 180, lambda: f"failed: {row()}")
    failed = row()
    assert (failed["reason"], failed["exit_code"]) == ("out of memory", 1), failed
    assert "could not get more memory under its 100M limit" in failed["detail"], failed
