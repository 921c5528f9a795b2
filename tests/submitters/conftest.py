"""Fixtures for the submitters' tests: sessions, fake schedulers on PATH (from reproman.testing), a real Slurm."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from submitters_helpers import CountingSession, sge_available, slurm_available

from reproman.testing.fake_schedulers import fake_scheduler  # noqa: F401 - a fixture
from reproman.testing.services import service_missing
from reproman_submitters.sge import SGESubmitter


@pytest.fixture
def session() -> CountingSession:
    return CountingSession()


@pytest.fixture
def jobroot(tmp_path: Path) -> Path:
    """A root directory with a space in its name: every path must survive quoting."""
    root = tmp_path / "run root"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def _slurm_up() -> bool:
    return slurm_available()


@pytest.fixture
def slurm(_slurm_up: bool) -> None:
    """A running Slurm (tools/ci/slurm.sh); skipped locally, a failure under CI."""
    if not _slurm_up:
        service_missing("Slurm is not running (sinfo does not answer); run tools/ci/slurm.sh as root")


@pytest.fixture(scope="session")
def _sge_up() -> bool:
    return sge_available()


@pytest.fixture
def sge(_sge_up: bool) -> None:
    """A running Grid Engine cell (tools/ci/sge.sh); skipped locally, a failure under CI."""
    if not _sge_up:
        service_missing("Grid Engine is not running (qstat -f shows no all.q); run tools/ci/sge.sh as root")


@pytest.fixture
def sge_sub(session: CountingSession, sge: None) -> Iterator[SGESubmitter]:
    """A Grid Engine submitter; whatever it submitted is deleted after the test, passed or not,
    so a failing test leaves no job holding the cell's two slots."""
    submitter = SGESubmitter(session)
    submitted: list[str] = []
    plain_submit = submitter.submit

    def tracked(job: Any, script: str) -> str:
        sid = plain_submit(job, script)
        submitted.extend(sid.split(","))
        return sid

    submitter.submit = tracked  # type: ignore[method-assign]
    yield submitter
    if submitted:
        subprocess.run(["qdel", *submitted], capture_output=True)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A user's project directory (the current directory) with its own HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work


@pytest.fixture
def no_accounting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``sacct`` first on PATH that answers as Slurm does where accounting is off.

    Fault injection: the CI cluster has accounting, and these tests need a
    cluster without it (the case of many small sites).
    """
    bindir = tmp_path / "no-accounting-bin"
    bindir.mkdir()
    fake = bindir / "sacct"
    fake.write_text("#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
