"""The contract every orchestrator must pass: prepare, fetch under the result-safety rules, cleanup, abandon.

:class:`OrchestratorContract` is the result-safety suite
(:class:`~reproman.testing.result_safety.ResultSafetyContract`: fetching
merges, never deletes, never overwrites an edit) plus what an orchestrator
does around it: inputs staged where the command runs, what the job staged
on the resource removed after the fetch (kept with ``keep_remote``, never
what other jobs reuse), and a finished job deleted before it was fetched
leaves what it wrote on the resource (its results' only copy) and the user's files alone. Subclass it instead
of the result-safety suite, with the same fixtures and steps::

    from reproman.testing.orchestrator_contract import OrchestratorContract

    class TestMyOrchestrator(OrchestratorContract):
        per_job_working_directory = False   # it runs in a clone every job shares

        @pytest.fixture
        def orchestrator(self):
            return "mything"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reproman.jobs import commands as job_commands
from reproman.jobs.registry import Registry
from reproman.resources import commands as resource_commands
from reproman.resources.session import CommandResult
from reproman.testing.result_safety import ResultSafetyContract, snapshot


class OrchestratorContract(ResultSafetyContract):
    """Result safety, plus staging, cleanup and abandon."""

    #: Each job runs in a directory of its own that the orchestrator made (plain); False when jobs share one
    #: (a DataLad clone), which cleanup must then leave in place.
    per_job_working_directory: bool = True
    #: A finished job deleted before any fetch keeps what it wrote on the resource (core does this for
    #: orchestrators that leave recording to core). False for one that records jobs itself and
    #: releases its working copy on delete (a DataLad clone other jobs need), then checked to do so.
    keeps_unfetched_results: bool = True

    def exists_on_resource(self, resref: str | None, path: str) -> bool:
        result = resource_commands.execute("test", ["-e", path], resref=resref)
        assert isinstance(result, CommandResult), result
        return result.returncode == 0

    def test_inputs_are_staged_where_the_command_runs(self, project: Path, runner: Any) -> None:
        (project / "in dir").mkdir()
        (project / "in dir" / "in.txt").write_text("staged input\n")
        self.commit(project, "an input")
        result = runner("tr a-z A-Z < 'in dir/in.txt' > out.txt", inputs=["in dir/in.txt"], outputs=["out.txt"],
                        follow=True)
        assert result.ok, result.status.summary() if result.status else None
        assert (project / "out.txt").read_text() == "STAGED INPUT\n"
        assert (project / "in dir" / "in.txt").read_text() == "staged input\n"

    def test_fetch_removes_what_the_job_staged_unless_kept(self, project: Path, runner: Any,
                                                           resref: str | None) -> None:
        kept = runner("echo kept > kept.txt", outputs=["kept.txt"], follow=True, keep_remote=True)
        assert kept.ok and (project / "kept.txt").read_text() == "kept\n"
        assert self.exists_on_resource(resref, kept.job.working_directory), "keep_remote, yet staged files gone"
        done = runner("echo done > done.txt", outputs=["done.txt"], follow=True)
        assert done.ok and (project / "done.txt").read_text() == "done\n"
        there = self.exists_on_resource(resref, done.job.working_directory)
        if self.per_job_working_directory:
            assert not there, f"the job's working directory {done.job.working_directory} outlived its fetch"
        else:
            assert there, f"cleanup removed {done.job.working_directory}, which other jobs share"

    def test_deleting_an_unfetched_job_keeps_its_results_and_local_files(self, project: Path, runner: Any,
                                                                         resref: str | None) -> None:
        """A job never fetched: what it wrote on the resource may be the only copy of its results."""
        (project / "mine.txt").write_text("mine\n")
        self.commit(project, "a file of the user's")
        result = runner("echo never fetched > out.txt", outputs=["out.txt"])
        self.wait(result)
        before = snapshot(project)
        (row,) = job_commands.jobs([result.job.jobid], action="delete")
        assert not row.get("error"), row
        if self.keeps_unfetched_results:
            assert row.get("kept_results") == result.job.working_directory, row
            assert self.exists_on_resource(resref, result.job.working_directory), "deleting the record lost results"
        else:
            assert not self.exists_on_resource(resref, result.job.job_dir), "the job directory outlived its deletion"
        assert snapshot(project) == before
        assert not (project / "out.txt").exists()
        assert result.job.jobid not in [getattr(e, "jobid", None) for e in Registry().entries()]
