"""Opening session channels within the server's limit: a command waits for a free channel instead of failing.

An OpenSSH server allows ``MaxSessions`` channels per connection (10 unless
configured). A kept connection (:mod:`reproman.resources.sessionhost`) serves
every ReproMan process of the user, so eleven commands at once from a shell
loop, ``jobs --status`` over several jobs while a fetch runs, or a few
``login`` terminals are enough to reach that limit. The server then refuses
the channel (OpenSSH: "open failed: Connect failed"), and paramiko raises an
:class:`paramiko.SSHException` while the connection stays up.

Refused, the gate first closes the session's idle shells (they hold
channels nobody is using), then waits for one of the session's own
channels to close, up to ``[ssh] channel_wait`` seconds, retrying with a
growing pause. It never waits when nothing of this session holds a channel:
then the server refuses sessions for another reason, and waiting could not help.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import TypeVar, cast

import paramiko

from reproman.plugins import SessionError, config_number, get_config

log = logging.getLogger("reproman.backend_ssh.channels")

T = TypeVar("T")

#: Seconds a command waits for a free channel when the server allows no more (``[ssh] channel_wait``).
DEFAULT_WAIT = 300.0
_FIRST_PAUSE = 0.02
_LONGEST_PAUSE = 0.5


def channel_wait() -> float:
    """``[ssh] channel_wait``: how long a command waits for a free channel when the server allows no more."""
    return config_number(get_config().get("ssh", "channel_wait"), "[ssh] channel_wait", default=DEFAULT_WAIT)


class ChannelGate:
    """Opens the session channels of one connection; knows which are still open."""

    def __init__(self, target: Callable[[], str], free_idle: Callable[[], None]) -> None:
        self._target = target
        self._free_idle = free_idle
        self._open: weakref.WeakSet[paramiko.Channel] = weakref.WeakSet()
        self._lock = threading.Lock()
        #: Notified when a channel may have come free (a shell given back or closed).
        self._freed = threading.Condition()
        self._warned = False

    def released(self) -> None:
        """Wake the commands waiting for a channel: one of this session's shells was given back or closed."""
        with self._freed:
            self._freed.notify_all()

    def open(self, transport: paramiko.Transport) -> paramiko.Channel:
        """A new session channel on ``transport`` (a transfer, a terminal), waiting if the server is full.

        Waiting starts by closing the session's idle shells, which hold
        channels nobody is using.
        """
        return cast(paramiko.Channel, self._acquire(transport, None))

    def open_or_reuse(self, transport: paramiko.Transport, reuse: Callable[[], T | None]) -> paramiko.Channel | T:
        """What ``reuse`` offers (the shell pool's idle shell), else a new channel, waiting if the server is full.

        ``reuse`` is asked before and while waiting, so a shell another
        command gives back serves the next waiter at once instead of
        holding its channel idle while the waiters are refused new ones.
        """
        return self._acquire(transport, reuse)

    def _acquire(self, transport: paramiko.Transport, reuse: Callable[[], T | None] | None) -> paramiko.Channel | T:
        deadline: float | None = None
        pause = _FIRST_PAUSE
        while True:
            if reuse is not None:
                idle = reuse()
                if idle is not None:
                    return idle
            try:
                channel = transport.open_session()
            except paramiko.SSHException as exc:
                if not transport.is_active():
                    raise  # the connection is gone: the caller's reconnecting handles that
                # Concurrent opens share paramiko's one saved exception: all but one see a bare SSHException.
                refused = (f"{exc.text or 'open failed'} (code {exc.code})" if isinstance(exc, paramiko.ChannelException)
                           else str(exc).rstrip("."))
            else:
                with self._lock:
                    self._open.add(channel)
                return channel
            now = time.monotonic()
            if deadline is None:
                deadline = now + channel_wait()
                if reuse is None:
                    # Idle shells hold channels nobody uses: close them before waiting for busy ones.
                    self._free_idle()
                    continue
            held = self.held(transport)
            if now >= deadline or held == 0:
                waited = f"; waited {channel_wait():g} s for one of this session's {held} to close" if held else ""
                raise SessionError(
                    f"the SSH server {self._target()} refused another session channel: {refused}{waited}",
                    hint="Raise MaxSessions in the server's sshd_config, run fewer commands at once, "
                         "or raise [ssh] channel_wait.",
                )
            if not self._warned:
                self._warned = True
                log.warning("%s allows no more than %d session channel(s) at once (sshd MaxSessions); "
                            "further commands wait for one to close", self._target(), held)
            with self._freed:
                self._freed.wait(min(pause, max(0.0, deadline - now)))
            pause = min(pause * 2, _LONGEST_PAUSE)

    def held(self, transport: paramiko.Transport) -> int:
        """How many channels opened here are still open on ``transport``."""
        with self._lock:
            return sum(1 for c in list(self._open) if not c.closed and c.get_transport() is transport)
