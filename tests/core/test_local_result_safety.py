"""The orchestrator contract (result safety included) on the built-in local resource with the plain orchestrator."""

from __future__ import annotations

from reproman.testing.orchestrator_contract import OrchestratorContract


class TestLocalPlainResults(OrchestratorContract):
    """shell resource, local submitter, plain orchestrator: what `pip install reproman-core` gives."""
