"""The result-safety suite on the built-in local resource with the plain orchestrator."""

from __future__ import annotations

from reproman.testing.result_safety import ResultSafetyContract


class TestLocalPlainResults(ResultSafetyContract):
    """shell resource, local submitter, plain orchestrator: what `pip install reproman-core` gives."""
