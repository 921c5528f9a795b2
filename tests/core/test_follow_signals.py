"""SIGTERM and SIGHUP of a following command: the job's ID and how to get back to it (trial O, finding 10).

Real ``reproman`` processes on the built-in local resource, signalled as a
closed terminal, a closed ssh session or a ``kill`` would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reproman.jobs.registry import Registry


def _start(args: list[str], cwd: Path, out: Path, err: Path) -> subprocess.Popen[bytes]:
    with open(out, "wb") as o, open(err, "wb") as e:
        return subprocess.Popen([sys.executable, "-m", "reproman", *args], cwd=cwd, stdout=o, stderr=e)


def _submitted_job(timeout: float = 60) -> str:
    """The one job's ID once the registry says it was handed to the submitter."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for jobid in Registry().jobids():
            if Registry().load(jobid).status == "submitted":
                return jobid
        time.sleep(0.1)
    raise AssertionError("no job was submitted")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signalled_run_follow_names_the_job_and_exits_like_the_signal(tmp_path: Path, signum: int) -> None:
    out, err = tmp_path / "out", tmp_path / "err"
    project = tmp_path / "project"
    project.mkdir()
    proc = _start(["run", "--follow", "-o", "out.txt", "sh", "-c", "sleep 3; echo ok > out.txt"], project, out, err)
    try:
        jobid = _submitted_job()
        time.sleep(0.5)  # following now
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 128 + signum, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    name = signal.Signals(signum).name
    assert out.read_text() == f"{jobid}\n"  # the ID scripts capture, as after Ctrl-C
    lines = err.read_text().splitlines()
    assert lines[-1] == (f"interrupted by {name}; job {jobid} keeps running on the resource. Follow it again with "
                         f"'reproman jobs --follow {jobid}' (or fetch it once finished with 'reproman jobs {jobid}')."), lines
    assert "Traceback" not in err.read_text()
    # It did keep running, and following it again brings the result.
    again = subprocess.run([sys.executable, "-m", "reproman", "jobs", "--follow", jobid], cwd=project,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert (project / "out.txt").read_text() == "ok\n"


def test_a_hung_up_jobs_follow_names_the_job(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    submitted = subprocess.run([sys.executable, "-m", "reproman", "run", "-o", "out.txt", "sh", "-c",
                                "sleep 3; echo ok > out.txt"], cwd=project, capture_output=True, text=True)
    assert submitted.returncode == 0, submitted.stderr
    jobid = submitted.stdout.strip()
    out, err = tmp_path / "out", tmp_path / "err"
    proc = _start(["jobs", "--follow", jobid[-6:]], project, out, err)
    try:
        time.sleep(1.5)
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=60) == 128 + signal.SIGHUP, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert err.read_text().splitlines()[-1] == (
        f"interrupted by SIGHUP; job {jobid} keeps running on the resource. "
        f"Resume with 'reproman jobs --follow {jobid}'."), err.read_text()


def test_a_closed_terminal_ends_run_follow_cleanly(tmp_path: Path) -> None:
    """The terminal itself goes away (its controlling process hangs up): exit 129, the job runs on."""
    pexpect = pytest.importorskip("pexpect")
    project = tmp_path / "project"
    project.mkdir()
    child = pexpect.spawn(sys.executable, ["-m", "reproman", "run", "--follow", "-o", "out.txt", "sh", "-c",
                                           "sleep 3; echo ok > out.txt"], cwd=str(project), env=dict(os.environ))
    try:
        jobid = _submitted_job()
        time.sleep(0.5)
        os.close(child.child_fd)  # the terminal goes away: the kernel hangs up its session (SIGHUP)
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline:
            pid, status = os.waitpid(child.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("reproman run --follow did not end when its terminal closed")
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 128 + signal.SIGHUP, status
    finally:
        with contextlib.suppress(OSError):
            os.kill(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)
    done = subprocess.run([sys.executable, "-m", "reproman", "jobs", "--follow", jobid], cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (project / "out.txt").read_text() == "ok\n"


def test_an_interrupted_run_follow_keeps_the_outcomes_it_saw(tmp_path: Path) -> None:
    """Trial Q, 6: Ctrl-C of 'run --follow' after it showed 324 succeeded left the list saying "1000 not
    checked": the follower saved what it learned only every few seconds and at the end, not on its way out."""
    out, err = tmp_path / "out", tmp_path / "err"
    project = tmp_path / "project"
    project.mkdir()
    # Five subjobs finish at once; the sixth runs on well past the interrupt.
    proc = _start(["run", "--follow", "--bp", "i=1..6", "sh", "-c", "[ {p[i]} != 6 ] || sleep 30"],
                  project, out, err)
    try:
        jobid = _submitted_job()
        deadline = time.monotonic() + 30
        while "5 succeeded" not in err.read_text():  # the follower has seen them (its progress line says so)
            assert time.monotonic() < deadline and proc.poll() is None, err.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # well within the first save interval (5 s)
        assert proc.wait(timeout=60) == 130, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    # The plain list reads the record only: it must know what the follower saw.
    listed = subprocess.run([sys.executable, "-m", "reproman", "jobs"], cwd=project, capture_output=True,
                            text=True, timeout=60)
    row = next(line for line in listed.stdout.splitlines() if line.startswith(jobid))
    assert "5 succeeded" in row and "6 not checked" not in row, listed.stdout
    subprocess.run([sys.executable, "-m", "reproman", "jobs", "--cancel", jobid], cwd=project, timeout=60)
