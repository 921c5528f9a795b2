"""Job states that stay true, on the local submitter: killed launchers, silent subjobs, cancel,
``--status`` that never fetches, ``--log``, exit codes, outcomes after fetch, jobs submitted again
from their record."""

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
from reproman.jobs.status import JobStatus


def submit(**kwargs: object) -> RunResult:
    result = api.run(**kwargs)  # type: ignore[arg-type]
    assert isinstance(result, RunResult)
    return result


def wait_finished(jobid: str, timeout: float = 60) -> JobStatus:
    registry = Registry()
    job = registry.load(jobid)
    with Connection.for_job(job) as connection:
        return follow(connection, job, timeout=timeout, on_change=registry.save)


def wait_for(predicate: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def states(jobid: str) -> list[tuple[str, str | None]]:
    row = api.jobs(jobid, action="show", status=True)[0]
    return [(s["state"], s["reason"]) for s in row["subjobs_status"]["subjobs"]]


def running(jobid: str, n: int) -> bool:
    return api.jobs(jobid, action="list", status=True)[0]["subjobs_status"]["running"] == n


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_launcher_killed_with_sigkill_is_reported_lost(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The launcher, xargs and the subjobs die at once (OOM killer, reboot): lost, fetchable, exit 1."""
    job = submit(command="sleep 60", batch_parameters=["i=1,2"]).job
    wait_for(lambda: running(job.jobid, 2))
    os.killpg(int(job.submission_id or 0), signal.SIGKILL)
    status = wait_finished(job.jobid, timeout=20)
    assert [(s.state.value, s.reason.value if s.reason else None) for s in status.subjobs] == [
        ("failed", "lost (ended without writing its status)")] * 2
    assert main(["jobs", job.jobid]) == 1
    err = capsys.readouterr().err
    assert "subjob i=1 failed (lost" in err and "subjob i=2 failed (lost" in err
    assert main(["jobs"]) == 0
    assert "2 failed" in capsys.readouterr().out


def test_launcher_killed_alone_lets_the_job_finish(workdir: Path) -> None:
    """Only the launcher shell dies: xargs and the subjobs go on, and the job is not taken for dead."""
    job = submit(command="sleep 1; echo {p[i]} > r{p[i]}", batch_parameters=["i=1,2,3"], outputs=["r{p[i]}"],
                 job_parameters=["num_processes=1"]).job
    wait_for(lambda: running(job.jobid, 1))
    os.kill(int(job.submission_id or 0), signal.SIGKILL)
    assert wait_finished(job.jobid, timeout=30).ok


def test_subjob_whose_status_writer_is_killed_is_lost_not_running(workdir: Path) -> None:
    """Subjob i=2 kills the shell that would write its final line (its worker: the subjob's own shell
    became the command) with SIGKILL. It ends without a final line: lost, as is i=3, which that
    worker (the only one) never started; none of them reads "running" once the launcher is done."""
    job = submit(command='if [ {p[i]} = 2 ]; then kill -9 $PPID; fi; echo {p[i]}',
                 batch_parameters=["i=1,2,3"], job_parameters=["num_processes=1"]).job
    status = wait_finished(job.jobid, timeout=30)
    assert [(s.state.value, s.reason.value if s.reason else None) for s in status.subjobs] == [
        ("succeeded", None), ("failed", "lost (ended without writing its status)"),
        ("failed", "lost (ended without writing its status)")]
    # The one that started is not said to have never started, and the other way round.
    assert [s.detail for s in status.subjobs[1:]] == [
        "its launcher finished without it writing a final status", "it never started, and its launcher has finished"]


def test_a_subjob_running_kill_0_does_not_take_the_batch_down(workdir: Path) -> None:
    """Trial O, 2: ``trap 'kill 0' EXIT``, a common cleanup idiom, in one subjob sent SIGTERM to the
    launcher's whole process group: the launcher and both workers died, 95 of 100 subjobs never ran and read
    "lost". The signal now ends only the subjobs running at that moment (their state says how they ended);
    the launcher and the workers go on with the rest, and nothing reads lost."""
    job = submit(command='if [ {p[i]} = 3 ]; then trap "kill 0" EXIT; fi; sleep 0.05; echo {p[i]} > o.{p[i]}',
                 batch_parameters=["i=1..20"], job_parameters=["num_processes=2"]).job
    status = wait_finished(job.jobid, timeout=60)
    ended = [(s.state.value, s.exit_code, s.reason.value if s.reason else None) for s in status.subjobs]
    assert not [e for e in ended if e[2] and "lost" in e[2]], ended
    failed = [i for i, e in enumerate(ended) if e[0] != "succeeded"]
    # At most the subjob that sent it and the one the other worker ran at that moment; killed, not lost.
    assert len(failed) <= 2 and all(ended[i][1] == 143 for i in failed), ended
    assert all(Path(job.working_directory, f"o.{n}").read_text() == f"{n}\n" for n in range(4, 21))


def done_before_cancel(job: object, status: JobStatus) -> list[str]:
    return sorted(f"o.{s.index + 1}" for s in status.subjobs if s.state.value == "succeeded")


def test_cancel_still_stops_every_worker(workdir: Path) -> None:
    """What lets a stray SIGTERM pass must not let a cancel pass: the marker written first stops them."""
    job = submit(command="sleep 0.3; echo {p[i]} > o.{p[i]}", batch_parameters=["i=1..40"],
                 job_parameters=["num_processes=2"]).job
    wait_for(lambda: running(job.jobid, 2))
    api.jobs(job.jobid, action="cancel")
    status = wait_finished(job.jobid, timeout=30)
    assert status.finished
    reasons = {s.reason.value if s.reason else s.state.value for s in status.subjobs}
    assert len([s for s in status.subjobs if s.state.value == "succeeded"]) < 10, status.summary()
    assert any("cancel" in r for r in reasons), reasons
    wait_for(lambda: not _launcher_alive(job), timeout=10)
    time.sleep(1)  # a worker that had not stopped would start another subjob by now
    assert sorted(p.name for p in Path(job.working_directory).glob("o.*")) == done_before_cancel(job, status)


def test_local_subjob_shell_becomes_the_command(workdir: Path) -> None:
    """Under the local launcher a subjob costs one process fewer: its shell execs the command.

    The command's parent is then the worker, whose parent is the launcher. Subjob i=1 is the
    one that records the node after its command (the environment capture), so it keeps its
    shell; its status, and the exit codes of those that exec, are still written.
    """
    job = submit(command="sh -c 'awk \"/^PPid:/ {{print \\$2}}\" /proc/$PPID/status; exit {p[i]}'",
                 batch_parameters=["i=1,2,3"], job_parameters=["num_processes=1"]).job
    status = wait_finished(job.jobid, timeout=30)
    assert [(s.state.value, s.exit_code) for s in status.subjobs] == [("failed", 1), ("failed", 2), ("failed", 3)]
    grandparents = [Path(job.job_dir, f"stdout.{n}").read_text().strip() for n in range(3)]
    launcher = str(job.submission_id)
    assert grandparents[0] != launcher
    assert grandparents[1:] == [launcher, launcher]


def test_status_of_a_job_never_fetches(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """'jobs --status JOB' after the job finished: the user's edited output and every other file stay as they are."""
    (workdir / "out.txt").write_text("precious local edit\n")
    job = submit(command="echo {p[i]} > out.txt; sleep 0.2", batch_parameters=["i=1,2"], outputs=["out.txt"]).job
    wait_finished(job.jobid)
    before = snapshot(workdir)
    assert main(["jobs", "--status", job.jobid]) == 0
    out = capsys.readouterr().out
    assert f"Job {job.jobid}: 2 succeeded" in out
    assert snapshot(workdir) == before
    assert (workdir / "out.txt").read_text() == "precious local edit\n"
    assert not Registry().load(job.jobid).was_fetched


def test_status_shows_each_subjob_and_detached_run_names_both_commands(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--bp", "i=1,2", "sh", "-c", "sleep 30"]) == 0
    out, err = capsys.readouterr()
    jobid = out.strip()
    assert f"'reproman jobs --status {jobid}'" in err and f"'reproman jobs {jobid}'" in err
    wait_for(lambda: running(jobid, 2))
    assert main(["jobs", "--status", jobid]) == 0
    shown = capsys.readouterr().out
    assert "i=1: running" in shown and "i=2: running" in shown
    assert main(["jobs", "--cancel", jobid]) == 0


def test_exit_codes(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slow = submit(command="sleep 30").job
    assert main(["jobs", slow.jobid]) == 3  # not finished: nothing fetched, try later
    assert "Not fetching job" in capsys.readouterr().err
    assert main(["jobs", "--fetch", slow.jobid]) == 3
    ok = submit(command="true").job
    bad = submit(command="exit 4").job
    wait_finished(ok.jobid)
    wait_finished(bad.jobid)
    assert main(["jobs", ok.jobid]) == 0
    assert main(["jobs", bad.jobid]) == 1
    assert main(["jobs", ok.jobid, bad.jobid, slow.jobid]) == 3  # something is still to come
    # Fetched and freed already, '--fetch' cannot fetch them again: that is an error (trial O, 9).
    assert main(["jobs", "--fetch", ok.jobid, slow.jobid]) == 1
    assert main(["jobs", "--cancel", slow.jobid]) == 0
    with pytest.raises(SystemExit) as usage:
        main(["jobs", "--bogus"])
    assert usage.value.code == 2
    capsys.readouterr()
    help_text = subprocess.run([sys.executable, "-m", "reproman", "jobs", "--help"], capture_output=True,
                               text=True).stdout
    assert "exit codes:" in help_text and "3  a job is not finished" in help_text


def test_log_of_a_running_subjob_then_of_the_fetched_copy(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = submit(command="echo out-{p[i]}; echo err-{p[i]} >&2; test {p[i]} = 1 || sleep 30",
                 batch_parameters=["i=1,2"]).job
    stdout = Path(job.job_dir, "stdout.1")
    wait_for(lambda: running(job.jobid, 1) and stdout.exists() and stdout.read_text() == "out-2\n")
    assert main(["jobs", "--log", job.jobid, "i=2"]) == 0
    out = capsys.readouterr().out
    assert "==> stdout of subjob i=2 (on the resource" in out and "out-2" in out and "err-2" in out
    assert "out-1" not in out
    assert main(["jobs", "--log", job.jobid, "i=9"]) == 2
    assert "no subjob" in capsys.readouterr().err
    assert main(["jobs", "--cancel", job.jobid]) == 0
    wait_finished(job.jobid)
    assert main(["jobs", job.jobid]) == 1  # i=2 was cancelled
    capsys.readouterr()
    assert main(["jobs", "--log", "--lines", "1", job.jobid, "0"]) == 0
    out = capsys.readouterr().out
    assert "(fetched copy" in out and "out-1" in out and "err-1" in out


def test_outcome_kept_after_fetch_and_shown(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = submit(command="echo {p[i]}; exit $(( {p[i]} == 2 ? 3 : 0 ))", batch_parameters=["i=1,2,3"]).job
    wait_finished(job.jobid)
    assert main(["jobs", job.jobid]) == 1
    capsys.readouterr()
    assert main(["jobs"]) == 0
    listing = capsys.readouterr().out
    assert "1 failed" in listing and "yes" in listing
    assert main(["jobs", "--show", "--json", job.jobid]) == 0
    shown = json.loads(capsys.readouterr().out)[0]
    assert shown["outcome"] == "2 succeeded, 1 failed" and shown["fetched"].startswith("20")  # when it was fetched
    assert shown["failed"] == [{"index": 1, "subjob": "i=2", "p": {"i": "2"}, "exit_code": 3,
                                "reason": "non-zero exit", "detail": None}]
    assert shown["usage"].startswith("unavailable")
    assert shown["subjobs"][1]["outcome"]["exit_code"] == 3


def test_job_submitted_again_from_what_show_prints(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "in-a.txt").write_text("a\n")
    (workdir / "in-b.txt").write_text("bb\n")
    first = submit(command=["sh", "-c", "wc -c < in-{p[x]}.txt > out-{p[x]}.txt"], batch_parameters=["x=a,b"],
                   inputs=["in-{p[x]}.txt"], outputs=["out-{p[x]}.txt"], job_parameters=["num_processes=1"],
                   message="count", follow=True)
    assert first.ok
    for name in ("out-a.txt", "out-b.txt"):
        (workdir / name).unlink()
    assert main(["jobs", "--show", first.job.jobid]) == 0
    (workdir / "again.yaml").write_text(capsys.readouterr().out)
    assert main(["run", "--follow", "--job-spec", "again.yaml"]) == 0
    second = Registry().load(capsys.readouterr().out.strip())
    assert [(workdir / n).read_text().strip() for n in ("out-a.txt", "out-b.txt")] == ["2", "3"]
    assert (second.command, second.input_patterns, second.output_patterns, second.parameters, second.message) == (
        first.job.command, ["in-{p[x]}.txt"], ["out-{p[x]}.txt"], {"num_processes": 1}, "count")
    assert [s.p for s in second.subjobs] == [{"x": "a"}, {"x": "b"}]
    assert second.working_directory != first.job.working_directory
    # The JSON form loads too, and the command line still wins.
    assert main(["jobs", "--show", "--json", first.job.jobid]) == 0
    (workdir / "again.json").write_text(capsys.readouterr().out)
    assert main(["run", "--follow", "--job-spec", "again.json", "--bp", "x=a", "--jp", "num_processes=2"]) == 0
    third = Registry().load(capsys.readouterr().out.strip())
    assert [s.p for s in third.subjobs] == [{"x": "a"}] and third.parameters == {"num_processes": 2}


def test_old_reproman_job_spec_loads(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "old.yaml").write_text(
        "_jobid: 20190101-000000-0000\n"
        "resource_name: local\n"
        "orchestrator: plain\n"
        "submitter: local\n"
        "command_str: echo {p[n]} > n{p[n]}.out\n"
        "outputs: ['n{p[n]}.out']\n"
        "_resolved_batch_parameters: [{n: 1}, {n: 2}]\n"
        "num_processes: 1\n"
        "message: from the old tool\n"
    )
    assert main(["run", "--follow", "--job-spec", "old.yaml"]) == 0
    job = Registry().load(capsys.readouterr().out.strip())
    assert (workdir / "n1.out").read_text() == "1\n" and (workdir / "n2.out").read_text() == "2\n"
    assert job.parameters == {"num_processes": 1} and job.message == "from the old tool"
    (workdir / "bad.yaml").write_text("command: echo hi\nnum_proceses: 2\n")
    assert main(["run", "--job-spec", "bad.yaml"]) == 2
    assert "unknown job parameter 'num_proceses'" in capsys.readouterr().err


def test_plain_list_says_not_checked_and_how(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A detached job nobody polled: the list does not call it 'unknown'; it says 'not checked' and how to check."""
    submit(command="true")
    capsys.readouterr()
    assert main(["jobs"]) == 0
    out, err = capsys.readouterr()
    assert "1 not checked" in out and "unknown" not in out, out
    assert "'reproman jobs --status' asks the resources now" in err, err


LEGEND = "'not checked': no poll has seen"
UNKNOWN_LEGEND = "'unknown': the job's directory is gone"


def test_not_checked_legend_only_under_a_table_showing_those_words(workdir: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The legend follows no fetch, follow or rerun, nor a table whose cut OUTCOME cells do not show the words."""
    job = submit(command="true", batch_parameters=["n=1,2,3,4"], follow=True).job
    for argv in (["rerun", "--follow", job.jobid], ["jobs", "--follow", job.jobid], ["jobs", job.jobid],
                 ["jobs", "--fetch", job.jobid], ["jobs"]):
        capsys.readouterr()
        # '--fetch' of a job fetched and freed already cannot fetch it: an error (trial O, 9).
        assert main(argv) == (1 if "--fetch" in argv else 0), argv
        out, err = capsys.readouterr()
        assert LEGEND not in err and UNKNOWN_LEGEND not in err and "not checked" not in out, (argv, out, err)
    # 1 succeeded, 1 failed, 1 cancelled and 1 not checked: longer than the OUTCOME column, cut before 'not checked'.
    registry = Registry()
    record = registry.load(job.jobid)
    done = dict(record.subjobs[0].outcome or {})
    record.subjobs[1].outcome = {**done, "state": "failed", "exit_code": 1, "reason": "non-zero exit"}
    record.subjobs[2].outcome = {**done, "state": "failed", "exit_code": None, "reason": "cancelled"}
    record.subjobs[3].outcome = None
    for gone in (False, True):  # the hidden words are 'not checked', then (directory gone) 'unknown'
        if gone:
            record.extra["directory_gone"] = "2026-01-01T00:00:00"
        else:
            record.extra.pop("directory_gone", None)
        registry.save(record)
        capsys.readouterr()
        assert main(["jobs"]) == 0
        out, err = capsys.readouterr()
        assert "1 cancelled, 1..." in out and "not checked" not in out and "unknown" not in out, out
        assert LEGEND not in err and UNKNOWN_LEGEND not in err, err


def test_vanished_directory_reads_unknown_in_every_view(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    """The job directory is removed while the subjobs run (a scratch purge). Before: 'jobs --status' said
    '2 unknown', and then the plain list '2 not checked' (with a hint to run the --status just run)."""
    job = submit(command="sleep 60", batch_parameters=["i=1,2"]).job
    try:
        wait_for(lambda: running(job.jobid, 2))
        import shutil

        shutil.rmtree(job.job_dir)
        capsys.readouterr()
        assert main(["jobs", "--status", job.jobid]) == 0
        out, _err = capsys.readouterr()
        assert "2 unknown" in out and "not checked" not in out, out
        assert main(["jobs"]) == 0
        out, err = capsys.readouterr()
        assert "2 unknown" in out and "not checked" not in out + err, out + err
        assert "'unknown': the job's directory is gone" in err, err
        assert main(["jobs", "--show", job.jobid]) == 0
        assert "outcome: 2 unknown" in capsys.readouterr().out
        assert main(["jobs", "--follow", job.jobid]) == 1
        assert "(2 unknown;" in capsys.readouterr().err
        report = tmp_path / "report.html"
        assert main(["jobs", "--report", job.jobid, "-o", str(report)]) == 0
        page = report.read_text()
        assert "how 2 subjob(s) ended cannot be known (unknown)" in page
        assert page.count("<td>unknown</td>") == 2
    finally:
        api.jobs(job.jobid, action="cancel")


def test_a_directory_vanished_under_a_job_that_then_ends_still_reads_unknown(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Trial K: once the launcher had ended, the next poll read 'failed (lost ... killed?)' for every subjob,
    finished ones too: the local launcher's 'lost' comes from a marker in the directory that is gone."""
    job = submit(command="sleep 2", batch_parameters=["i=1,2"]).job
    wait_for(lambda: running(job.jobid, 2))
    import shutil

    shutil.rmtree(job.job_dir)
    assert main(["jobs", "--status", job.jobid]) == 0
    capsys.readouterr()
    deadline = time.monotonic() + 30
    while _launcher_alive(job) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert main(["jobs", "--status", job.jobid]) == 0
    out, _err = capsys.readouterr()
    assert "2 unknown" in out and "lost" not in out and "failed" not in out, out


def _launcher_alive(job: object) -> bool:
    try:
        os.kill(int(getattr(job, "submission_id", "")), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def test_deleting_a_job_whose_directory_vanished_keeps_what_it_wrote(workdir: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Trial L: 'jobs --delete' (which the message after the vanished directory suggests) removed the
    working directory, the only copy of the outputs, and said only 'Deleted job ... from the registry'."""
    job = submit(command="echo {p[i]} > o{p[i]}.txt; sleep 2", batch_parameters=["i=1,2"]).job
    wait_for(lambda: running(job.jobid, 2))
    import shutil

    shutil.rmtree(job.job_dir)
    deadline = time.monotonic() + 30
    while _launcher_alive(job) and time.monotonic() < deadline:
        time.sleep(0.2)
    capsys.readouterr()
    assert main(["jobs", "--delete", job.jobid]) == 0
    _out, err = capsys.readouterr()
    assert f"its files stay on resource 'local' in {job.working_directory}" in err, err
    assert Path(job.working_directory, "o1.txt").read_text() == "1\n"
    assert Path(job.working_directory, "o2.txt").read_text() == "2\n"
