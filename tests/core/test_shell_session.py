"""The session contract suite, run on the built-in shell session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reproman.resources.shell import ShellSession
from reproman.testing.session_contract import FullSessionContract


class TestShellSession(FullSessionContract):
    listed_paths = 3_000  # local copies: no command line to overflow, only file creation to wait for

    @pytest.fixture
    def session(self) -> Iterator[ShellSession]:
        with ShellSession() as session:
            yield session

    @pytest.fixture
    def remote_tmp(self, tmp_path: Path) -> str:
        path = tmp_path / "remote"
        path.mkdir()
        return str(path)


class TestShellSessionGenericPaths(FullSessionContract):
    """The base class's generic implementations, exercised through local processes.

    Backends that only implement the primitives rely on exactly this code.
    """

    listed_paths = 3_000  # already 210 KiB of names: past the 128 KiB one argument may hold

    @pytest.fixture
    def session(self) -> Iterator[ShellSession]:
        from reproman.resources.session import Session

        class Generic(ShellSession):
            pass

        for name in ("exists", "islink", "isdir", "mkdir", "read", "put_text", "home", "realpath", "_send", "_fetch"):
            setattr(Generic, name, getattr(Session, name))
        with Generic() as session:
            yield session

    @pytest.fixture
    def remote_tmp(self, tmp_path: Path) -> str:
        path = tmp_path / "remote"
        path.mkdir()
        return str(path)
