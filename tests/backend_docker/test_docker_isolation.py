"""No docker backend test writes into the HOME of whoever runs the suite (their ``~/.reproman/run-root``)."""

from __future__ import annotations

import os

import pytest

#: Read when the module is collected, before any fixture changes HOME.
STARTED_HOME = os.path.expanduser("~")


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


@pytest.fixture(scope="module")
def home_seen_by_a_module_fixture() -> str:
    return os.path.expanduser("~")


def test_tests_and_their_fixtures_have_a_throwaway_home(home_seen_by_a_module_fixture: str) -> None:
    for home in (os.environ["HOME"], home_seen_by_a_module_fixture):
        assert not _within(home, STARTED_HOME), home
    assert "XDG_CACHE_HOME" not in os.environ or not _within(os.environ["XDG_CACHE_HOME"], STARTED_HOME)
    from reproman.testing.cli import run_cli

    # Every CLI a test starts inherits it: a job's default root ~/.reproman/run-root is the test's.
    seen = run_cli(["execute", "sh", "-c", 'printf %s "$HOME"'])
    assert seen.returncode == 0 and seen.stdout == os.environ["HOME"], seen.stdout + seen.stderr
