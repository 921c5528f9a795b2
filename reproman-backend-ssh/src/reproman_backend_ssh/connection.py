"""Opening one authenticated SSH connection, and saying in one line why it failed.

Fabric is used for what it does well: reading ``~/.ssh/config`` (HostName,
Port, User, IdentityFile, IdentitiesOnly, ProxyJump, ProxyCommand,
ConnectTimeout) and chaining jump hosts. Two of its defaults are replaced
on every hop: host keys are checked (:mod:`reproman_backend_ssh.hostkeys`)
and authentication is :class:`reproman_backend_ssh.auth.Authenticator`.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

import attrs
import paramiko

from reproman.plugins import ConfigError, ResourceConnectionError, config_number
from reproman_backend_ssh import hostkeys
from reproman_backend_ssh.auth import Ask, Authenticator, AuthFailed, NothingToAsk, Secrets
from reproman_backend_ssh.keyfiles import check_key_file

if TYPE_CHECKING:
    from fabric import Connection

log = logging.getLogger("reproman.backend_ssh.connection")

#: Used when neither the caller nor ssh_config's ConnectTimeout says otherwise.
DEFAULT_CONNECT_TIMEOUT = 10
#: Seconds a person gets to answer a password or two-factor prompt.
HUMAN_AUTH_TIMEOUT = 300
#: Seconds between keepalive messages, so idle NAT and firewall state stays open.
KEEPALIVE = 30


@attrs.frozen(kw_only=True)
class Settings:
    """Where and how to connect; everything an SSH session is created from."""

    host: str
    port: int | None = None
    user: str | None = None
    key_filename: str | None = None
    connect_timeout: float | None = None
    accept_new_host_key: bool = False
    ssh_config: str | None = None
    known_hosts: str | None = None


class _ParamikoToDebug(logging.Handler):
    """paramiko logs failures with tracebacks at ERROR; ours are one line, so its records become debug."""

    def emit(self, record: logging.LogRecord) -> None:
        log.debug("paramiko: %s", record.getMessage())


def quiet_paramiko() -> None:
    """Keep paramiko's own logging (and Python's last-resort stderr printing of it) out of the user's terminal."""
    logger = logging.getLogger("paramiko")
    if not any(isinstance(h, _ParamikoToDebug) for h in logger.handlers):
        logger.addHandler(_ParamikoToDebug())


def build(settings: Settings, ask: Ask | None, secrets: Secrets) -> Connection:
    """A Fabric connection, not yet open, with host keys, timeouts and authentication set on every hop."""
    from fabric import Config, Connection

    if settings.ssh_config is not None and not os.path.isfile(settings.ssh_config):
        raise ConfigError(f"ssh_config file {settings.ssh_config} does not exist")
    if settings.key_filename:
        check_key_file(settings.key_filename)
    config = Config(runtime_ssh_path=settings.ssh_config) if settings.ssh_config else Config()
    _check_ssh_config_numbers(config, settings)
    connect_kwargs: dict[str, Any] = {}
    if settings.key_filename:
        connect_kwargs["key_filename"] = [settings.key_filename]
    conn = Connection(
        settings.host,
        user=settings.user,
        port=settings.port,
        config=config,
        connect_kwargs=connect_kwargs,
        connect_timeout=int(settings.connect_timeout) if settings.connect_timeout else None,
    )
    hop: Any = conn
    while hop is not None and not isinstance(hop, (str, bool)):
        explicit = [settings.key_filename] if hop is conn and settings.key_filename else []
        _secure(hop, settings, explicit, ask, secrets)
        hop = hop.gateway
    return conn


#: Numbers of an ssh_config host entry that Fabric reads with a bare int(), and their bounds.
_SSH_CONFIG_NUMBERS = (("port", "Port", 65535), ("connecttimeout", "ConnectTimeout", 24 * 3600))


def _check_ssh_config_numbers(config: Any, settings: Settings) -> None:
    """Refuse ``Port abc`` or ``ConnectTimeout 0`` in ssh_config with one line naming the key and host.

    Fabric reads them with ``int()``: a ValueError ("invalid literal for
    int() with base 10") that names neither, and port 0 or 99999999999
    went on to a connection attempt. A backend parameter given for the
    same setting wins over ssh_config, so that entry is not read.
    """
    host = settings.host.rpartition("@")[2]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        found = config.base_ssh_config.lookup(host)
    except Exception:  # a broken ssh_config is reported by the connection attempt itself
        return
    given = {"port": settings.port, "connecttimeout": settings.connect_timeout}
    for key, name, top in _SSH_CONFIG_NUMBERS:
        if key in found and not given[key]:
            config_number(found[key], f"ssh_config {name} of host {host}", minimum=1, maximum=top, whole=True)


def _secure(conn: Connection, settings: Settings, explicit: list[str], ask: Ask | None, secrets: Secrets) -> None:
    """Known-hosts checking, timeouts and our authentication for one hop."""
    known = settings.known_hosts or _first(conn.ssh_config.get("userknownhostsfile"))
    known = os.path.expanduser(known or "~/.ssh/known_hosts")
    accept = settings.accept_new_host_key or conn.ssh_config.get("stricthostkeychecking") == "accept-new"
    hostkeys.apply(conn.client, known, accept)
    if conn.connect_timeout is None:
        conn.connect_timeout = DEFAULT_CONNECT_TIMEOUT
    # A port that accepts but never speaks SSH must fail as fast as one that refuses.
    conn.connect_kwargs["banner_timeout"] = conn.connect_timeout
    conn.connect_kwargs["auth_timeout"] = HUMAN_AUTH_TIMEOUT if ask else max(conn.connect_timeout, 30)
    keys = [k for k in conn.connect_kwargs.get("key_filename") or [] if k not in explicit]
    conn.connect_kwargs["auth_strategy"] = Authenticator(
        conn.user,
        place=f"{conn.user}@{conn.host}" + (f":{conn.port}" if conn.port and int(conn.port) != 22 else ""),
        explicit_keys=explicit,
        config_keys=keys,
        identities_only=conn.ssh_config.get("identitiesonly") == "yes",
        ask=ask,
        secrets=secrets,
    )


