"""The framing protocol of the persistent remote shell, as pure functions and a parser.

Many commands share one long-lived ``/bin/sh`` on one SSH channel, so the
bytes of one command's output must be cut out of two continuous streams.
Each command is sent as one line that prints a random *begin* marker on
both streams, runs the command, then prints a random *end* marker on both
(on stdout followed by the exit status)::

    printf %s B; printf %s B >&2; <run>; __rm_rc=$?; printf '%s %d\\n' E "$__rm_rc"; printf '%s\\n' E >&2

:class:`FrameParser` turns the chunks read from the channel back into the
command's exact bytes: everything before the begin marker is stray output of
an earlier command's background job and is dropped; body bytes are handed
on as soon as they cannot be the start of the end marker, so output streams
through with at most ``len(end) - 1`` bytes held back. Nothing here touches
a socket, which is why it is unit-tested without ssh.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable

#: Bytes that ``printf`` passes through literally inside single quotes.
_PRINTF_SAFE = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !\"#&()*+,-./:;<=>?@[]^_`{|}~$"
)
#: Digits of an exit status line longer than this mean the stream is out of step.
_MAX_STATUS_LINE = 16

STDOUT = 1
STDERR = 2


class FramingError(Exception):
    """The shell's output does not follow the protocol (it is out of step); the shell must be replaced."""


def new_markers() -> tuple[bytes, bytes]:
    """A fresh, unguessable (begin, end) pair for one command."""
    tag = os.urandom(12).hex()
    return f"__RM_B_{tag}".encode(), f"__RM_E_{tag}".encode()


def printf_literal(data: bytes) -> str:
    """A single-quoted ``printf`` format that prints exactly ``data`` (NULs included)."""
    return "'" + "".join(chr(b) if b in _PRINTF_SAFE else f"\\{b:03o}" for b in data) + "'"


def command_line(command: str, begin: bytes, end: bytes, *, stdin: str = "/dev/null",
                 stdin_literal: bytes | None = None, cleanup: str = "") -> bytes:
    """The one line sent to the persistent shell to run ``command`` framed by the markers.

    The command runs in its own ``/bin/sh -c`` child, so ``exit``, ``cd`` or
    variables in it never reach the long-lived shell. Its standard input is
    the file ``stdin``, or the bytes ``stdin_literal`` piped from ``printf``.
    ``cleanup`` is shell code run after it, whatever its status.
    """
    b, e = begin.decode(), end.decode()
    quoted = shlex.quote(command)
    if stdin_literal is not None:
        run = f"printf {printf_literal(stdin_literal)} | /bin/sh -c {quoted}"
    else:
        run = f"/bin/sh -c {quoted} <{shlex.quote(stdin)}"
    line = (
        f"printf %s {b}; printf %s {b} >&2; {run}; __rm_rc=$?; {cleanup}"
        f"printf '%s %d\\n' {e} \"$__rm_rc\"; printf '%s\\n' {e} >&2\n"
    )
    return line.encode("utf-8", "surrogateescape")


def _held_back(data: bytes | bytearray, marker: bytes) -> int:
    """How many trailing bytes of ``data`` could be the start of ``marker`` (and so must wait)."""
    for size in range(min(len(data), len(marker) - 1), 0, -1):
        if data.endswith(marker[:size]):
            return size
    return 0


class _Cutter:
    """One stream: drop what precedes ``begin``, pass the body, stop at ``end``."""

    def __init__(self, begin: bytes, end: bytes) -> None:
        self.begin = begin
        self.end = end
        self.started = False
        self.finished = False
        self.pending = bytearray()  # unsent bytes: a possible marker prefix, or what follows the end
        self.after = bytearray()  # bytes after the end marker (the status line on stdout)

    def feed(self, data: bytes) -> bytes:
        """Add bytes read from the stream; return the body bytes that are certain."""
        if self.finished:
            self.after += data
            return b""
        self.pending += data
        if not self.started:
            index = self.pending.find(self.begin)
            if index < 0:
                keep = _held_back(self.pending, self.begin)
                del self.pending[: len(self.pending) - keep]
                return b""
            del self.pending[: index + len(self.begin)]
            self.started = True
        index = self.pending.find(self.end)
        if index >= 0:
            body = bytes(self.pending[:index])
            self.after += self.pending[index + len(self.end):]
            self.pending.clear()
            self.finished = True
            return body
        keep = _held_back(self.pending, self.end)
        cut = len(self.pending) - keep
        body = bytes(self.pending[:cut])
        del self.pending[:cut]
        return body


class FrameParser:
    """Cuts one command's stdout, stderr and exit status out of the shell's two streams.

    Feed it what is read (:meth:`feed`); it calls ``emit(stream, chunk)``
    with the command's own bytes as they become certain. :attr:`done` turns
    true once both end markers and the exit status have arrived;
    :attr:`returncode` is then the command's exit status.
    """

    def __init__(self, begin: bytes, end: bytes, emit: Callable[[int, bytes], None]) -> None:
        self._streams = {STDOUT: _Cutter(begin, end), STDERR: _Cutter(begin, end)}
        self._emit = emit
        self.returncode: int | None = None

    @property
    def done(self) -> bool:
        return self.returncode is not None and self._streams[STDERR].finished

    def feed(self, stream: int, data: bytes) -> None:
        cutter = self._streams[stream]
        body = cutter.feed(data)
        if body:
            self._emit(stream, body)
        if stream == STDOUT and cutter.finished and self.returncode is None:
            self._read_status(cutter.after)

    def _read_status(self, after: bytearray) -> None:
        newline = after.find(b"\n")
        if newline < 0:
            if len(after) > _MAX_STATUS_LINE:
                raise FramingError(f"malformed exit status after the end marker: {bytes(after[:32])!r}")
            return
        text = after[:newline].strip()
        if not text.isdigit():
            raise FramingError(f"malformed exit status after the end marker: {bytes(after[:newline])!r}")
        self.returncode = int(text)
