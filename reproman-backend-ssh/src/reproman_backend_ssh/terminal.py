"""Forward the local terminal to a pty channel (what ``reproman login`` uses).

Kept apart from the session because it is all local terminal handling:
raw mode, window size, and shuttling bytes between fds 0/1 and the channel.
It also works when stdin is not a terminal (tests, pipes): then the
terminal is left alone and input is forwarded as it comes.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
import threading
from types import FrameType
from typing import Any

import paramiko

_CHUNK = 64 * 1024


def _size() -> tuple[int, int]:
    size = shutil.get_terminal_size((80, 24))
    return size.columns, size.lines


def forward_terminal(channel: paramiko.Channel, command: str | None) -> int:
    """Run ``command`` (or the login shell) on a pty and relay until it exits; return its status."""
    columns, lines = _size()
    channel.get_pty(term=os.environ.get("TERM", "xterm"), width=columns, height=lines)
    if command is None:
        channel.invoke_shell()
    else:
        channel.exec_command(command)

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()  # what Python buffered must come before the remote output
        except (OSError, ValueError):
            pass
    stdin_fd = 0
    try:
        tty_in = os.isatty(stdin_fd)
    except OSError:
        tty_in = False
    saved: Any = None
    old_winch: Any = None
    if tty_in:
        import termios
        import tty

        saved = termios.tcgetattr(stdin_fd)
        tty.setraw(stdin_fd, termios.TCSADRAIN)  # keep what the user typed ahead
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGWINCH"):

        def on_winch(signum: int, frame: FrameType | None) -> None:
            columns, lines = _size()
            try:
                channel.resize_pty(width=columns, height=lines)
            except paramiko.SSHException:
                pass

        old_winch = signal.signal(signal.SIGWINCH, on_winch)
    stdin_open = True
    try:
        while True:
            watched: list[Any] = [channel]
            if stdin_open:
                watched.append(stdin_fd)
            try:
                ready, _, _ = select.select(watched, [], [], 0.5)
            except InterruptedError:
                continue
            except (OSError, ValueError):
                stdin_open = False
                continue
            if channel.recv_ready():
                data = channel.recv(_CHUNK)
                if data:
                    _write(1, data)
            if channel.recv_stderr_ready():
                data = channel.recv_stderr(_CHUNK)
                if data:
                    _write(2, data)
            if stdin_open and stdin_fd in ready:
                try:
                    data = os.read(stdin_fd, _CHUNK)
                except OSError:
                    data = b""
                if data:
                    channel.sendall(data)
                else:
                    stdin_open = False
                    channel.shutdown_write()
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
            if channel.closed and not channel.recv_ready():
                break
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
    return channel.recv_exit_status()


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
