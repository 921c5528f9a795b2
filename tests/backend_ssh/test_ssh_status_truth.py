"""Job and resource states that stay true while a host is frozen or after it recovered (trial Q, 4 and 5).

A real sshd; "frozen" is SIGSTOP of the processes serving the kept
connection, as a hung host or a dead route would leave it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman import api
from reproman.testing.cli import run_cli


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``: the per-connection sshd processes and the shells they serve."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Freezer:
    """Call to freeze what serves the kept connection now; ``thaw()`` (also at the fixture's end) undoes it."""

    def __init__(self, sshd: Any) -> None:
        self.sshd = sshd
        self.stopped: list[int] = []

    def __call__(self) -> None:
        assert self.sshd.process is not None
        serving = _descendants(self.sshd.process.pid)
        assert serving, "no sshd process serves the kept connection"
        for pid in serving:
            os.kill(pid, signal.SIGSTOP)
            self.stopped.append(pid)

    def thaw(self) -> None:
        for pid in self.stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped = []


@pytest.fixture
def frozen(sshd: Any) -> Iterator[Freezer]:
    freezer = Freezer(sshd)
    yield freezer
    freezer.thaw()


@pytest.fixture
def host(ssh_params: dict[str, Any], sessions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Resource 'h' with a kept connection given up quickly once the server falls silent; a project directory."""
    monkeypatch.setenv("REPROMAN_SSH_SERVER_ALIVE_INTERVAL", "1")
    monkeypatch.setenv("REPROMAN_SSH_SERVER_ALIVE_COUNT_MAX", "2")
    monkeypatch.setenv("REPROMAN_SSH_REFRESH_TIMEOUT", "2")
    from reproman.config import reset_config

    reset_config()
    api.create("h", "ssh", {k: str(v) for k, v in ssh_params.items() if v is not None})
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return "h"


@pytest.mark.timeout(120)
def test_status_of_a_fetched_and_freed_job_needs_no_resource(host: str, frozen: Any) -> None:
    """Before: 'jobs --status' asked the frozen host about a job fetched and freed long ago, showed
    "cannot query resource" instead of its recorded outcome, and exited 1."""
    result = api.run(command="echo {p[i]} > r{p[i]}.txt; test {p[i]} != 2", resref=host, outputs=["r{p[i]}.txt"],
                     batch_parameters=["i=1,2"], follow=True)
    jobid = result.job.jobid  # type: ignore[union-attr]
    assert Path("r1.txt").read_text() == "1\n"
    frozen()
    started = time.monotonic()
    status = run_cli(["jobs", "--status", jobid], timeout=90)
    took = time.monotonic() - started
    assert status.returncode == 0, status.stdout + status.stderr
    assert "1 succeeded" in status.stdout and "cannot query" not in status.stdout + status.stderr, status.stdout
    assert "  i=2: failed (exit code 1)" in status.stdout, status.stdout  # each subjob named, as a poll shows it
    assert took < 10, took
    # Without a JOB, every job is listed: the fetched one still reads its outcome, no error for it.
    listed = run_cli(["jobs", "--status"], timeout=90)
    row = next(line for line in listed.stdout.splitlines() if line.startswith(jobid))
    assert "1 succeeded" in row and "1 failed" in row and listed.returncode == 0, listed.stdout + listed.stderr


@pytest.mark.timeout(120)
def test_status_of_a_fetched_job_with_kept_files_survives_a_frozen_host(host: str, frozen: Any) -> None:
    """A job fetched with --keep-remote is still asked about (are its files there?), but a host that does not
    answer leaves its recorded outcome shown, with a warning, not "cannot query" and exit 1."""
    result = api.run(command="echo r > r.txt", resref=host, outputs=["r.txt"], follow=True, keep_remote=True)
    jobid = result.job.jobid  # type: ignore[union-attr]
    frozen()
    status = run_cli(["jobs", "--status", jobid], timeout=90)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "1 succeeded" in status.stdout and "cannot query" not in status.stdout, status.stdout
    assert "show their recorded outcome; whether their files are still there is not known" in status.stderr


def _listed_status(name: str) -> str:
    listed = run_cli(["ls", name], timeout=60)
    assert listed.returncode == 0, listed.stderr
    return " ".join(line for line in listed.stdout.splitlines() if line.startswith(f"{name} "))


@pytest.mark.timeout(120)
def test_a_command_that_reaches_the_host_clears_a_stale_connection_error(host: str, sshd: Any, frozen: Any) -> None:
    """Before: 'reproman ls' kept the "CONNECTION ERROR" of a refresh made during an outage after the host
    recovered and commands through it succeeded; now the first command that reaches it stores ONLINE."""
    from reproman.resources.inventory import inventory_path

    assert run_cli(["execute", "-r", host, "true"]).returncode == 0  # a kept connection, to freeze
    frozen()
    refreshed = run_cli(["ls", "--refresh", host], timeout=60)
    assert "CONNECTION ERROR" in refreshed.stdout, refreshed.stdout + refreshed.stderr
    frozen.thaw()
    assert "CONNECTION ERROR" in _listed_status(host)  # nothing has reached it since
    executed = run_cli(["execute", "-r", host, "echo", "back"], timeout=60)
    assert (executed.returncode, executed.stdout) == (0, "back\n"), executed.stderr
    row = _listed_status(host)
    assert "ONLINE" in row and "CONNECTION ERROR" not in row, row
    # The usual command, with nothing to correct, does not write the inventory.
    written = inventory_path().stat().st_mtime_ns
    assert run_cli(["execute", "-r", host, "true"], timeout=60).returncode == 0
    assert inventory_path().stat().st_mtime_ns == written


@pytest.mark.timeout(120)
def test_a_job_command_that_reaches_the_host_clears_a_stale_connection_error(host: str, frozen: Any) -> None:
    """The same through the job commands (run, jobs), which open their own connection."""
    assert run_cli(["execute", "-r", host, "true"]).returncode == 0
    frozen()
    assert "CONNECTION ERROR" in run_cli(["ls", "--refresh", host], timeout=60).stdout
    frozen.thaw()
    ran = run_cli(["run", "-r", host, "--follow", "-o", "r.txt", "sh", "-c", "echo r > r.txt"], timeout=90)
    assert ran.returncode == 0, ran.stderr
    assert "ONLINE" in _listed_status(host)
