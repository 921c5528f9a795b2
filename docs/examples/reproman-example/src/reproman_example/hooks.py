"""What the plugin registers: cheap to import, so implementations are named by import path."""

from __future__ import annotations

from reproman.plugins import (
    OrchestratorType,
    Parameter,
    ResourceType,
    SessionType,
    SubmitterType,
    TracerType,
    hookimpl,
)


@hookimpl
def reproman_resource_types() -> list[ResourceType]:
    return [
        ResourceType(
            name="local-dir",
            description="A directory of this machine: commands run in it, relative paths resolve in it",
            factory="reproman_example.resource:LocalDirResource",
            parameters=(
                Parameter(name="path", doc="The directory (made absolute at create)", required=True),
                Parameter(name="make", doc="Create the directory if it does not exist", type="bool", default=False),
            ),
        )
    ]


@hookimpl
def reproman_session_types() -> list[SessionType]:
    return [
        SessionType(
            name="local-dir",
            description="/bin/sh and file copies inside one local directory",
            factory="reproman_example.session:LocalDirSession",
        )
    ]


@hookimpl
def reproman_submitters() -> list[SubmitterType]:
    return [
        SubmitterType(
            name="serial",
            description="Run the subjobs one after another, in index order, detached",
            factory="reproman_example.submitter:SerialSubmitter",
        )
    ]


@hookimpl
def reproman_orchestrators() -> list[OrchestratorType]:
    return [
        OrchestratorType(
            name="copy",
            description="Copy inputs to a per-job directory and outputs back (the fetch contract, minimal)",
            factory="reproman_example.orchestrator:CopyOrchestrator",
        )
    ]


@hookimpl
def reproman_tracers() -> list[TracerType]:
    return [
        TracerType(
            name="usrlocal",
            description="Files installed by hand under /usr/local (no package manager knows them)",
            factory="reproman_example.tracer:UsrLocalTracer",
            order=90,
            spec_name="usrlocal",
        )
    ]
