"""A working directory the user named holds one job at a time over ssh too (trial O, finding 4).

Against the real sshd of this test session: the hold is made by the remote
command that creates the directory, so a second submission, from here or
another machine, is refused before anything is staged there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from reproman import api
from reproman.jobs.workdir_hold import HOLDER


def _reproman(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_a_second_job_in_a_held_working_directory_is_refused_over_ssh(sshd: Any, tmp_path: Path) -> None:
    params = {k: str(v) for k, v in sshd.session_params().items() if v is not None}
    api.create("node", "ssh", params)
    project, wd = tmp_path / "project", tmp_path / "remote wd"
    project.mkdir()
    (project / "in.txt").write_text("input\n")
    command = ["sh", "-c", "sleep 2; cat in.txt > out.txt; echo {word} >> out.txt"]

    def submit(word: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return _reproman("run", "-r", "node", *extra, "--jp", f"working_directory={wd}", "-i", "in.txt",
                         "-o", "out.txt", *[c.replace("{word}", word) for c in command], cwd=project)

    first = submit("A")
    assert first.returncode == 0, first.stderr
    jobid = first.stdout.strip()
    (project / "in.txt").write_text("changed input\n")
    second = submit("B")
    assert second.returncode == 1 and second.stdout == "", second.stderr
    assert f"working directory {wd} is in use by job {jobid} (not fetched yet)" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert (wd / "in.txt").read_text() == "input\n", "the refused job staged its input into the held directory"
    followed = _reproman("jobs", "--follow", jobid, cwd=project)
    assert followed.returncode == 0, followed.stderr
    assert (project / "out.txt").read_text() == "input\nA\n"
    assert not (wd / HOLDER).exists()
    third = submit("C", "--follow")
    assert third.returncode == 0, third.stderr
    assert (project / "out.txt").read_text() == "changed input\nC\n"
