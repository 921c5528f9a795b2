"""Long-lived remote shells: one ``/bin/sh`` per channel, reused command after command.

Opening an SSH channel costs about 90 ms even on an open connection (sshd
forks and runs the login shell), so commands go through a shell that is
already running (see :mod:`reproman_backend_ssh.framing` for how each
command is delimited). A session keeps a small pool of them: a command
takes an idle shell or opens one more, and gives it back when its end
marker has arrived. A shell whose command was interrupted, or whose stream
fell out of step, is closed instead of given back, so no later command
ever reads a previous command's leftovers.
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable

import paramiko

from reproman.plugins import SessionError
from reproman_backend_ssh.channels import ChannelGate
from reproman_backend_ssh.framing import STDERR, STDOUT, FrameParser

log = logging.getLogger("reproman.backend_ssh.shells")

CHUNK = 256 * 1024
#: Idle shells kept open per session; more are closed when given back.
IDLE_SHELLS = 2


class RemoteShell:
    """``exec /bin/sh`` on one channel without a pty, so stdout and stderr stay two streams."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        channel.exec_command("exec /bin/sh")

    @property
    def usable(self) -> bool:
        ch = self.channel
        return not (ch.closed or ch.eof_received or ch.exit_status_ready()) and ch.get_transport().is_active()

    def send(self, line: bytes) -> None:
        self.channel.sendall(line)

    def collect(self, parser: FrameParser, lost: Callable[[], SessionError]) -> int:
        """Read both streams into ``parser`` until it has the command's end; return the exit status.

        Both streams are drained as data arrives, so a command writing much
        to one while the other is idle never stalls on the SSH window.
        """
        channel = self.channel
        while True:
            got = read_available(channel, lambda data: parser.feed(STDOUT, data),
                                 lambda data: parser.feed(STDERR, data))
            if parser.done:
                assert parser.returncode is not None
                return parser.returncode
            if got:
                continue
            if channel.closed or channel.eof_received or not channel.get_transport().is_active():
                if channel.recv_ready() or channel.recv_stderr_ready():
                    continue
                raise lost()
            select.select([channel], [], [], 1.0)

    def close(self) -> None:
        try:
            self.channel.close()
        except Exception:  # closing a channel on a dead transport may fail any way
            pass


class ShellPool:
    """Idle shells of one connection, handed out one command at a time."""

    def __init__(self) -> None:
        self._idle: list[RemoteShell] = []
        self._lock = threading.Lock()
        #: Called when a shell was given back or closed (the session's gate wakes its waiters).
        self.on_free: Callable[[], None] = lambda: None

    def take(self, transport: paramiko.Transport, gate: ChannelGate) -> RemoteShell:
        """An idle shell on ``transport``, or a new one on a channel ``gate`` opens.

        When the server allows no more channels, ``gate`` waits, and a shell
        another command gives back meanwhile is taken as soon as it is idle.
        """
        got = gate.open_or_reuse(transport, lambda: self._idle_on(transport))
        return got if isinstance(got, RemoteShell) else RemoteShell(got)

    def _idle_on(self, transport: paramiko.Transport) -> RemoteShell | None:
        with self._lock:
            while self._idle:
                shell = self._idle.pop()
                if shell.usable and shell.channel.get_transport() is transport:
                    return shell
                shell.close()
        return None

    def give_back(self, shell: RemoteShell) -> None:
        """Keep a shell whose command ended cleanly for the next command (waiting ones are woken)."""
        with self._lock:
            kept = shell.usable and len(self._idle) < IDLE_SHELLS
            if kept:
                self._idle.append(shell)
        if not kept:
            shell.close()
        self.on_free()

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for shell in idle:
            shell.close()


def read_available(channel: paramiko.Channel, on_out: Callable[[bytes], object],
                   on_err: Callable[[bytes], object]) -> bool:
    """Hand whatever is buffered on either stream to its callback; whether anything was."""
    got = False
    if channel.recv_ready():
        data = channel.recv(CHUNK)
        if data:
            on_out(data)
            got = True
    if channel.recv_stderr_ready():
        data = channel.recv_stderr(CHUNK)
        if data:
            on_err(data)
            got = True
    return got

