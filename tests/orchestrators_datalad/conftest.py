"""A real DataLad dataset on the local shell resource (DataLad and git-annex must be installed)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from datalad_testlib import run_job, sh

from reproman.testing.services import require_executable, service_missing

#: Who the tests' commits are by (the real HOME's git identity is not read: HOME is the test's own).
_GITCONFIG = "[user]\n\tname = ReproMan Tests\n\temail = tests@reproman.invalid\n"


@pytest.fixture(scope="session", autouse=True)
def isolated_session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throwaway HOME, with a git identity, from the first fixture on (session fixtures make datasets)."""
    home = tmp_path_factory.mktemp("session-home")
    (home / ".gitconfig").write_text(_GITCONFIG)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.delenv("XDG_CACHE_HOME", raising=False)
        yield home


@pytest.fixture(autouse=True)
def isolated_home(isolated_user: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's HOME is the throwaway user's, with a git identity for the commits DataLad makes.

    A job's default root is ``~/.reproman/run-root`` and DataLad and
    git-annex keep caches and config under HOME: without this the tests
    (and every CLI they start) wrote into the real HOME of whoever ran them.
    """
    (isolated_user / ".gitconfig").write_text(_GITCONFIG)
    monkeypatch.setenv("HOME", str(isolated_user))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return isolated_user


@pytest.fixture
def datalad_tools(isolated_user: Path) -> None:
    """DataLad and git-annex installed, and a git identity for the commits the tests make."""
    require_executable("datalad", "DataLad orchestrators: pip install datalad")
    require_executable("git-annex", "DataLad orchestrators: apt-get install git-annex")
    if subprocess.run(["git", "annex", "version"], capture_output=True).returncode != 0:
        service_missing("'git annex' does not run")
    config = isolated_user / ".config" / "git"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config").write_text(
        "[user]\n\tname = ReproMan Tests\n\temail = tests@reproman.invalid\n[init]\n\tdefaultBranch = main\n"
    )


@pytest.fixture
def dataset(tmp_path: Path, datalad_tools: None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dataset with two annexed CSV files, made the current directory."""
    ds = tmp_path / "ds"
    sh(tmp_path, "datalad", "create", str(ds))
    (ds / "data").mkdir()
    (ds / "data" / "f0.csv").write_text("a,b\n1,2\n")
    (ds / "data" / "f1.csv").write_text("a,b\n3,4\n5,6\n")
    sh(ds, "datalad", "save", "-m", "add data")
    monkeypatch.chdir(ds)
    return ds


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The resource's root directory for these jobs (default clones, job directories)."""
    return tmp_path / "resource-root"


_IDENTITY = {
    "GIT_AUTHOR_NAME": "ReproMan Tests", "GIT_AUTHOR_EMAIL": "tests@reproman.invalid",
    "GIT_COMMITTER_NAME": "ReproMan Tests", "GIT_COMMITTER_EMAIL": "tests@reproman.invalid",
}


@pytest.fixture(scope="session")
def yoda_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The YODA hierarchy, made once per session (tests work on copies)."""
    from reproman_orchestrators_datalad.testing import make_yoda

    require_executable("datalad", "DataLad orchestrators: pip install datalad")
    require_executable("git-annex", "DataLad orchestrators: apt-get install git-annex")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _IDENTITY.items():
            mp.setenv(key, value)
        mp.setenv("GIT_CONFIG_GLOBAL", os.devnull)
        return make_yoda(tmp_path_factory.mktemp("yoda") / "study")


@pytest.fixture
def yoda_ds(yoda_template: Path, tmp_path: Path, datalad_tools: None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the YODA hierarchy, made the current directory."""
    from reproman_orchestrators_datalad.testing import copy_dataset

    ds = copy_dataset(yoda_template, tmp_path / "study")
    monkeypatch.chdir(ds)
    return ds


@pytest.fixture
def runner(root: Path) -> Callable[[str], Callable[..., Any]]:
    """``runner(orchestrator)`` -> a function running followed jobs on the local shell resource."""

    def make(orchestrator: str) -> Callable[..., Any]:
        def run(command: str, **kwargs: Any) -> Any:
            return run_job(root, orchestrator, command, **kwargs)

        return run

    return make
