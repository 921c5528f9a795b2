"""The built-in ``shell`` resource: this machine, through local processes.

It is also the default resource when a command names none, so ``run``,
``execute`` and ``retrace`` work right after ``pip install reproman-core``.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reproman.errors import OutputConflictError, SessionError
from reproman.resources.base import ONLINE, Resource
from reproman.resources.landing import Landing, land, staging_dir
from reproman.resources.manage import LOCAL_RESOURCE_NAME  # noqa: F401 - re-exported
from reproman.resources.session import CommandResult, OutputCallback, Session, stdin_watch_wrapper

_SHELL = "/bin/sh"
_CHUNK = 1 << 16


#: How often a wait for a file looks (a stat each time: a 1,000-subjob batch
#: is seen finished within this, not within a poll interval).
WATCH_STEP = 0.02


class ShellSession(Session):
    """Runs commands with ``/bin/sh`` and moves files with local copies."""

    def __init__(self) -> None:
        super().__init__()
        #: Interrupted commands whose watch pipe stays open until their group is stopped.
        self._held: dict[str, subprocess.Popen[bytes]] = {}

    def _execute(
        self, command: str, stdin: bytes | None = None, on_output: OutputCallback | None = None
    ) -> CommandResult:
        proc = subprocess.Popen(
            [_SHELL, "-c", command],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            if on_output is None:
                out, err = proc.communicate(stdin or None)
            else:
                _stream(proc, stdin, on_output)
                out = err = b""
                proc.wait()
        except BaseException:
            # Interrupted: the shell goes; execute_interruptible stops the command's own group.
            proc.kill()
            proc.wait()
            raise
        return CommandResult(command=command, returncode=proc.returncode, stdout_bytes=out, stderr_bytes=err)

    def _execute_grouped(self, line: str, pgfile: str, stdin: bytes | None,
                         on_output: OutputCallback | None) -> CommandResult:
        """A user's command under a watch (:func:`stdin_watch_wrapper`): if this process is killed, it stops.

        The pipe to the command's shell is held open, unwritten, until the
        command ends; the kernel closes it when this process dies, however
        it dies. Interrupted (Ctrl-C), the pipe stays open until
        :meth:`stop_interrupted` has stopped the group with the user's signal.
        """
        if stdin is not None:  # the pipe carries the command's input: no watch
            return super()._execute_grouped(line, pgfile, stdin, on_output)
        proc = subprocess.Popen([_SHELL, "-c", stdin_watch_wrapper(line, pgfile)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out: list[bytes] = []
        err: list[bytes] = []
        collect = on_output or (lambda stream, data: (out if stream == 1 else err).append(data))
        try:
            _stream(proc, None, collect, feed=False)
            proc.wait()
        except (KeyboardInterrupt, BrokenPipeError):
            self._held[pgfile] = proc  # released by stop_interrupted, once the group is stopped
            raise
        except BaseException:
            _release(proc)
            raise
        _release(proc)
        return CommandResult(command=line, returncode=proc.returncode, stdout_bytes=b"".join(out),
                             stderr_bytes=b"".join(err))

    def stop_interrupted(self, pgfile: str, signal_name: str = "INT") -> str | None:
        try:
            return super().stop_interrupted(pgfile, signal_name)
        finally:
            held = self._held.pop(pgfile, None)
            if held is not None:
                _release(held)

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
    watches_paths = True

    def wait_for_path(self, path: str, timeout: float) -> bool:
        import time

        local = _local(path)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if os.path.lexists(local):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(WATCH_STEP, left))

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
            return Path(_local(path)).read_bytes().decode("utf-8", "surrogateescape")
        except OSError as exc:
            raise SessionError(f"cannot read {path}: {exc.strerror}") from exc

    def put_text(self, text: str, path: str, mode: int | None = None) -> None:
        target = Path(_local(path))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=target.parent, prefix=f".{target.name}.", delete=False) as tmp:
                tmp.write(text)
            if mode is not None:
                os.chmod(tmp.name, mode)
            os.replace(tmp.name, target)
        except OSError as exc:
            raise SessionError(f"cannot write {path}: {exc.strerror or exc}") from exc

    def home(self) -> str:
        return str(Path.home())

    def realpath(self, path: str) -> str:
        return os.path.abspath(_local(path))

    def _send(self, pairs: Sequence[tuple[Path, str]]) -> None:
        """Local "remote" paths: copy next to each destination, then land with the usual merge rules."""
        dests = [Path(self.realpath(dest)) for _src, dest in pairs]
        stage = staging_dir(dests)
        try:
            staged: list[tuple[Path, Path]] = []
            for i, ((src, _dest), dest) in enumerate(zip(pairs, dests)):
                if os.path.lexists(dest) and os.path.samefile(src, dest):
                    continue  # putting a path onto itself
                _copy_path(src, stage / str(i))
                staged.append((stage / str(i), dest))
            try:
                land(staged)
            except OutputConflictError as exc:
                # The landing rules speak of fetching; here the "local" side is the resource's.
                raise OutputConflictError(exc.args[0] if exc.args else "", hint=(
                    "Nothing was changed. Move that path on the resource away (or put to another path) and "
                    "try again.")) from None
        except shutil.Error as exc:
            raise SessionError(_tree_copy_failure(exc)) from None
        except OSError as exc:
            name = exc.filename or (str(pairs[0][0]) if pairs else "")
            raise SessionError(f"cannot put {name}: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def _fetch_under(self, staged: Sequence[tuple[str, Path]], landing: Landing | None) -> None:
        """Copies, but a source the fetch frees afterwards is hard-linked (:attr:`Landing.linkable`).

        Only those: a link to a file that stays on the "resource" would make
        the user's result and that file one, so an edit of the local copy, or
        a later job writing in place in a working directory the user named,
        would change both.
        """
        for src, path in staged:
            source = Path(self.realpath(src))
            if not os.path.lexists(source):
                raise SessionError(f"cannot get {src}: no such file or directory")
            _copy_path(source, path, link=landing is not None and landing.may_link(src))

    def _fetch(self, staged: Sequence[tuple[str, Path]]) -> None:
        self._fetch_under(staged, None)


def _release(proc: subprocess.Popen[bytes]) -> None:
    """Close the watch pipe and reap the command's shell (which exits at once if the group is gone)."""
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stream(proc: subprocess.Popen[bytes], stdin: bytes | None, on_output: OutputCallback, *,
            feed: bool = True) -> None:
    """Pass both output pipes to ``on_output`` as data arrives, feeding ``stdin`` meanwhile.

    Without ``feed`` the process's input pipe is left alone (a watch channel, held open).
    """
    selector = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    selector.register(proc.stdout, selectors.EVENT_READ, 1)
    selector.register(proc.stderr, selectors.EVENT_READ, 2)
    pending = memoryview(stdin or b"")
    if proc.stdin is not None and feed:
        os.set_blocking(proc.stdin.fileno(), False)
        selector.register(proc.stdin, selectors.EVENT_WRITE, 0)
    try:
        while selector.get_map():
            for key, _events in selector.select():
                if key.data == 0:
                    try:
                        written = os.write(key.fd, pending[:_CHUNK])
                    except BrokenPipeError:
                        written = len(pending)
                    pending = pending[written:]
                    if not pending:
                        selector.unregister(key.fileobj)
                        key.fileobj.close()  # type: ignore[union-attr]
                    continue
                data = os.read(key.fd, _CHUNK)
                if data:
                    on_output(key.data, data)
                else:
                    selector.unregister(key.fileobj)
    finally:
        selector.close()


