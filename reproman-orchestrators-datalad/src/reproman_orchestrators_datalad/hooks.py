"""Entry point module: registers this distribution's orchestrators (cheap to import).

Only records are built here; the orchestrator classes (and DataLad, which
they run as a command) load when a job uses them.
"""

from __future__ import annotations

from reproman.plugins import OrchestratorType, hookimpl

_PACKAGE = "reproman_orchestrators_datalad"


@hookimpl
def reproman_orchestrators() -> list[OrchestratorType]:
    return [
        OrchestratorType(
            name="datalad-pair",
            description="Run in a clone of the dataset on the resource; merge the commit it makes",
            factory=f"{_PACKAGE}.pair:PairOrchestrator",
        ),
        OrchestratorType(
            name="datalad-pair-run",
            description="Like datalad-pair, but commit the results locally as a 'datalad run' record",
            factory=f"{_PACKAGE}.pair:PairRunOrchestrator",
        ),
        OrchestratorType(
            name="datalad-no-remote",
            description="Run in the dataset itself (local shell, or a resource sharing its file system)",
            factory=f"{_PACKAGE}.no_remote:NoRemoteOrchestrator",
        ),
        OrchestratorType(
            name="datalad-local-run",
            description="Plain directory on the resource (no DataLad there); 'datalad run' record here",
            factory=f"{_PACKAGE}.local_run:LocalRunOrchestrator",
        ),
    ]
