"""``reproman run`` through the command line: parsing of the trailing command, output, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reproman.cli.main import main
from reproman.jobs.registry import Registry


def reproman(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "reproman", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_follow_then_double_dash_keeps_command_intact(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("X", "from-env")
    code = main(["run", "--follow", "-r", "local", "-o", "x", "--", "sh", "-c", 'echo "$X  two" > x'])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (workdir / "x").read_text() == "from-env  two\n"
    jobid = out.strip()
    assert Registry().load(jobid).command == "sh -c 'echo \"$X  two\" > x'"


def test_follow_does_not_swallow_the_command_word(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--follow", "--keep-remote", "sh", "-c", 'echo "$0" > y', "-o"]) == 0
    jobid = capsys.readouterr().out.strip()
    job = Registry().load(jobid)
    # Everything after the command word belongs to the command, "-o" included.
    assert job.command == "sh -c 'echo \"$0\" > y' -o"
    assert job.outputs == []
    assert Path(job.working_directory, "y").read_text() == "-o\n"


def test_follow_with_action_value(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The action is read as --follow's value, not as the command: refused at once on 'local', which
    cannot be stopped; on a resource that can be deleted, a failed job leaves it in place."""
    code = main(["run", "--follow", "stop-if-success", "false"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("reproman: error: --follow stop-if-success: resources of type 'shell' cannot be stopped")
    assert not Registry().entries()
    from reproman import api

    api.create("box", "shell", [])
    code = main(["run", "-r", "box", "--follow", "delete-if-success", "false"])
    err = capsys.readouterr().err
    assert code == 1
    assert "subjob #0 failed (exit code 1)" in err and "Resource 'box': not deleted: some subjobs failed." in err


def test_cli_batch_of_100_subprocess(workdir: Path) -> None:
    values = ",".join(map(str, range(100)))
    proc = reproman("run", "--follow", "--bp", f"i={values}", "-o", "o/{p[i]}", "sh", "-c",
                    "mkdir -p o && echo {p[i]} > o/{p[i]}", cwd=workdir)
    assert "100 succeeded" in proc.stderr
    assert len(list((workdir / "o").iterdir())) == 100


def test_cli_failures_exit_non_zero_and_name_stderr(workdir: Path) -> None:
    proc = reproman("run", "--follow", "--bp", "x=0,1,2", "sh", "-c", "echo bad-{p[x]} >&2; test {p[x]} != 2",
                    cwd=workdir, check=False)
    assert proc.returncode == 1
    jobid = proc.stdout.strip()
    stderr_path = workdir / ".reproman" / "jobs" / "local" / jobid / "stderr.2"
    assert f"subjob x=2 failed (exit code 1); stderr: {stderr_path}" in proc.stderr
    assert stderr_path.read_text() == "bad-2\n"
    assert "1 failed" in proc.stderr and "2 succeeded" in proc.stderr


def test_cli_usage_errors(workdir: Path) -> None:
    proc = reproman("run", "--jp", "queue=short", "true", cwd=workdir, check=False)
    assert proc.returncode == 2
    assert "not supported by submitter 'local'" in proc.stderr and "Traceback" not in proc.stderr
    proc = reproman("run", cwd=workdir, check=False)
    assert proc.returncode == 2 and "no command" in proc.stderr


def test_cli_list(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--list"]) == 0
    out = capsys.readouterr().out
    assert "SUBMITTER" in out and "ORCHESTRATOR" in out and "root_directory" in out
    assert main(["run", "--list", "parameters", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["parameters"]
    assert "walltime" in [p["name"] for p in data["parameters"]]


def test_cli_json_result(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--json", "--follow", "--bp", "i=1,2", "echo {p[i]}"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"]["counts"]["succeeded"] == 2
    assert [s["command"] for s in data["job"]["subjobs"]] == ["echo 1", "echo 2"]


def test_concurrent_cli_batch_runs(workdir: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-m", "reproman", "run", "--follow", "--bp", "i=0,1,2,3,4,5,6,7,8,9",
                          "-o", f"c{n}-{{p[i]}}", f"echo {n}{{p[i]}} > c{n}-{{p[i]}}"],
                         cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert len({e.jobid for e in Registry().entries()}) == 4
    for n in range(4):
        for i in range(10):
            assert (workdir / f"c{n}-{i}").read_text() == f"{n}{i}\n"


def _fetch_when_done(jobid: str, cwd: Path, *extra: str) -> str:
    """``reproman jobs [EXTRA] JOB`` until it fetches (the job runs in the background)."""
    import time

    deadline = time.monotonic() + 60
    while True:
        proc = reproman("jobs", *extra, jobid, cwd=cwd, check=False)
        if proc.returncode == 0 and "Fetched job" in proc.stderr + proc.stdout:
            return proc.stderr
        assert time.monotonic() < deadline, proc.stderr
        time.sleep(0.2)


def test_run_keep_remote_is_remembered_by_a_later_fetch(workdir: Path) -> None:
    kept = reproman("run", "--keep-remote", "-o", "a.txt", "sh", "-c", "echo a > a.txt", cwd=workdir)
    jobid = kept.stdout.strip()
    job = Registry().load(jobid)
    assert job.keep_remote, "the wish is in the record"
    _fetch_when_done(jobid, workdir)
    assert (workdir / "a.txt").read_text() == "a\n"
    assert Path(job.job_dir, "status.0").exists(), "run --keep-remote, yet the later fetch freed the job directory"
    assert Path(job.working_directory, "a.txt").exists()
    assert not Registry().load(jobid).extra.get("remote_released")

    # Without the wish the fetch frees the resource; an explicit 'jobs --keep-remote' still keeps it.
    freed = Registry().load(reproman("run", "-o", "b.txt", "sh", "-c", "echo b > b.txt", cwd=workdir).stdout.strip())
    explicit = Registry().load(reproman("run", "-o", "c.txt", "sh", "-c", "echo c > c.txt", cwd=workdir)
                               .stdout.strip())
    assert not freed.keep_remote and not explicit.keep_remote
    _fetch_when_done(freed.jobid, workdir)
    _fetch_when_done(explicit.jobid, workdir, "--keep-remote")
    assert not Path(freed.job_dir).exists()
    assert Path(explicit.job_dir, "status.0").exists()

    # A rerun remembers its own --keep-remote the same way.
    rerun = Registry().load(reproman("rerun", "--keep-remote", jobid, cwd=workdir).stdout.strip().splitlines()[0])
    assert rerun.rerun_of and rerun.rerun_of["jobid"] == jobid and rerun.keep_remote
    _fetch_when_done(rerun.jobid, workdir)
    assert Path(rerun.job_dir, "status.0").exists()


def test_cancelled_subjobs_that_never_started_name_no_stderr_file(tmp_path: Path) -> None:
    """Trial I: a fetched cancelled batch listed stderr.N paths for subjobs that never ran (no such files)."""
    import time

    from reproman.testing.cli import run_cli

    submitted = run_cli(["run", "--jp", "num_processes=1", "--bp", "i=1,2,3", "sh", "-c", "sleep 30"], cwd=tmp_path)
    jobid = submitted.stdout.strip()
    deadline = time.monotonic() + 60
    while "1 running" not in run_cli(["jobs", "--status", jobid], cwd=tmp_path).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert run_cli(["jobs", "--cancel", jobid], cwd=tmp_path).returncode == 0
    fetched = run_cli(["jobs", jobid], cwd=tmp_path)
    lines = [line for line in (fetched.stdout + fetched.stderr).splitlines() if "subjob" in line and "failed" in line]
    assert len(lines) == 3, fetched.stdout + fetched.stderr
    for line in lines:
        assert "cancelled, cancelled" not in line, line
        if "; stderr: " in line:
            assert Path(line.split("; stderr: ", 1)[1]).exists(), line
    assert sum("no stderr: it never started" in line for line in lines) == 2, lines
    # The resource was freed: --log shows the fetched copy, and names no file for a subjob that never ran.
    log = run_cli(["jobs", "--log", jobid, "i=3"], cwd=tmp_path)
    assert log.returncode == 0, log.stderr
    assert "no stdout of subjob i=3: it never started" in log.stdout and "on the resource" not in log.stdout, log.stdout


def test_ctrl_c_while_handing_the_job_over_names_it_and_says_what_to_check(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Fault injection: Ctrl-C arrives while the submitter runs (timing a real one is a race).
    from reproman.jobs.local import LocalSubmitter

    def interrupted(self: object, job: object, script: str) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalSubmitter, "submit", interrupted)
    assert main(["run", "true"]) == 130
    out, err = capsys.readouterr()
    jobid = out.strip()
    assert Registry().path(jobid).exists()
    assert f"interrupted while submitting job {jobid}" in err and "keeps running" not in err, err


def test_ctrl_c_before_the_handover_says_nothing_was_submitted(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reproman.jobs.plain import PlainOrchestrator

    def interrupted(self: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(PlainOrchestrator, "prepare_remote", interrupted)
    assert main(["run", "--follow", "true"]) == 130
    out, err = capsys.readouterr()
    assert out == "" and "nothing was submitted" in err and "keeps running" not in err, err
    assert list(Registry().root.glob("*")) == []


def test_ctrl_c_while_fetching_says_the_job_finished_and_how_to_fetch_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Trial J: Ctrl-C during the fetch of a finished job said it "keeps running".
    from reproman.jobs import commands

    def interrupted(*args: object, **kwargs: object) -> list[str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "fetch_job", interrupted)
    assert main(["run", "--follow", "-o", "x", "sh", "-c", "echo 1 > x"]) == 130
    out, err = capsys.readouterr()
    jobid = out.strip()
    assert f"interrupted while fetching job {jobid}, which has finished" in err and "keeps running" not in err, err
    assert f"'reproman jobs {jobid}'" in err


def test_ctrl_c_while_jobs_follow_fetches_says_the_job_finished(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reproman.jobs import commands

    assert main(["run", "-o", "x", "sh", "-c", "echo 1 > x"]) == 0
    jobid = capsys.readouterr().out.strip()

    def interrupted(*args: object, **kwargs: object) -> list[str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "fetch_job", interrupted)
    assert main(["jobs", "--follow", jobid]) == 130
    err = capsys.readouterr().err
    assert "interrupted while fetching the finished job" in err and "keeps running" not in err, err


def test_ctrl_c_while_jobs_fetches_says_how_to_fetch_again(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial Q, 15: Ctrl-C of 'reproman jobs JOB' said only "reproman: error: interrupted"."""
    from reproman.jobs import commands

    assert main(["run", "-o", "x", "sh", "-c", "echo 1 > x"]) == 0
    jobid = capsys.readouterr().out.strip()
    real = commands.fetch_job

    def interrupted(*args: object, **kwargs: object) -> list[str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "fetch_job", interrupted)
    deadline = time.monotonic() + 30
    while (code := main(["jobs", jobid])) == 3 and time.monotonic() < deadline:  # 3: not finished yet
        time.sleep(0.1)
    assert code == 130
    err = capsys.readouterr().err
    assert f"interrupted while fetching: 'reproman jobs {jobid}' fetches again" in err, err
    monkeypatch.setattr(commands, "fetch_job", real)
    assert main(["jobs", jobid]) == 0
    assert (workdir / "x").read_text() == "1\n"


def test_diff_of_a_job_that_never_ran_says_so(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Trial J: "not fetched yet (it may still be running)" for a job whose submission had failed.
    from reproman.errors import SubmissionError
    from reproman.jobs.local import LocalSubmitter

    assert main(["run", "--follow", "-o", "x", "sh", "-c", "echo 1 > x"]) == 0
    good = capsys.readouterr().out.strip()

    def refused(self: object, job: object, script: str) -> str:
        raise SubmissionError("the scheduler refused it")

    monkeypatch.setattr(LocalSubmitter, "submit", refused)
    assert main(["run", "true"]) != 0
    failed = [j.jobid for j in Registry().entries() if j.jobid != good][0]  # type: ignore[union-attr]
    capsys.readouterr()
    assert main(["diff", good, failed]) != 0
    err = capsys.readouterr().err
    assert "never ran (its submission failed)" in err and "may still be running" not in err, err
