"""Forwarding the user's terminal to an exec with a pty (``reproman login``).

The Engine gives a hijacked socket carrying raw pty bytes in both
directions. We put the local terminal in raw mode (so Ctrl-C, arrows and
editors reach the container's shell, not us), copy bytes both ways with
``select`` until the container side closes, keep the remote window size in
step (``SIGWINCH``), and finally ask the Engine for the exit status.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

_READ_SIZE = 65536


def run_interactive(api: Any, container_id: str, line: str, shell: str = "/bin/sh") -> int:
    """Run shell code ``line`` in the container attached to our stdin/stdout; return its exit status.

    With a terminal on stdin the exec gets a pty and the terminal goes raw;
    without one (a pipe, a test) bytes are still forwarded, just without a
    pty, so scripted use does not hang or garble.
    """
    stdin_fd = sys.stdin.fileno()
    stdout_fd = sys.stdout.fileno()
    tty = os.isatty(stdin_fd)
    env = [f"TERM={os.environ.get('TERM', 'xterm')}"] if tty else []
    if tty:
        # The Engine (API < 1.42) cannot size the pty before the process starts, and a resize
        # right after start races with the first command; setting it from inside cannot race.
        size = shutil.get_terminal_size()
        line = f"stty rows {size.lines} cols {size.columns} 2>/dev/null; {line}"
    exec_id = api.exec_create(
        container_id, [shell, "-c", line], stdin=True, stdout=True, stderr=True, tty=tty, environment=env or None
    )["Id"]
    hijacked = api.exec_start(exec_id, socket=True, tty=tty)
    sock: socket.socket = getattr(hijacked, "_sock", hijacked)
    sys.stdout.flush()
    try:
        with _raw_terminal(stdin_fd if tty else None):
            if tty:
                _resize(api, exec_id)
            previous = signal.signal(signal.SIGWINCH, lambda *_: _resize(api, exec_id)) if tty else None
            try:
                _pump(sock, stdin_fd, stdout_fd, demux=not tty)
            finally:
                if previous is not None:
                    signal.signal(signal.SIGWINCH, previous)
    finally:
        hijacked.close()
    for _ in range(500):
        info = api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        time.sleep(0.01)
    return 255


def _pump(sock: socket.socket, stdin_fd: int, stdout_fd: int, *, demux: bool) -> None:
    """Copy stdin to the socket and the socket to stdout until the socket closes.

    Without a pty the Engine multiplexes stdout and stderr in 8-byte-header
    frames; those are unpacked to the matching local descriptors.
    """
    stdin_open = True
    pending = b""
    while True:
        watch: list[Any] = [sock] + ([stdin_fd] if stdin_open else [])
        try:
            ready, _, _ = select.select(watch, [], [])
        except InterruptedError:  # SIGWINCH
            continue
        if sock in ready:
            data = sock.recv(_READ_SIZE)
            if not data:
                return
            if demux:
                pending += data
                while len(pending) >= 8:
                    size = int.from_bytes(pending[4:8], "big")
                    if len(pending) < 8 + size:
                        break
                    fd = 2 if pending[0] == 2 else stdout_fd
                    _write_all(fd, pending[8 : 8 + size])
                    pending = pending[8 + size :]
            else:
                _write_all(stdout_fd, data)
        if stdin_open and stdin_fd in ready:
            data = os.read(stdin_fd, _READ_SIZE)
            if data:
                sock.sendall(data)
            else:
                stdin_open = False
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _resize(api: Any, exec_id: str) -> None:
    size = shutil.get_terminal_size()
    with contextlib.suppress(Exception):  # the exec may already be gone; a wrong size is harmless
        api.exec_resize(exec_id, height=size.lines, width=size.columns)


@contextlib.contextmanager
def _raw_terminal(fd: int | None) -> Iterator[None]:
    """Raw mode on ``fd`` for the duration, restored even on errors; no-op for ``None``."""
    if fd is None:
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSADRAIN)  # the default, TCSAFLUSH, would drop what the user typed ahead
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
