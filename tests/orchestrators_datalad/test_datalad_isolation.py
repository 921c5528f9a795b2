"""No DataLad test writes into the HOME of whoever runs the suite, and their commits have an identity of their own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

#: Read when the module is collected, before any fixture changes HOME.
STARTED_HOME = os.path.expanduser("~")


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


@pytest.fixture(scope="module")
def home_seen_by_a_module_fixture() -> str:
    return os.path.expanduser("~")


def test_tests_and_their_fixtures_have_a_throwaway_home_with_a_git_identity(home_seen_by_a_module_fixture: str,
                                                                             tmp_path: Path) -> None:
    for home in (os.environ["HOME"], home_seen_by_a_module_fixture):
        assert not _within(home, STARTED_HOME), home
    assert "XDG_CACHE_HOME" not in os.environ or not _within(os.environ["XDG_CACHE_HOME"], STARTED_HOME)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-q", "-m", "a commit"], check=True)
    author = subprocess.run(["git", "-C", str(tmp_path), "log", "-1", "--format=%an <%ae>"], capture_output=True,
                            text=True, check=True).stdout.strip()
    assert author == "ReproMan Tests <tests@reproman.invalid>"