def open_connection(settings: Settings, ask: Ask | None, secrets: Secrets) -> Connection:
    """Connect and authenticate; raise a one-line :class:`ResourceConnectionError` (or ConfigError) on failure."""
    quiet_paramiko()
    conn = build(settings, ask, secrets)
    try:
        conn.open()
        conn.transport.set_keepalive(KEEPALIVE)
        return conn
    except (paramiko.BadHostKeyException, hostkeys.UnknownHostKeyError) as exc:
        close_quietly(conn)
        raise hostkeys.refusal(exc) from None
    except ConfigError:
        close_quietly(conn)
        raise
    except (OSError, EOFError, paramiko.SSHException) as exc:
        cause = _handshake_cause(conn, exc)
        close_quietly(conn)
        raise describe_failure(conn, settings, cause) from None
    except BaseException:
        # Ctrl-C at a prompt, a client that went away while asked: the half-open connection goes too.
        close_quietly(conn)
        raise


def _handshake_cause(conn: Connection, exc: BaseException) -> BaseException:
    """What really stopped the handshake, when paramiko reports only "No existing session".

    paramiko stops waiting for the key exchange at the connect timeout and
    then fails on the missing session; the reason (no banner, a reset) is
    in its transport thread.
    """
    if "No existing session" not in str(exc):
        return exc
    transport = conn.client.get_transport()
    if transport is None:
        return exc
    saved = transport.get_exception()
    if saved is not None:
        return saved
    if not getattr(transport, "remote_version", ""):
        return paramiko.SSHException("Error reading SSH protocol banner: timed out")
    return paramiko.SSHException("the key exchange did not finish in time")


def where(conn: Connection, settings: Settings) -> str:
    """``host:port`` as ssh_config resolved it, the alias and any jump named, for messages."""
    place = f"{conn.host}:{conn.port}"
    if conn.host != settings.host:
        place = f"{settings.host} ({place})"
    if conn.gateway:
        place += " via ProxyJump" if not isinstance(conn.gateway, str) else " via ProxyCommand"
    return place


def describe_failure(conn: Connection, settings: Settings, exc: BaseException) -> ResourceConnectionError:
    """The one line a user reads when connecting failed, with what to do about it."""
    place = where(conn, settings)
    if isinstance(exc, NothingToAsk):
        return ResourceConnectionError(
            f"SSH login as {conn.user!r} to {place} needs a password or a code: {exc}",
            hint="Run the command from a terminal (it is asked once per persistent connection), or use a key.",
        )
    if isinstance(exc, (AuthFailed, paramiko.AuthenticationException)):
        typed = isinstance(exc, AuthFailed) and exc.refused_answers
        return ResourceConnectionError(
            f"SSH authentication as {conn.user!r} to {place} failed: {_one_line(exc)}",
            hint=("The password or code typed was refused: run the command again to be asked again."
                  if typed else "Check user and key_filename (or IdentityFile in ~/.ssh/config)."),
        )
    text = _one_line(exc)
    if isinstance(exc, paramiko.SSHException) and "banner" in text.lower():
        return ResourceConnectionError(
            f"{place} accepted the connection but sent no SSH greeting within {conn.connect_timeout} s",
            hint=("The host or its sshd may be overloaded or frozen (try again later), or it is not an SSH "
                  "port: a wrong port, a firewall or a proxy in the way looks the same."),
        )
    if isinstance(exc, (socket.timeout, TimeoutError)):
        reason = f"timed out after {conn.connect_timeout} s"
    elif isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        reason = "; ".join(sorted({e.strerror or str(e) for e in exc.errors.values()})) or "connection refused"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    elif isinstance(exc, EOFError):
        reason = "the server closed the connection during the handshake"
    else:
        reason = text or type(exc).__name__
    return ResourceConnectionError(f"cannot reach SSH host {place}: {reason}")


def close_quietly(conn: Connection) -> None:
    """Close a connection and its jump hosts, whatever state they are in.

    Fabric closes only a connection that finished opening; one whose
    authentication failed or was interrupted keeps its socket, and an
    unauthenticated connection left open counts against the server's
    ``MaxStartups`` (sshd refuses new logins at random beyond it) until its
    ``LoginGraceTime``. So paramiko's client is closed as well: that closes
    the transport and its socket at any stage.
    """
    hop: Any = conn
    while hop is not None and not isinstance(hop, (str, bool)):
        for close in (hop.close, hop.client.close):
            try:
                close()
            except Exception:  # a half-open connection may fail to close any way
                pass
        hop = hop.gateway


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _first(value: Any) -> str | None:
    """The first of ssh_config's (possibly several, space-separated) file names."""
    if isinstance(value, list):
        value = value[0] if value else None
    words = str(value).split() if value else []
    return words[0] if words else None
