"""The result-safety suite on the built-in local resource with the plain orchestrator."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from reproman.jobs.commands import RunResult, run
from reproman.jobs.registry import Registry
from reproman.testing.result_safety import ResultSafetyContract


class TestLocalPlainResults(ResultSafetyContract):
    """shell resource, local submitter, plain orchestrator: what `pip install reproman-core` gives."""

    def test_a_kept_edit_under_dot_output_is_no_checksum_mismatch(self, project: Path, runner: Any) -> None:
        """``-o .`` names files ``./a.txt``; the kept local edit must not read as a corrupted transfer."""
        (project / "a.txt").write_text("before\n")
        result = runner("sleep 2; echo job > a.txt", outputs=["."])
        (project / "a.txt").write_text("edited while the job ran\n")
        self.wait(result)
        self.fetch(result.job.jobid)
        record = Registry().load(result.job.jobid)
        assert record.extra["verified"]["mismatched"] == []
        assert record.extra["verified"]["matched"] >= 1
        assert record.extra.get("remote_released") is True
        assert (project / "a.txt").read_text() == "edited while the job ran\n"


def test_a_mismatch_keeps_the_files_on_the_resource(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When a fetched file differs from the resource's checksum, the resource's copy is not freed."""
    from reproman.jobs import checksums

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    real_verify = checksums.verify

    def altered(*args: Any, **kwargs: Any) -> checksums.Verification:  # a transfer that changed a file
        found = real_verify(*args, **kwargs)
        return checksums.Verification(matched=[], mismatched=[*found.matched, *found.mismatched], absent=found.absent)

    monkeypatch.setattr(checksums, "verify", altered)
    result = run(command="echo job > out.txt", outputs=["out.txt"], follow=True)
    assert isinstance(result, RunResult)
    record = Registry().load(result.job.jobid)
    assert record.extra["verified"]["mismatched"] == ["out.txt"]
    assert not record.extra.get("remote_released")
    assert os.path.exists(os.path.join(result.job.working_directory, "out.txt"))
