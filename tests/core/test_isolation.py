"""No core test writes into the HOME of whoever runs the suite: their ``~/.reproman/run-root``, their ``~/.cache``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reproman import api
from reproman.jobs.commands import RunResult
from reproman.testing.cli import run_cli

#: Read when the module is collected, before any fixture changes HOME.
STARTED_HOME = os.path.expanduser("~")


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def test_a_job_run_from_a_bare_tmp_path_lands_in_the_tests_own_home(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that ran jobs from ``tmp_path`` without ``workdir`` filled the real ``~/.reproman/run-root``."""
    monkeypatch.chdir(tmp_path)
    result = api.run(command="echo x > x.txt", outputs=["x.txt"], follow=True)
    assert isinstance(result, RunResult)
    job = result.job
    assert (tmp_path / "x.txt").read_text() == "x\n"
    assert not _within(job.root_directory, os.path.join(STARTED_HOME, ".reproman")), job.root_directory
    assert job.root_directory == os.path.join(os.environ["HOME"], ".reproman", "run-root")
    seen = run_cli(["execute", "sh", "-c", 'printf %s "$HOME"'], cwd=tmp_path)
    assert seen.returncode == 0 and seen.stdout == os.environ["HOME"] != STARTED_HOME, seen.stdout + seen.stderr
    assert "XDG_CACHE_HOME" not in os.environ or not _within(os.environ["XDG_CACHE_HOME"], STARTED_HOME)


@pytest.fixture(scope="module")
def home_seen_by_a_module_fixture() -> str:
    """What a module-scoped fixture (set up before any test's own fixtures) finds as HOME."""
    return os.path.expanduser("~")


def test_module_scoped_fixtures_already_have_a_throwaway_home(home_seen_by_a_module_fixture: str) -> None:
    """A module fixture built a wheel with pip before the test's HOME was set: pip cached into the real HOME."""
    assert home_seen_by_a_module_fixture != STARTED_HOME
    assert not _within(home_seen_by_a_module_fixture, STARTED_HOME)
