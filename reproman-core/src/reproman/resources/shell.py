"""The built-in ``shell`` resource: this machine, through local processes.

It is also the default resource when a command names none, so ``run``,
``execute`` and ``retrace`` work right after ``pip install reproman-core``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reproman.errors import SessionError
from reproman.resources.base import ONLINE, Resource
from reproman.resources.manage import LOCAL_RESOURCE_NAME  # noqa: F401 - re-exported
from reproman.resources.session import CommandResult, Session

_SHELL = "/bin/sh"


class ShellSession(Session):
    """Runs commands with ``/bin/sh`` and moves files with local copies."""

    def _execute(self, command: str, stdin: bytes | None = None) -> CommandResult:
        proc = subprocess.run(
            [_SHELL, "-c", command],
            input=stdin if stdin is not None else b"",
            capture_output=True,
        )
        return CommandResult(
            command=command,
            returncode=proc.returncode,
            stdout=proc.stdout.decode("utf-8", "replace"),
            stderr=proc.stderr.decode("utf-8", "replace"),
        )

    def _put_file(self, local: Path, remote: str) -> None:
        shutil.copy2(local, _local(remote))

    def _get_file(self, remote: str, local: Path) -> None:
        try:
            shutil.copy2(_local(remote), local)
        except FileNotFoundError as exc:
            raise SessionError(f"cannot get {remote}: no such file or directory") from exc

    def _interactive(self, command: str | None = None) -> int:
        shell = os.environ.get("SHELL", _SHELL)
        argv = [shell] if command is None else [shell, "-c", command]
        return subprocess.call(argv, env={**os.environ, **self._env})

    # Local fast paths: the same semantics as the generic versions, no fork.
    def exists(self, path: str) -> bool:
        return os.path.lexists(_local(path))

    def islink(self, path: str) -> bool:
        return os.path.islink(_local(path))

    def isdir(self, path: str) -> bool:
        return os.path.isdir(_local(path))

    def mkdir(self, path: str, parents: bool = False) -> None:
        try:
            Path(_local(path)).mkdir(parents=parents, exist_ok=parents)
        except OSError as exc:
            raise SessionError(f"cannot create directory {path}: {exc.strerror}") from exc

    def read(self, path: str) -> str:
        try:
            return Path(_local(path)).read_text()
        except OSError as exc:
            raise SessionError(f"cannot read {path}: {exc.strerror}") from exc

    def put_text(self, text: str, path: str, mode: int | None = None) -> None:
        target = Path(_local(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        if mode is not None:
            target.chmod(mode)

    def home(self) -> str:
        return str(Path.home())

    def realpath(self, path: str) -> str:
        return os.path.abspath(path)

    def put_many(self, items: Iterable[tuple[str | os.PathLike[str], str]]) -> None:
        for src, dest in items:
            _copy_path(Path(src), Path(_local(dest)))

    def get_many(self, items: Iterable[tuple[str, str | os.PathLike[str]]]) -> None:
        for src, dest in items:
            source = Path(_local(src))
            if not source.exists():
                raise SessionError(f"cannot get {src}: no such file or directory")
            _copy_path(source, Path(dest))


def _local(path: str) -> str:
    return os.path.expanduser(path) if path.startswith("~") else path


def _copy_path(src: Path, dest: Path) -> None:
    if not src.exists() and not src.is_symlink():
        raise SessionError(f"cannot copy {src}: no such file or directory")
    if src.resolve() == dest.resolve() if dest.exists() else False:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir() and not src.is_symlink():
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(src, dest, symlinks=True)
    else:
        shutil.copy2(src, dest, follow_symlinks=False)


class ShellResource(Resource):
    """This machine. There is nothing to create, start or stop."""

    type = "shell"

    def create(self) -> dict[str, Any]:
        return {"id": self.id or f"{uuid.uuid4()}", "status": ONLINE}

    def connect(self) -> None:
        self.status = ONLINE

    def delete(self) -> None:
        """Nothing to destroy: forgetting the inventory entry is all."""

    def get_session(self, pty: bool = False, shared: bool | None = None) -> Session:
        return ShellSession()
