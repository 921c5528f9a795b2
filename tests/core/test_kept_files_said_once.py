"""A local file a fetch keeps is said once, in the fetch's summary (the landing logged it as well, twice in all)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reproman.testing.cli import run_cli


def _edited_while_running(workdir: Path) -> list[str]:
    # The local resource's working directory is not this one: the command edits the user's copy of its output
    # after submission, exactly as a user editing it while the job runs would.
    return ["-o", "c.txt", "sh", "-c", f"echo mine > {workdir / 'c.txt'}; echo job > c.txt"]


@pytest.mark.parametrize("level", [[], ["-l", "info"]], ids=["default", "info"])
def test_run_follow_names_a_kept_edit_once(workdir: Path, level: list[str]) -> None:
    result = run_cli([*level, "run", "--follow", *_edited_while_running(workdir)])
    assert result.returncode == 0, result.stderr
    local = workdir / "c.txt"
    assert local.read_text() == "mine\n"
    assert result.stderr.count(str(local)) == 1, result.stderr
    assert f"kept {local}: it changed here after job" in result.stderr
    assert "reproman jobs --fetch --overwrite" in result.stderr


def test_jobs_fetch_names_a_kept_edit_once(workdir: Path) -> None:
    submitted = run_cli(["run", *_edited_while_running(workdir)])
    assert submitted.returncode == 0, submitted.stderr
    jobid = submitted.stdout.split()[0]
    deadline = time.monotonic() + 60
    while (fetched := run_cli(["jobs", jobid])).returncode == 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stderr.count(str(workdir / "c.txt")) == 1, fetched.stderr


def test_rerun_names_each_kept_original_once(workdir: Path) -> None:
    first = run_cli(["run", "--follow", "-o", "a.txt", "-o", "sub/b.txt",
                     "sh", "-c", "mkdir -p sub; date +%N > a.txt; date +%N > sub/b.txt"])
    assert first.returncode == 0, first.stderr
    rerun = run_cli(["-l", "info", "rerun", "--follow", first.stdout.split()[0]])
    assert rerun.returncode == 0, rerun.stderr
    for name in ("a.txt", "sub/b.txt"):
        assert rerun.stderr.count(f"kept the local {workdir / name};") == 1, rerun.stderr
