"""Noticing a server that stopped answering on a connection that is still open.

A host that freezes (a stopped VM, a route that went away, an sshd stopped
with SIGSTOP) leaves the TCP connection open: nothing fails, every read
waits forever, and ``jobs --status`` or ``execute`` hang without a word.
paramiko's own keepalive sends messages that ask for no reply, so it cannot
notice. As OpenSSH's ``ServerAliveInterval``/``ServerAliveCountMax`` do, a
thread per connection asks the server for a reply every ``interval``
seconds (``keepalive@openssh.com``; a server answers an unknown request
with a failure, which is an answer too); with no answer for
``interval * count`` seconds it closes the transport, so that every call
waiting on it fails with the reason instead of hanging.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paramiko

from reproman.plugins import config_number, get_config

log = logging.getLogger("reproman.backend_ssh.alive")

#: Seconds between two requests for a reply (``[ssh] server_alive_interval``; 0 turns the check off).
DEFAULT_INTERVAL = 15.0
#: Unanswered intervals before the connection is given up (``[ssh] server_alive_count_max``).
DEFAULT_COUNT = 3
REQUEST = "keepalive@openssh.com"


def _number(raw: str | None, key: str, default: float) -> float:
    return config_number(raw, key, default=default)


def settings(ssh_config: dict[str, str] | None = None) -> tuple[float, int]:
    """(interval, count): ssh_config's ServerAliveInterval/CountMax win, then ``[ssh]``, then the defaults."""
    ssh_config = ssh_config or {}
    config = get_config()
    interval = _number(ssh_config.get("serveraliveinterval"), "ServerAliveInterval", -1)
    if interval < 0:
        interval = _number(config.get("ssh", "server_alive_interval"), "[ssh] server_alive_interval",
                           DEFAULT_INTERVAL)
    count = _number(ssh_config.get("serveralivecountmax"), "ServerAliveCountMax", -1)
    if count < 0:
        count = _number(config.get("ssh", "server_alive_count_max"), "[ssh] server_alive_count_max", DEFAULT_COUNT)
    return interval, max(1, int(count))


class AliveWatch:
    """Asks a transport's server for a reply every ``interval`` s; calls ``on_dead`` and closes it after silence.

    ``on_dead`` gets the number of seconds without an answer, before the
    transport is closed (the session words its errors with it).
    """

    def __init__(self, transport: paramiko.Transport, interval: float, count: int,
                 on_dead: Callable[[float], None]) -> None:
        self.transport = transport
        self.interval = interval
        self.count = count
        self.on_dead = on_dead
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> AliveWatch:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="reproman-ssh-alive", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        silence = self.interval * self.count
        while not self._stop.wait(self.interval):
            if not self.transport.is_active():
                return
            answered = threading.Event()
            threading.Thread(target=self._ask, args=(answered,), name="reproman-ssh-alive-ask", daemon=True).start()
            if answered.wait(silence) or self._stop.is_set():
                continue
            if not self.transport.is_active():
                return
            log.debug("no reply from the server in %.0f s: closing the connection", silence)
            try:
                self.on_dead(silence)
            finally:
                self.transport.close()
            return

    def _ask(self, answered: threading.Event) -> None:
        try:
            # Returns on a reply (success or failure) or once the transport is closed.
            self.transport.global_request(REQUEST, wait=True)
        except Exception as exc:  # a transport closing under it
            log.debug("keepalive request failed: %s", exc)
            if not self.transport.is_active():
                return
        answered.set()
