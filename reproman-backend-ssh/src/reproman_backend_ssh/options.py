"""The ``[ssh]`` settings, read and checked in the command's own process (no paramiko needed).

A kept connection's session host reads its settings once, when it starts,
and serves every later command of the user until it is idle for
``idle_timeout`` seconds. So a wrong value must be refused by the command
that has it, at once and in one line, before a host is started or reused:
a host reused with a good value would never notice, and one started with a
bad value would fail only later, reported as a connection error of one
resource. Values a command can pass with its request (``refresh_timeout``)
are read here too, so each command's configuration applies to it.
"""

from __future__ import annotations

from reproman.plugins import config_number, get_config

#: The largest interval or timeout taken, in seconds (a day): more is a typo, and 1e300 overflows a timer.
MAX_SECONDS = 24 * 3600.0
#: Seconds ``ls --refresh`` waits for a kept connection's server to answer (``[ssh] refresh_timeout``).
DEFAULT_REFRESH_TIMEOUT = 5.0
#: Seconds between two requests for a reply (``[ssh] server_alive_interval``; 0 turns the check off).
DEFAULT_INTERVAL = 15.0
#: Unanswered intervals before the connection is given up (``[ssh] server_alive_count_max``).
DEFAULT_COUNT = 3
#: ``[ssh] channel_wait``'s default, as :mod:`reproman_backend_ssh.channels` reads it.
DEFAULT_CHANNEL_WAIT = 300.0


def number(raw: str | None, key: str, default: float, maximum: float = MAX_SECONDS) -> float:
    """A seconds-or-count setting: a finite number, zero or more, at most a day."""
    return config_number(raw, key, default=default, maximum=maximum)


def refresh_timeout() -> float:
    """``[ssh] refresh_timeout``: how long a status check waits for an open connection's server to answer."""
    value = number(get_config().get("ssh", "refresh_timeout"), "[ssh] refresh_timeout", DEFAULT_REFRESH_TIMEOUT)
    return value or DEFAULT_REFRESH_TIMEOUT


def alive_interval() -> float:
    """``[ssh] server_alive_interval`` (ssh_config's ServerAliveInterval, read by the host, wins over it)."""
    return number(get_config().get("ssh", "server_alive_interval"), "[ssh] server_alive_interval", DEFAULT_INTERVAL)


def alive_count() -> float:
    """``[ssh] server_alive_count_max`` (ssh_config's ServerAliveCountMax wins over it)."""
    return number(get_config().get("ssh", "server_alive_count_max"), "[ssh] server_alive_count_max", DEFAULT_COUNT)


def check() -> None:
    """Raise the one-line ConfigError of the first bad ``[ssh]`` number, before any connection is used."""
    refresh_timeout()
    alive_interval()
    alive_count()
    # The same check channels.channel_wait() makes in the host, where a bad value would surface mid-command.
    config_number(get_config().get("ssh", "channel_wait"), "[ssh] channel_wait", default=DEFAULT_CHANNEL_WAIT)