def _local(path: str) -> str:
    return os.path.expanduser(path) if path.startswith("~") else path


def _tree_copy_failure(exc: shutil.Error) -> str:
    """One line for ``shutil.copytree``'s list of failures: the first file and its cause (e.g. a full disk)."""
    failures = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    if not failures or not isinstance(failures[0], tuple) or len(failures[0]) != 3:
        return f"cannot put: {exc}"
    src, _dest, why = failures[0]
    cause = re.sub(r"^\[Errno \d+\] ", "", str(why)).split(": '", 1)[0]
    more = f" (and {len(failures) - 1} more file{'s' if len(failures) > 2 else ''})" if len(failures) > 1 else ""
    return f"cannot put {src}: {cause}{more}"


def _copy_path(src: Path, dest: Path, link: bool = False) -> None:
    """Copy a file, link or tree to ``dest`` (which does not exist), symlinks kept as symlinks.

    With ``link``, regular files are hard-linked when source and destination
    share a file system, which costs a directory entry instead of a copy.
    """
    if not os.path.lexists(src):
        raise SessionError(f"cannot copy {src}: no such file or directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    copy = _link_or_copy if link else shutil.copy2
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dest, symlinks=True, copy_function=copy)
    elif src.is_symlink():
        shutil.copy2(src, dest, follow_symlinks=False)
    else:
        copy(src, dest)


def _link_or_copy(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> object:
    try:
        os.link(src, dest, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dest, follow_symlinks=False)
    return dest


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
