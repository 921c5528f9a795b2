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


def test_wait_for_path_ends_when_the_file_appears(tmp_path: Path) -> None:
    """Following a local job wakes on the completion marker instead of sleeping a whole interval."""
    import threading
    import time

    session = ShellSession()
    marker = tmp_path / "completed"
    assert session.wait_for_path(str(marker), 0.05) is False
    timer = threading.Timer(0.2, marker.touch)
    timer.start()
    started = time.monotonic()
    try:
        assert session.wait_for_path(str(marker), 30.0) is True
    finally:
        timer.cancel()
    assert time.monotonic() - started < 15.0  # woke on the file, not at the 30 s timeout
    assert session.wait_for_path(str(marker), 30.0) is True  # already there: at once


def test_a_put_onto_a_conflicting_path_speaks_of_the_resource(tmp_path: Path) -> None:
    """The landing rules' advice is about fetching; a put that conflicts says where to look instead."""
    from reproman.errors import OutputConflictError

    local = tmp_path / "inputs"
    (local / "data").mkdir(parents=True)
    (local / "data" / "x.txt").write_text("x\n")
    remote = tmp_path / "remote" / "inputs"
    remote.mkdir(parents=True)
    (remote / "data").write_text("a file where the input has a directory\n")
    with pytest.raises(OutputConflictError) as info:
        ShellSession().put_many([(local, str(remote))])
    message = str(info.value)
    assert "on the resource" in message and "fetch again" not in message and "\n" not in message
    assert (remote / "data").read_text() == "a file where the input has a directory\n"  # nothing changed
