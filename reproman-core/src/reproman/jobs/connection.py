"""One open session to a resource, and the submitters and orchestrators that use it.

Opening a session is the expensive part of talking to a resource (an SSH
handshake, a Docker client), so every job on the same resource shares one
:class:`Connection` for a whole command: ``jobs --status`` over fifty jobs on
one cluster opens one session and polls once.
"""

from __future__ import annotations

from reproman.jobs.contracts import Orchestrator, Submitter
from reproman.jobs.spec import JobSpec
from reproman.resources.base import Resource
from reproman.resources.session import Session


class Connection:
    """A connected resource with its session; close it (or use ``with``)."""

    def __init__(self, resource: Resource) -> None:
        from reproman.resources.manage import note_reached

        self.resource = resource
        recorded = resource.status
        resource.connect()
        self.session: Session = resource.get_session()
        note_reached(resource, recorded)
        self._submitters: dict[str, Submitter] = {}

    @classmethod
    def open(cls, resref: str | Resource | None = None, resref_type: str = "auto") -> Connection:
        from reproman.resources.manage import get_resource

        return cls(get_resource(resref, resref_type))

    @classmethod
    def for_job(cls, job: JobSpec) -> Connection:
        """The resource a registered job ran on, by the name recorded at submission."""
        return cls.open(job.resource_name)

    def submitter(self, name: str) -> Submitter:
        if name not in self._submitters:
            from reproman.plugins.manager import get_plugin_manager

            cls = get_plugin_manager().submitter(name).load()
            self._submitters[name] = cls(self.session, self.resource)
        return self._submitters[name]

    def orchestrator(self, job: JobSpec) -> Orchestrator:
        from reproman.plugins.manager import get_plugin_manager

        cls = get_plugin_manager().orchestrator(job.orchestrator).load()
        orchestrator: Orchestrator = cls(self.resource, self.session, job)
        return orchestrator

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
