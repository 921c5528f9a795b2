"""Over a real sshd: a job's files removed on the resource by the user are said to be gone by
``jobs --status`` and "already gone" by ``jobs --delete`` (trial N, 7, whose resource was SSH)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from reproman import api
from reproman.jobs.registry import Registry
from reproman.testing.cli import run_cli


def test_status_and_delete_say_the_files_are_gone(ssh_params: dict[str, Any], tmp_path: Path) -> None:
    name = f"ssh-{uuid.uuid4().hex[:6]}"
    api.create(name, "ssh", {k: str(v) for k, v in ssh_params.items() if v is not None})
    work = tmp_path / "work"
    work.mkdir()
    made = run_cli(["run", "-r", name, "--follow", "--jp", f"root_directory={tmp_path / 'root'}",
                    "-o", "good.txt", "-o", "misspelt.txt", "sh", "-c", "echo good > good.txt; echo o > mispelt.txt"],
                   cwd=work)
    assert made.returncode == 0, made.stderr
    jobid = made.stdout.splitlines()[0]
    record = Registry().load(jobid)
    shutil.rmtree(record.working_directory)  # the sshd is this machine: the user removes them "there"
    shutil.rmtree(record.job_dir)
    status = run_cli(["jobs", "--status", jobid], cwd=work)
    assert status.returncode == 0 and "1 succeeded" in status.stdout, status.stdout + status.stderr
    assert (f"its working directory {record.working_directory} and its job directory {record.job_dir} are gone "
            f"from resource {name!r}") in status.stderr, status.stderr
    deleted = run_cli(["jobs", "--delete", jobid], cwd=work)
    assert deleted.returncode == 0, deleted.stderr
    assert f"Its files on resource {name!r} ({record.working_directory}) were already gone" in deleted.stderr
    assert "were removed" not in deleted.stderr
    assert (work / "good.txt").read_text() == "good\n"
