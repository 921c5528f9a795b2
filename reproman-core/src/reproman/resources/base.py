"""The Resource contract: a named computation environment ReproMan manages.

A resource is a plain record (name, type, id, status, backend parameters)
plus the lifecycle verbs users know from ReproMan. The inventory stores the
record; the backend class turns it back into a live object when a command
needs to touch the real thing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from reproman.errors import ResourceError
from reproman.resources.session import Session

#: Statuses shown by ``reproman ls``; backends may report others verbatim.
ONLINE = "ONLINE"
OFFLINE = "OFFLINE"
RUNNING = "running"
STOPPED = "stopped"
CONNECTION_ERROR = "CONNECTION ERROR"
NOT_FOUND = "NOT FOUND"

#: Where jobs live on a resource unless its backend or the user says otherwise.
DEFAULT_ROOT_DIRECTORY = "~/.reproman/run-root"


class Resource(ABC):
    """Base class of every resource type.

    Subclasses get their backend parameters as attributes (validated and
    converted by core from the type's :class:`~reproman.plugins.records.Parameter`
    list) and implement the lifecycle. ``id`` and ``status`` are what the
    backend learned about the real thing (container ID, instance ID...);
    :meth:`create` returns them so the inventory can keep them.
    """

    #: The resource type name this class implements (``"shell"``, ``"ssh"``...); set from the
    #: :class:`~reproman.plugins.records.ResourceType` record when core loads the class.
    type: ClassVar[str] = ""

    def __init__(self, name: str, *, id: str | None = None, status: str | None = None, **params: Any) -> None:
        self.name = name
        self.id = id
        self.status = status
        self.params: dict[str, Any] = dict(params)
        for key, value in params.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, id={self.id!r}, status={self.status!r})"

    # -- lifecycle ----------------------------------------------------------
    @abstractmethod
    def create(self) -> dict[str, Any]:
        """Bring the resource into existence (or check that it exists).

        Return the attributes to record, at least ``id`` and ``status``.
        Raise :class:`ResourceError` with a one-line message on failure.
        """

    def connect(self) -> None:
        """Attach to the existing real thing; refresh ``status``.

        Must not raise when the resource is unreachable: set ``status`` to
        :data:`CONNECTION_ERROR` (or :data:`NOT_FOUND`) instead, so ``ls``
        can report it.
        """

    def delete(self) -> None:
        """Destroy the real thing (a container, an instance) if there is one."""

    def start(self) -> None:
        raise ResourceError(f"resources of type {self.type!r} cannot be started", hint="Nothing to do.")

    def stop(self) -> None:
        raise ResourceError(f"resources of type {self.type!r} cannot be stopped", hint="Nothing to do.")

    @abstractmethod
    def get_session(self, pty: bool = False, shared: bool | None = None) -> Session:
        """An open session to the resource (connect first)."""

    def login(self) -> int:
        """Interactive shell on the resource; returns its exit status."""
        session = self.get_session(pty=True)
        try:
            return session.login()
        finally:
            session.close()

    def provenance(self) -> dict[str, Any]:
        """What a job's record should say about where it ran, beyond name and ID.

        Backends return facts that pin the environment down (an image ID
        rather than a tag that may move, an instance type...). Called once per
        ``reproman run``; the default says nothing more.
        """
        return {}

    def default_root_directory(self) -> str:
        """Where jobs live on this resource when the user gives no ``root_directory`` job parameter.

        Relative paths and ``~`` are taken from the home directory on the
        resource. A backend overrides this where the home directory is the
        wrong place (a container whose home is not writable, a cluster whose
        home is small and whose jobs belong on scratch space).
        """
        return DEFAULT_ROOT_DIRECTORY

    def refresh_status(self) -> str | None:
        """Ask the backend for the current status (``ls --refresh``)."""
        self.connect()
        return self.status

    # -- record -------------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        """What the inventory stores for this resource."""
        return {"name": self.name, "type": self.type, "id": self.id, "status": self.status, **self.params}
