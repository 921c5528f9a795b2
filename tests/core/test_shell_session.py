"""The session contract suite, run on the built-in shell session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reproman.resources.shell import ShellSession
from reproman.testing.session_contract import SessionContract


class TestShellSession(SessionContract):
    @pytest.fixture
    def session(self) -> Iterator[ShellSession]:
        with ShellSession() as session:
            yield session

    @pytest.fixture
    def remote_tmp(self, tmp_path: Path) -> str:
        path = tmp_path / "remote"
        path.mkdir()
        return str(path)


class TestShellSessionGenericPaths(SessionContract):
    """The base class's generic implementations, exercised through local processes.

    Backends that only implement the primitives rely on exactly this code.
    """

    @pytest.fixture
    def session(self) -> Iterator[ShellSession]:
        from reproman.resources.session import Session

        class Generic(ShellSession):
            pass

        for name in ("exists", "islink", "isdir", "mkdir", "read", "put_text", "home", "realpath", "put_many", "get_many"):
            setattr(Generic, name, getattr(Session, name))
        with Generic() as session:
            yield session

    @pytest.fixture
    def remote_tmp(self, tmp_path: Path) -> str:
        path = tmp_path / "remote"
        path.mkdir()
        return str(path)
