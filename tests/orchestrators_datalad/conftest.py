"""A real DataLad dataset on the local shell resource (DataLad and git-annex must be installed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from datalad_testlib import sh

from reproman.testing.services import require_executable, service_missing


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
