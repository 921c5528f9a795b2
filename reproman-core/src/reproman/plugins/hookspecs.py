"""Hook specifications: the whole contract between ReproMan core and plugins.

Every registration hook is called once, when core first needs the registry,
with no arguments, and returns a list of records (see
:mod:`reproman.plugins.records`). Core collects the records of all plugins,
stamps each with the distribution that registered it, rejects duplicate
names and selects components by name. No hook is ``firstresult``.

A plugin is a module named by an entry point in the ``reproman`` group::

    [project.entry-points.reproman]
    mybackend = "reproman_mybackend.hooks"

and that module implements any subset of the hooks below with
``@reproman.plugins.hookimpl``. Keep that module cheap to import: refer to
implementations by import path, never import an SDK at module level.
Everything a plugin needs comes from :mod:`reproman.plugins`, the records
included (``from reproman.plugins import hookimpl, ResourceType``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reproman.plugins.markers import hookspec

if TYPE_CHECKING:
    from reproman.plugins.records import (
        OrchestratorType,
        ResourceType,
        SessionType,
        SubmitterType,
        TracerType,
    )


class ReproManHookSpecs:
    """Namespace for the hook specifications (pluggy reads the methods)."""

    @hookspec
    def reproman_resource_types(self) -> list[ResourceType]:  # type: ignore[empty-body]
        """Register resource types.

        Called when core builds the registry (on ``create``, ``ls --refresh``,
        ``backend-parameters``, ``plugins`` and any command that opens a
        resource). Return one :class:`ResourceType` per type; its parameters
        are what ``reproman create -b KEY=VALUE`` accepts and validates. The
        factory names a :class:`reproman.plugins.Resource` subclass.

        Example::

            @hookimpl
            def reproman_resource_types():
                return [ResourceType(
                    name="toy",
                    description="A resource for the docs",
                    factory="reproman_toy.resource:ToyResource",
                    parameters=(Parameter(name="size", doc="How big", type="int", default=1),),
                )]
        """

    @hookspec
    def reproman_session_types(self) -> list[SessionType]:  # type: ignore[empty-body]
        """Register session types that other plugins may reuse by name.

        Called when a component asks :func:`reproman.plugins.session_class`
        for one, e.g. when the AWS backend needs an SSH session to an
        instance. Return :class:`SessionType` records whose factory names a
        :class:`reproman.plugins.Session` subclass.

        Example::

            @hookimpl
            def reproman_session_types():
                return [SessionType(name="ssh", description="SSH via Fabric",
                                    factory="reproman_backend_ssh.session:SSHSession")]
        """

    @hookspec
    def reproman_submitters(self) -> list[SubmitterType]:  # type: ignore[empty-body]
        """Register submitters.

        Called when ``reproman run`` or ``reproman jobs`` needs a submitter,
        and by ``run --list``. The factory names a
        :class:`reproman.plugins.Submitter` subclass. List the job
        parameters the submitter maps to scheduler directives in
        ``job_parameters``: core's by name, its own as typed
        :class:`~reproman.plugins.Parameter` records (shown by ``run
        --list``, validated and converted by core); core rejects others.

        Example::

            @hookimpl
            def reproman_submitters():
                return [SubmitterType(name="slurm", description="Slurm arrays via sbatch",
                                      factory="reproman_submitters.slurm:SlurmSubmitter",
                                      job_parameters=("memory", "walltime", "queue",
                                                      Parameter(name="nice", type="int", minimum=0,
                                                                doc="Scheduling priority adjustment")))]
        """

    @hookspec
    def reproman_orchestrators(self) -> list[OrchestratorType]:  # type: ignore[empty-body]
        """Register orchestrators.

        Called when ``reproman run`` or ``reproman jobs fetch`` needs an
        orchestrator, and by ``run --list``. The factory names a
        :class:`reproman.plugins.Orchestrator` subclass.

        Example::

            @hookimpl
            def reproman_orchestrators():
                return [OrchestratorType(name="datalad-pair", description="...",
                                         factory="reproman_orchestrators_datalad.pair:PairOrchestrator")]
        """

    @hookspec
    def reproman_tracers(self) -> list[TracerType]:  # type: ignore[empty-body]
        """Register distribution tracers.

        Called by ``retrace``, ``diff`` and ``install``. The factory names a
        :class:`reproman.plugins.Tracer` subclass; ``order`` decides
        which tracer sees the files first and ``spec_name`` (default: the
        tracer's name) is the distribution name it writes into specs.

        Example::

            @hookimpl
            def reproman_tracers():
                return [TracerType(name="nix", description="Nix store paths",
                                   factory="reproman_nix.tracer:NixTracer", order=50)]
        """
