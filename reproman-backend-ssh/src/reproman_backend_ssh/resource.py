"""The ``ssh`` resource: an existing host reached over SSH.

Nothing is provisioned: ``create`` checks that the host answers and records
it, ``delete`` forgets it, and start/stop are refused because an SSH host's
power state is not ReproMan's to change.
"""

from __future__ import annotations

import uuid
from typing import Any

from reproman.errors import ResourceConnectionError, ResourceError
from reproman.resources.base import CONNECTION_ERROR, ONLINE, Resource
from reproman.resources.session import Session
from reproman_backend_ssh.session import SSHSession


class SSHResource(Resource):
    """A host ReproMan reaches over SSH (a workstation, a cluster login node...)."""

    type = "ssh"

    def __init__(self, name: str, *, id: str | None = None, status: str | None = None, **params: Any) -> None:
        super().__init__(name, id=id, status=status, **params)
        self._session: SSHSession | None = None

    def _new_session(self) -> SSHSession:
        get = self.params.get
        if not get("host"):
            raise ResourceError(f"SSH resource {self.name!r} has no host", hint="Recreate it with -b host=HOST.")
        return SSHSession(
            str(get("host")),
            port=get("port"),
            user=get("user"),
            key_filename=get("key_filename"),
            connect_timeout=get("connect_timeout"),
            accept_new_host_key=bool(get("accept_new_host_key")),
            ssh_config=get("ssh_config"),
            known_hosts=get("known_hosts"),
        )

    def create(self) -> dict[str, Any]:
        """Check the host is reachable (and its key acceptable); raise a one-line error if not."""
        session = self._new_session()
        try:
            session.open()
        finally:
            session.close()
        self.id = self.id or str(uuid.uuid4())
        self.status = ONLINE
        return {"id": self.id, "status": ONLINE}

    def connect(self) -> None:
        """Open the connection get_session will reuse; record ONLINE or CONNECTION ERROR, never raise."""
        if self._session is not None and self._session.connected:
            self.status = ONLINE
            return
        session = self._new_session()
        try:
            session.open()
        except (ResourceConnectionError, ResourceError) as exc:
            session.close()
            self.status = CONNECTION_ERROR
            self.connection_error = str(exc)
            return
        self._forget_session()
        self._session = session
        self.status = ONLINE

    def delete(self) -> None:
        """Nothing to destroy on the host: close our connection; core forgets the record."""
        self._forget_session()

    def start(self) -> None:
        raise ResourceError(
            f"SSH hosts cannot be started: {self.name!r} is a host ReproMan only connects to",
            hint="Start the machine by other means, then 'reproman ls --refresh'.",
        )

    def stop(self) -> None:
        raise ResourceError(
            f"SSH hosts cannot be stopped: {self.name!r} is a host ReproMan only connects to",
            hint="Nothing to do; 'reproman delete' forgets it.",
        )

    def get_session(self, pty: bool = False, shared: bool | None = None) -> Session:
        """The session opened by :meth:`connect` if still alive, else a new one.

        ``pty`` is accepted for the contract and ignored: commands never need
        one, and ``login`` always opens its own pty channel.
        """
        if self._session is not None and self._session.connected:
            session, self._session = self._session, None
            return session
        return self._new_session().open()

    def refresh_status(self) -> str | None:
        """Probe the host for ``ls --refresh`` without leaving a connection open."""
        self.connect()
        self._forget_session()
        return self.status

    def _forget_session(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
