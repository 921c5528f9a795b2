"""Fixtures for core's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throwaway HOME from the first fixture on: module-scoped fixtures run before any test's own HOME.

    (One builds a wheel with pip, whose cache went to the real ``~/.cache/pip``.)
    """
    home = tmp_path_factory.mktemp("session-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.delenv("XDG_CACHE_HOME", raising=False)
        yield home


@pytest.fixture(autouse=True)
def isolated_home(isolated_user: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's HOME (and ``~/.cache``) is the throwaway user's, whether or not it asks for ``workdir``.

    A job's default root is ``~/.reproman/run-root`` and the node tool and
    apt caches live under ``~/.cache``: tests that ran jobs from a bare
    ``tmp_path`` (and every CLI they started, which inherits HOME) wrote
    there, into the real HOME of whoever ran the suite.
    """
    monkeypatch.setenv("HOME", str(isolated_user))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return isolated_user


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A user's working directory with its own HOME: jobs' remote roots land in the test's tmp."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work
