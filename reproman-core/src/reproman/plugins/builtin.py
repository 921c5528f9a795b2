"""Core's own components, registered through the same hooks as any plugin."""

from __future__ import annotations

from reproman.plugins.markers import hookimpl
from reproman.plugins.records import (
    OrchestratorType,
    ResourceType,
    SessionType,
    SubmitterType,
    TracerType,
)


@hookimpl
def reproman_resource_types() -> list[ResourceType]:
    return [
        ResourceType(
            name="shell",
            description="This machine, through local processes (the default resource)",
            factory="reproman.resources.shell:ShellResource",
            parameters=(),
        )
    ]


@hookimpl
def reproman_session_types() -> list[SessionType]:
    return [
        SessionType(
            name="shell",
            description="Local /bin/sh and file copies",
            factory="reproman.resources.shell:ShellSession",
        )
    ]


@hookimpl
def reproman_submitters() -> list[SubmitterType]:
    return [
        SubmitterType(
            name="local",
            description="Run subjobs on the resource itself, detached, up to num_processes at once",
            factory="reproman.jobs.local:LocalSubmitter",
            job_parameters=("num_processes",),
        )
    ]


@hookimpl
def reproman_orchestrators() -> list[OrchestratorType]:
    return [
        OrchestratorType(
            name="plain",
            description="Copy inputs to the resource and outputs back, no version control",
            factory="reproman.jobs.plain:PlainOrchestrator",
        )
    ]


@hookimpl
def reproman_tracers() -> list[TracerType]:
    from reproman.tracing.catalog import BUILTIN_TRACERS

    return list(BUILTIN_TRACERS)
