"""A session that runs ``/bin/sh`` inside one directory of this machine.

It implements the four primitives of :class:`reproman.resources.session.Session`
and nothing else: file queries, tree transfers, environment handling and
stopping an interrupted command are derived from them by the base class,
and ``FullSessionContract`` checks the result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import IO

from reproman.plugins import CommandResult, OutputCallback, Session, SessionError

_CHUNK = 1 << 16


class LocalDirSession(Session):
    """Commands run in ``root``; relative remote paths resolve against it."""

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = root

    def _path(self, remote: str) -> str:
        return os.path.join(self.root, os.path.expanduser(remote))

    def _execute(
        self, command: str, stdin: bytes | None = None, on_output: OutputCallback | None = None
    ) -> CommandResult:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=self.root,
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
        except BaseException:
            # Ctrl-C: drop our shell and let the interrupt propagate; the base
            # class then stops the command's own process group.
            proc.kill()
            proc.wait()
            raise
        return CommandResult(command=command, returncode=proc.returncode, stdout_bytes=out, stderr_bytes=err)

    def _put_file(self, local: Path, remote: str) -> None:
        shutil.copy2(local, self._path(remote))

    def _get_file(self, remote: str, local: Path) -> None:
        try:
            shutil.copy2(self._path(remote), local)
        except FileNotFoundError:
            raise SessionError(f"cannot get {remote}: no such file or directory") from None

    def _interactive(self, command: str | None = None) -> int:
        shell = os.environ.get("SHELL", "/bin/sh")
        return subprocess.call([shell] if command is None else [shell, "-c", command], cwd=self.root,
                               env={**os.environ, **self._env})


def _stream(proc: subprocess.Popen[bytes], stdin: bytes | None, on_output: OutputCallback) -> None:
    """Hand each chunk of both pipes to ``on_output`` as it arrives, feeding ``stdin`` meanwhile."""
    lock = threading.Lock()

    def pump(pipe: IO[bytes], fd: int) -> None:
        for chunk in iter(lambda: pipe.read1(_CHUNK), b""):  # type: ignore[attr-defined]
            with lock:  # one chunk at a time, never interleaved mid-call
                on_output(fd, chunk)

    readers = [threading.Thread(target=pump, args=(pipe, fd), daemon=True)
               for pipe, fd in ((proc.stdout, 1), (proc.stderr, 2))]
    for reader in readers:
        reader.start()
    if proc.stdin is not None:
        try:
            proc.stdin.write(stdin or b"")
        except BrokenPipeError:
            pass
        proc.stdin.close()
    for reader in readers:
        while reader.is_alive():
            reader.join(0.1)  # a plain join() would not let Ctrl-C in
    proc.wait()
