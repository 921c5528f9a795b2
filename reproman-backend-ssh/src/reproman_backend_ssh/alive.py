"""Noticing a server that stopped answering on a connection that is still open.

A host that freezes (a stopped VM, a route that went away, an sshd stopped
with SIGSTOP) leaves the TCP connection open: nothing fails, every read
waits forever, and ``jobs --status`` or ``execute`` hang without a word.
paramiko's own keepalive sends messages that ask for no reply, so it cannot
notice. As OpenSSH's ``ServerAliveInterval``/``ServerAliveCountMax`` do, a
thread per connection asks the server for a reply every ``interval``
seconds (``keepalive@openssh.com``; a server answers an unknown request
with a failure, which is an answer too); once ``interval * count`` seconds
have passed since the server's last answer it closes the transport, so that
every call waiting on it fails with the reason instead of hanging. The
deadline runs from the last answer, not from a request sent later, so the
silence a message reports is the silence there was, and no wait is longer
than the settings say.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import paramiko

from reproman_backend_ssh.options import (  # noqa: F401 - the defaults, re-exported where they were
    DEFAULT_COUNT,
    DEFAULT_INTERVAL,
    DEFAULT_REFRESH_TIMEOUT,
    MAX_SECONDS,
    alive_count,
    alive_interval,
    number,
    refresh_timeout,
)

log = logging.getLogger("reproman.backend_ssh.alive")

REQUEST = "keepalive@openssh.com"


def settings(ssh_config: dict[str, str] | None = None) -> tuple[float, int]:
    """(interval, count): ssh_config's ServerAliveInterval/CountMax win, then ``[ssh]``, then the defaults."""
    ssh_config = ssh_config or {}
    interval = number(ssh_config.get("serveraliveinterval"), "ServerAliveInterval", -1)
    if interval < 0:
        interval = alive_interval()
    count = number(ssh_config.get("serveralivecountmax"), "ServerAliveCountMax", -1)
    if count < 0:
        count = alive_count()
    return interval, max(1, int(count))


def answers(transport: paramiko.Transport, timeout: float) -> bool:
    """Whether the server answers a request for a reply within ``timeout`` seconds.

    An open connection proves nothing (a frozen host keeps it open); an
    answer does. The transport is left as it is either way: a slow server
    may still be serving commands from other terminals.
    """
    answered = threading.Event()

    def ask() -> None:
        try:
            transport.global_request(REQUEST, wait=True)
        except Exception as exc:  # the transport closing under it
            log.debug("status request failed: %s", exc)
            return
        if transport.is_active():
            answered.set()

    threading.Thread(target=ask, name="reproman-ssh-answers", daemon=True).start()
    return answered.wait(timeout)


class AliveWatch:
    """Asks a transport's server for a reply every ``interval`` s; calls ``on_dead`` and closes it after silence.

    Silence is counted from the server's last answer (or from the start,
    when the connection was just authenticated). ``on_dead`` gets the
    seconds it really lasted, before the transport is closed (the session
    words its errors with it).
    """

    def __init__(self, transport: paramiko.Transport, interval: float, count: int,
                 on_dead: Callable[[float], None]) -> None:
        self.transport = transport
        self.interval = interval
        self.count = count
        self.on_dead = on_dead
        self._stop = threading.Event()
        #: Set when stopping and on every answer, so the watch re-reads the time at once.
        self._wake = threading.Event()
        self._last_answer = time.monotonic()
        #: Set while a request waits for its answer.
        self._asking = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def limit(self) -> float:
        """Seconds of silence after which the server is taken for gone."""
        return self.interval * self.count

    @property
    def period(self) -> float:
        """Seconds between requests: every interval, but twice within the limit when the count is 1."""
        return self.interval if self.count > 1 else self.interval / 2

    def start(self) -> AliveWatch:
        if self.interval > 0:
            self._last_answer = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="reproman-ssh-alive", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        next_ask = self._last_answer + self.period
        while not self._stop.is_set():
            if not self.transport.is_active():
                return
            now = time.monotonic()
            silence = now - self._last_answer
            if silence >= self.limit:
                log.debug("no reply from the server in %.1f s: closing the connection", silence)
                try:
                    self.on_dead(silence)
                finally:
                    self.transport.close()
                return
            waiting = self._asking.is_set()
            if not waiting and now >= next_ask:
                # One request at a time: a server that does not answer the first will not answer a second.
                self._asking.set()
                threading.Thread(target=self._ask, name="reproman-ssh-alive-ask", daemon=True).start()
                next_ask = now + self.period
                waiting = True
            deadline = self._last_answer + self.limit
            wake_at = deadline if waiting else min(next_ask, deadline)
            self._wake.wait(max(0.0, wake_at - time.monotonic()))
            self._wake.clear()

    def _ask(self) -> None:
        try:
            # Returns on a reply (success or failure) or once the transport is closed.
            self.transport.global_request(REQUEST, wait=True)
        except Exception as exc:  # a transport closing under it
            log.debug("keepalive request failed: %s", exc)
        if self.transport.is_active():
            self._last_answer = time.monotonic()
        self._asking.clear()
        self._wake.set()
