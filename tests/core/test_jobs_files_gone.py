"""A job's files on the resource removed by the user: delete and status say what is really there (trial N, 7).

The local resource runs the same code as an SSH one (one remote command
checks the paths); the SSH server variant is in tests/backend_ssh.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reproman.jobs.registry import Registry
from reproman.testing.cli import run_cli


def _kept_job(workdir: Path) -> str:
    """A finished, fetched job whose files stay on the resource (a misspelt output keeps them)."""
    made = run_cli(["run", "--follow", "-o", "good.txt", "-o", "misspelt.txt",
                    "sh", "-c", "echo good > good.txt; echo other > mispelt.txt"], cwd=workdir)
    assert made.returncode == 0, made.stderr
    jobid = made.stdout.splitlines()[0]
    record = Registry().load(jobid)
    assert not record.extra.get("remote_released")
    assert Path(record.working_directory).is_dir() and Path(record.job_dir).is_dir()
    return jobid


def test_deleting_a_job_whose_files_the_user_removed_says_they_were_already_gone(workdir: Path) -> None:
    jobid = _kept_job(workdir)
    record = Registry().load(jobid)
    shutil.rmtree(record.working_directory)
    shutil.rmtree(record.job_dir)
    deleted = run_cli(["jobs", "--delete", jobid], cwd=workdir)
    assert deleted.returncode == 0, deleted.stderr
    assert "were removed" not in deleted.stderr
    assert (f"Its files on resource 'local' ({record.working_directory}) were already gone; nothing there was "
            "changed.") in deleted.stderr
    assert (workdir / "good.txt").read_text() == "good\n"


def test_deleting_a_job_whose_files_are_there_says_they_were_removed(workdir: Path) -> None:
    jobid = _kept_job(workdir)
    record = Registry().load(jobid)
    shutil.rmtree(record.job_dir)  # part of them gone: what was there is removed, and said so
    deleted = run_cli(["jobs", "--delete", jobid, "--json"], cwd=workdir)
    assert deleted.returncode == 0, deleted.stderr
    assert '"remote_files": "removed"' in deleted.stdout
    assert not Path(record.working_directory).exists()


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Files made undeletable even by root (``chattr +i``), made deletable again afterwards."""
    made: list[Path] = []
    yield made
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_files_that_cannot_be_removed_are_said_with_why_and_where(workdir: Path, immutable: list[Path]) -> None:
    jobid = _kept_job(workdir)
    record = Registry().load(jobid)
    stuck = Path(record.working_directory) / "mispelt.txt"
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode != 0:
        pytest.skip("this filesystem cannot make a file immutable (chattr +i)")
    immutable.append(stuck)
    deleted = run_cli(["jobs", "--delete", jobid], cwd=workdir)
    assert deleted.returncode == 0, deleted.stderr  # the record is forgotten; what is left is said
    assert "were removed" not in deleted.stderr and "already gone" not in deleted.stderr
    lines = [line for line in deleted.stderr.splitlines() if "could not all be removed (" in line]
    assert len(lines) == 1, deleted.stderr
    assert "Operation not permitted" in lines[0] and f"still there: {record.working_directory}" in lines[0]
    assert stuck.read_text() == "other\n"
    assert not Path(record.job_dir).exists()  # what could be removed was


def test_status_of_a_finished_job_whose_files_were_removed_says_they_are_gone(workdir: Path) -> None:
    jobid = _kept_job(workdir)
    record = Registry().load(jobid)
    before = run_cli(["jobs", "--status", jobid], cwd=workdir)
    assert before.returncode == 0 and "gone" not in before.stderr, before.stderr
    shutil.rmtree(record.working_directory)
    status = run_cli(["jobs", "--status", jobid], cwd=workdir)
    assert status.returncode == 0, status.stderr
    assert "1 succeeded" in status.stdout  # the outcome it had stays
    assert (f"job {jobid}: its working directory {record.working_directory} is gone from resource 'local': "
            "its outcome stands as recorded") in status.stderr
    shutil.rmtree(record.job_dir)
    both = run_cli(["jobs", "--status", jobid], cwd=workdir)
    assert (f"its working directory {record.working_directory} and its job directory {record.job_dir} are gone "
            "from resource 'local'") in both.stderr, both.stderr
    after = Registry().load(jobid)
    assert (after.extra["result"], after.checksums) == (record.extra["result"], record.checksums)


def test_status_of_a_job_freed_by_its_fetch_says_nothing_of_gone_files(workdir: Path) -> None:
    """Its files were removed by ReproMan on purpose: nothing to warn about."""
    made = run_cli(["run", "--follow", "-o", "good.txt", "sh", "-c", "echo good > good.txt"], cwd=workdir)
    assert made.returncode == 0, made.stderr
    jobid = made.stdout.splitlines()[0]
    status = run_cli(["jobs", "--status", jobid], cwd=workdir)
    assert status.returncode == 0 and "gone" not in status.stderr, status.stderr
