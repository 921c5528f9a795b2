"""Detached jobs: list, show, status, fetch, cancel, delete; surviving a killed CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reproman import api
from reproman.cli.main import main
from reproman.jobs.commands import RunResult
from reproman.jobs.connection import Connection
from reproman.jobs.follow import follow
from reproman.jobs.registry import Registry
from reproman.jobs.spec import JobSpec
from reproman.jobs.status import JobStatus


def wait_finished(jobid: str, timeout: float = 60) -> JobStatus:
    """Follow a registered job to its end (the same loop as ``run --follow``)."""
    registry = Registry()
    job = registry.load(jobid)
    with Connection.for_job(job) as connection:
        return follow(connection, job, timeout=timeout, on_change=registry.save)


def wait_for(predicate: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def live_processes_in_group(pgid: int) -> list[int]:
    """PIDs in process group ``pgid`` that are not zombies."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def test_detached_run_list_show_status_fetch_delete(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--bp", "i=0,1,2", "-o", "o{p[i]}", "sh", "-c", "echo {p[i]} > o{p[i]}"]) == 0
    out, err = capsys.readouterr()
    jobid = out.strip()
    assert f"Submitted job {jobid}: 3 subjob(s)" in err
    assert Registry().load(jobid).status == "submitted"

    assert main(["jobs"]) == 0
    listing = capsys.readouterr().out
    assert jobid in listing and "local" in listing and "plain" in listing and "sh -c" in listing

    assert main(["jobs", "--show", "--json", jobid[-6:]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown[0]["jobid"] == jobid and len(shown[0]["subjobs"]) == 3

    wait_finished(jobid)
    assert main(["jobs", "--status"]) == 0
    assert "3 succeeded" in capsys.readouterr().out

    assert main(["jobs", jobid]) == 0  # auto with a job: fetch
    said = capsys.readouterr().err
    assert f"Fetched job {jobid}: 3 succeeded. Results in {workdir}." in said, said  # trial Q, 15: where to
    assert [(workdir / f"o{i}").read_text() for i in range(3)] == ["0\n", "1\n", "2\n"]

    # auto --all skips what was fetched already, and says so in one line
    rows = api.jobs(all_=True)
    assert rows == [{"jobid": jobid, "fetched": False, "skipped": True,
                     "reason": "already fetched (use --fetch to fetch again)"}]
    assert main(["jobs", "--all"]) == 0
    assert capsys.readouterr().err == (
        "Skipped 1 job(s) fetched already (fetch one again with 'reproman jobs --fetch JOB').\n")

    assert main(["jobs", "--delete", jobid]) == 0
    capsys.readouterr()
    assert api.jobs() == []


def test_api_detached_then_fetch_and_failures(workdir: Path) -> None:
    result = api.run(command="echo {p[x]} > r{p[x]}; test {p[x]} = a", batch_parameters=["x=a,b"],
                     outputs=["r{p[x]}"])
    assert isinstance(result, RunResult) and result.status is None
    jobid = result.job.jobid
    wait_finished(jobid)
    rows = api.jobs(jobid, action="fetch")
    assert rows[0]["fetched"] is True
    assert [f["index"] for f in rows[0]["failed"]] == [1]
    assert rows[0]["failed"][0]["stderr"].endswith(f".reproman/jobs/local/{jobid}/stderr.1")
    assert (workdir / "ra").read_text() == "a\n" and (workdir / "rb").read_text() == "b\n"
    listed = api.jobs(status=True)
    assert listed[0]["subjobs_status"] == {"pending": 0, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 0,
                                             "unknown": 0}
    assert main(["jobs", jobid]) == 1  # a failed subjob makes the exit code non-zero


def test_all_goes_on_past_a_job_whose_fetch_fails_unexpectedly(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Trial K: one job's fetch raising what no code foresaw (there: a UnicodeEncodeError deep in a backend)
    ended 'jobs --all' with a traceback, and the other finished jobs stayed unfetched. A bug cannot be made
    to happen in a real service, so it is injected here, into the fetch of the first job only."""
    from reproman.jobs import commands

    jobids = []
    for name in ("first", "second"):
        assert main(["run", "-o", f"{name}.txt", "sh", "-c", f"echo {name} > {name}.txt"]) == 0
        jobids.append(capsys.readouterr().out.strip())
    for jobid in jobids:
        wait_finished(jobid)
    real = commands.fetch_job

    def fetch_job(connection: Connection, job: JobSpec, *args: object, **kwargs: object) -> object:
        if job.jobid == jobids[0]:
            raise UnicodeEncodeError("utf-8", "x\udcff", 1, 2, "surrogates not allowed")
        return real(connection, job, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(commands, "fetch_job", fetch_job)
    assert main(["jobs", "--all"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (said,) = [line for line in err.splitlines() if jobids[0] in line]
    assert "failed unexpectedly (UnicodeEncodeError" in said and "report it" in said
    assert (workdir / "second.txt").read_text() == "second\n"
    assert not (workdir / "first.txt").exists()
    assert Registry().load(jobids[0]).status != "fetched"


def test_fetch_of_unfinished_job_is_refused_then_cancel(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = api.run(command="sleep 60", batch_parameters=["i=1,2,3,4"], job_parameters=["num_processes=2"])
    assert isinstance(result, RunResult)
    job = result.job
    pgid = int(job.submission_id or 0)
    wait_for(lambda: api.jobs(job.jobid, action="list", status=True)[0]["subjobs_status"]["running"] == 2)
    rows = api.jobs(job.jobid, action="fetch")
    assert rows[0]["fetched"] is False and "not finished (2 pending, 2 running)" in rows[0]["reason"]

    assert main(["jobs", "--cancel", job.jobid]) == 0
    assert f"Cancelled job {job.jobid}" in capsys.readouterr().err
    status = wait_finished(job.jobid, timeout=20)
    assert {s.reason.value for s in status.subjobs if s.reason} == {"cancelled"}
    wait_for(lambda: not live_processes_in_group(pgid), timeout=10)
    record = Registry().load(job.jobid)
    assert record.cancelled and record.status == "submitted"
    assert {s.outcome["reason"] for s in record.subjobs if s.outcome} == {"cancelled"}


def test_killing_the_cli_loses_nothing(workdir: Path) -> None:
    """Kill ``run --follow`` (and its whole process group) mid-run: the job completes and is fetchable."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reproman", "run", "--follow", "--bp", "i=0,1,2,3", "-o", "k{p[i]}",
         "sh", "-c", "sleep 1; echo {p[i]} > k{p[i]}"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        wait_for(lambda: any(isinstance(e, JobSpec) and e.status == "submitted" for e in Registry().entries()))
    finally:
        os.killpg(proc.pid, signal.SIGHUP)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    (job,) = Registry().entries()
    assert isinstance(job, JobSpec)
    assert not (workdir / "k0").exists()
    status = wait_finished(job.jobid)
    assert status.ok
    assert api.jobs(job.jobid)[0]["fetched"] is True
    assert [(workdir / f"k{i}").read_text() for i in range(4)] == ["0\n", "1\n", "2\n", "3\n"]


def test_crash_between_submit_and_record_update_loses_nothing(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: the process dies right after the real submission, before updating the record."""
    from reproman.jobs.local import LocalSubmitter

    real_submit = LocalSubmitter.submit

    def submit_then_die(self: LocalSubmitter, job: object, script_path: str) -> str:
        real_submit(self, job, script_path)
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalSubmitter, "submit", submit_then_die)
    with pytest.raises(KeyboardInterrupt):
        api.run(command="echo survived > s", outputs=["s"])
    monkeypatch.setattr(LocalSubmitter, "submit", real_submit)
    (job,) = Registry().entries()
    assert isinstance(job, JobSpec) and job.status == "registered" and job.submission_id is None
    assert wait_finished(job.jobid).ok
    assert api.jobs(job.jobid)[0]["fetched"] is True
    assert (workdir / "s").read_text() == "survived\n"


def test_ambiguous_and_unknown_job_names(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = api.run(command="true")
    second = api.run(command="true")
    assert isinstance(first, RunResult) and isinstance(second, RunResult)
    common = os.path.commonprefix([first.job.jobid, second.job.jobid])
    assert main(["jobs", "--show", common]) == 1
    err = capsys.readouterr().err
    assert "matches several jobs" in err and first.job.jobid in err and second.job.jobid in err
    assert main(["jobs", "--delete", "no-such-job"]) == 1
    assert "no job matches" in capsys.readouterr().err
    wait_finished(first.job.jobid)
    wait_finished(second.job.jobid)


def test_status_of_a_job_whose_resource_is_gone_is_an_error(workdir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`jobs --status` cannot say a job's state: one line, exit 1 (not a table row and exit 0)."""
    assert main(["run", "true"]) == 0
    jobid = capsys.readouterr().out.strip()
    registry = Registry()
    job = registry.load(jobid)
    job.resource_name = "vanished"
    registry.save(job)
    assert main(["jobs", "--status", jobid]) == 1
    err = capsys.readouterr().err
    assert f"reproman: error: job {jobid}: cannot query resource 'vanished': no resource 'vanished'" in err


@pytest.mark.parametrize("cancelled", [False, True], ids=["finished", "cancelled"])
def test_a_delete_during_a_fetch_waits_for_it_and_loses_nothing(workdir: Path, tmp_path: Path,
                                                                 cancelled: bool) -> None:
    """Trial H ran ``jobs JOB`` and ``jobs --delete JOB`` at once: both said they succeeded, the delete
    claimed the files stayed on the resource (the fetch had freed them), the deleted record came back,
    and for a cancelled job the delete freed the resource under the fetch (0 of 20 outputs arrived).

    A slow ``sha256sum`` (first on the fetch's PATH) holds the fetch in its checksum step while the
    delete starts: the delete must wait for the fetch, then forget the job for good.
    """
    slow = tmp_path / "bin"
    slow.mkdir()
    (slow / "sha256sum").write_text('#!/bin/sh\nsleep 2\nexec /usr/bin/sha256sum "$@"\n')
    (slow / "sha256sum").chmod(0o755)
    from reproman.testing.cli import run_cli

    command = "mkdir -p out; for i in $(seq 20); do echo $i > out/o$i.txt; done" + ("; sleep 60" if cancelled else "")
    jobid = run_cli(["run", "-o", "out", "sh", "-c", command]).stdout.strip()
    if cancelled:
        deadline = time.monotonic() + 60
        while not (Path(Registry().load(jobid).working_directory) / "out" / "o20.txt").exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert run_cli(["jobs", "--cancel", jobid]).returncode == 0
    else:
        wait_finished(jobid)
    env = {**os.environ, "PATH": f"{slow}:{os.environ['PATH']}"}
    fetch = subprocess.Popen([sys.executable, "-m", "reproman", "jobs", jobid], cwd=workdir, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # the fetch is in its checksum step, holding the job
    delete = run_cli(["jobs", "--delete", jobid])
    out, err = fetch.communicate(timeout=120)
    assert "Traceback" not in err + delete.stderr
    assert delete.returncode == 0, delete.stderr
    assert "stay on resource" not in delete.stdout + delete.stderr, delete.stdout + delete.stderr
    assert not Registry().path(jobid).exists(), "the deleted record came back"
    if not cancelled:
        assert fetch.returncode == 0, err
        assert sorted(p.name for p in (workdir / "out").glob("o*.txt")) == sorted(f"o{i}.txt" for i in range(1, 21))
        assert all((workdir / "out" / f"o{i}.txt").read_text() == f"{i}\n" for i in range(1, 21))
    else:  # cancelled: what the fetch brings back is whole, and nothing is said to be missing that was made
        assert "not produced" not in err and "incomplete" not in err, err
