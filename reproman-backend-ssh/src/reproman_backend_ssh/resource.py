"""The ``ssh`` resource: an existing host reached over SSH.

Nothing is provisioned: ``create`` checks that the host answers and records
it, ``delete`` forgets it, and start/stop are refused because an SSH host's
power state is not ReproMan's to change.

Sessions persist across commands by default: the first command that needs
the host starts a session host (:mod:`reproman.resources.persistent`) that
keeps the authenticated connection for every later ReproMan call of the
user, so a password or two-factor code is asked once, not per command.
``-b persistent=no`` (or ``[ssh] persistent = no``) connects directly each
time. Importing this module does not import paramiko: a command served by
a running host never loads it.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from reproman.plugins import (
    CONNECTION_ERROR,
    ONLINE,
    ReproManError,
    Resource,
    ResourceConnectionError,
    ResourceError,
    Session,
    attach_persistent_session,
    persistent_idle_seconds,
    persistent_sessions_enabled,
    shutdown_persistent_session,
)
from reproman_backend_ssh import options
from reproman_backend_ssh.keyfiles import check_key_file

#: The config section of this backend's settings (``persistent``, ``idle_timeout``).
CONFIG_SECTION = "ssh"


def _absolute(path: Any) -> str | None:
    """A path as the session host (whose working directory is ``/``) must see it."""
    return os.path.abspath(os.path.expanduser(str(path))) if path else None


def session_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of the ``ssh`` session type from backend parameters (JSON-able, paths absolute)."""
    return {
        "host": str(params["host"]),
        "port": int(params["port"]) if params.get("port") else None,
        "user": params.get("user") or None,
        "key_filename": _absolute(params.get("key_filename")),
        "connect_timeout": params.get("connect_timeout") or None,
        "accept_new_host_key": bool(params.get("accept_new_host_key")),
        "ssh_config": _absolute(params.get("ssh_config")),
        "known_hosts": _absolute(params.get("known_hosts")),
    }


def open_ssh_session(params: dict[str, Any], *, persist: bool | None, label: str) -> Session:
    """An open ``ssh`` session: through the session host when persistence is on, else direct.

    Shared with other backends that reach their machines over SSH (aws-ec2).
    """
    if params.get("key_filename"):
        check_key_file(params["key_filename"])  # before a host is started for nothing
    options.check()  # a kept host would not notice a bad [ssh] value; a new one would report it late
    if persistent_sessions_enabled(CONFIG_SECTION, persist):
        hosted = attach_persistent_session("ssh", params, idle=persistent_idle_seconds(CONFIG_SECTION), label=label)
        if hosted is not None:
            return hosted.open()
    from reproman_backend_ssh.session import SSHSession

    session = SSHSession(**params)
    try:
        return session.open()
    except BaseException:
        session.close()
        raise


def close_persistent(params: dict[str, Any]) -> bool:
    """End the session host for these parameters, if one runs (``stop``/``delete``)."""
    try:
        return shutdown_persistent_session("ssh", params)
    except ReproManError:
        return False


class SSHResource(Resource):
    """A host ReproMan reaches over SSH (a workstation, a cluster login node...)."""

    type = "ssh"

    def __init__(self, name: str, *, id: str | None = None, status: str | None = None, **params: Any) -> None:
        super().__init__(name, id=id, status=status, **params)
        self._session: Session | None = None
        #: Why :meth:`connect` just failed: :meth:`get_session` raises it rather than trying again at once.
        self._failed: ReproManError | None = None

    def _params(self) -> dict[str, Any]:
        if not self.params.get("host"):
            raise ResourceError(f"SSH resource {self.name!r} has no host", hint="Recreate it with -b host=HOST.")
        return session_parameters(self.params)

    def _open(self) -> Session:
        return open_ssh_session(self._params(), persist=self.params.get("persistent"),
                                label=f"SSH resource {self.name!r}")

    def create(self) -> dict[str, Any]:
        """Check the host is reachable (and its key acceptable); raise a one-line error if not."""
        try:
            session = self._open()
        except BaseException:
            close_persistent(self._params())
            raise
        session.close()
        self.id = self.id or str(uuid.uuid4())
        self.status = ONLINE
        return {"id": self.id, "status": ONLINE}

    def connect(self) -> None:
        """Open the connection get_session will reuse; record ONLINE or CONNECTION ERROR, never raise."""
        if self._session is not None and getattr(self._session, "connected", False):
            self.status = ONLINE
            return
        self._failed = None
        try:
            session = self._open()
        except (ResourceConnectionError, ResourceError) as exc:
            self.status = CONNECTION_ERROR
            self.connection_error = str(exc)
            self._failed = exc
            return
        self._forget_session()
        self._session = session
        self.status = ONLINE

    def delete(self) -> None:
        """Nothing to destroy on the host: close our connection and its session host; core forgets the record."""
        self._forget_session()
        if self.params.get("host"):
            close_persistent(self._params())

    def start(self) -> None:
        raise ResourceError(
            f"SSH hosts cannot be started: {self.name!r} is a host ReproMan only connects to",
            hint="Start the machine by other means, then 'reproman ls --refresh'.",
        )

    def stop(self) -> None:
        """Refused (the host is not ReproMan's), but ReproMan's persistent connection to it is closed."""
        self._forget_session()
        closed = bool(self.params.get("host")) and close_persistent(self._params())
        raise ResourceError(
            f"SSH hosts cannot be stopped: {self.name!r} is a host ReproMan only connects to"
            + (" (its persistent connection was closed; commands running through it finish first)"
               if closed else ""),
            hint="Nothing else to do; 'reproman delete' forgets it.",
        )

    def get_session(self, pty: bool = False, shared: bool | None = None) -> Session:
        """The session opened by :meth:`connect` if still alive, else a new one.

        ``pty`` is accepted for the contract and ignored: commands never need
        one, and ``login`` always opens its own pty channel. When the
        :meth:`connect` just before failed, its error is raised as it is:
        trying again at once would double the wait on a port that never
        answers, while the message names one connect timeout.
        """
        if self._session is not None and getattr(self._session, "connected", False):
            session, self._session = self._session, None
            return session
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed
        return self._open()

    def refresh_status(self) -> str | None:
        """Prove the host answers, for ``ls --refresh`` (through the session host, which it leaves warm).

        A kept connection to a frozen host is still open, so it must answer
        a request within ``[ssh] refresh_timeout`` seconds, as this command
        reads it (the host serving the connection may have started with
        another value). The status shown says why when it is not ONLINE; the
        inventory keeps the bare status.
        """
        self.connect()
        session = self._session
        if session is not None:
            try:
                session.check_answers(options.refresh_timeout())
            except ReproManError as exc:
                self.status = CONNECTION_ERROR
                self.connection_error = str(exc)
        self._forget_session()
        if self.status == CONNECTION_ERROR and getattr(self, "connection_error", None):
            return f"{CONNECTION_ERROR}: {self.connection_error}"
        return self.status

    def _forget_session(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
