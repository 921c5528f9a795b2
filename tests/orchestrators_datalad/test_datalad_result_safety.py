"""Core's orchestrator contract (the result-safety suite included) on the DataLad orchestrators (shell resource, a dataset as the project).

DataLad orchestrators land results with git, not with core's landing
rules, and keep the same promises. Where they differ, by design, the
overrides below say how:

* "nothing changed" is checked on the work tree: fetching a job's commits
  and annexed content writes into ``.git`` (and git-annex tidies its own
  temporary directories there);
* a local edit made while the job ran is not kept beside a fetched copy:
  the fetch is refused, naming the file, and the job's version waits
  (datalad-pair: on ``refs/reproman/<jobid>``; datalad-local-run: on the
  resource) until the user saves or moves the edit;
* DataLad cannot save file names that are not valid UTF-8: such a job is
  refused with the names, and its results stay on the resource.

``datalad-no-remote`` runs the command in the user's dataset itself, so
there is no fetch to check; ``datalad-pair-run`` lands exactly as
``datalad-pair``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from datalad_testlib import sh

import reproman.testing.result_safety as suite
from reproman.jobs.commands import jobs
from reproman.testing.orchestrator_contract import OrchestratorContract
from reproman_orchestrators_datalad.testing import datalad_command

_snapshot = suite.snapshot


def _work_tree_snapshot(root: Path, *, skip: tuple[str, ...] = (".reproman",)) -> dict[str, tuple[str, bytes]]:
    if root.name == ".git":
        return {k: v for k, v in _snapshot(root, skip=skip).items()
                if not (k.startswith("annex/") and "tmp" in k.split("/")[1])}
    return _snapshot(root, skip=(*skip, ".git"))


class DataladResultSafety(OrchestratorContract):
    batch_outputs = 50
    #: datalad-pair runs jobs in the dataset's clone on the resource, which every job of the dataset reuses.
    per_job_working_directory = False
    #: Each records the job itself and lets the clone go on delete (other jobs need it free).
    keeps_unfetched_results = False

    @pytest.fixture(autouse=True)
    def _datalad(self, datalad_tools: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        """DataLad, git-annex, a git identity (the suite moves HOME) and the work-tree snapshot."""
        monkeypatch.setattr(suite, "snapshot", _work_tree_snapshot)
        yield

    @pytest.fixture
    def job_parameters(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"root_directory": str(tmp_path / "resource-root")}

    def make_project(self, path: Path) -> None:
        sh(path, datalad_command(), "create", "--force", ".")

    def commit(self, project: Path, message: str) -> None:
        sh(project, datalad_command(), "save", "-r", "-m", message)

    #: What the refusal of a fetch over a local edit says (the dataset must be clean for local-run).
    edit_refusal = "{path} has unsaved changes here"

    def test_output_edited_locally_after_submission_is_kept(self, project: Path, runner: Any) -> None:
        (project / "out.txt").write_text("before\n")
        self.commit(project, "an output that exists before the job")
        result = runner("sleep 2; echo job > out.txt", outputs=["out.txt"])
        sh(project, datalad_command(), "unlock", "out.txt")
        (project / "out.txt").write_text("my edit while the job ran\n")
        self.wait(result)
        (row,) = jobs([result.job.jobid], action="fetch")
        assert self.edit_refusal.format(path=project / "out.txt") in row.get("error", ""), row
        assert (project / "out.txt").read_text() == "my edit while the job ran\n"
        # Moved aside (out of the dataset), the job's version comes in; the edit is where the user put it.
        (project / "out.txt").rename(project.parent / "mine.txt")
        sh(project, "git", "checkout", "HEAD", "--", "out.txt")
        (row,) = jobs([result.job.jobid], action="fetch")
        assert row.get("fetched"), row
        assert (project / "out.txt").read_text() == "job\n"
        assert (project.parent / "mine.txt").read_text() == "my edit while the job ran\n"

    def test_binary_output_with_a_non_utf8_name_is_byte_exact(self, project: Path, runner: Any) -> None:
        result = runner("mkdir -p bin && printf 'a\\000\\377\\376z' > bin/resultat.bin", outputs=["bin"], follow=True)
        assert result.ok
        assert (project / "bin" / "resultat.bin").read_bytes() == b"a\x00\xff\xfez"
        head = sh(project, "git", "rev-parse", "HEAD").stdout
        job = runner("mkdir -p bin && printf 'x' > bin/\"$(printf 'r\\351sultat-\\377.bin')\"", outputs=["bin"])
        self.wait(job)
        (row,) = jobs([job.job.jobid], action="fetch")
        assert "file names that are not valid UTF-8, which DataLad cannot save" in row.get("error", ""), row
        assert "r\\xe9sultat-\\xff.bin" in row["error"]  # the bytes, not Python surrogates
        assert sh(project, "git", "rev-parse", "HEAD").stdout == head
        assert sorted(p.name for p in (project / "bin").iterdir()) == ["resultat.bin"]


class TestPairResultSafety(DataladResultSafety):
    @pytest.fixture
    def orchestrator(self) -> str:
        return "datalad-pair"

    def test_file_over_local_directory_is_refused_with_nothing_changed(self, project: Path, runner: Any) -> None:
        """As core's, but the refused job keeps the clone (trial R, 1): it is deleted before the second job."""
        from reproman.errors import OutputConflictError

        (project / "out.txt").mkdir()
        (project / "out.txt" / "inside.txt").write_text("keep\n")
        (project / "other.txt").write_text("untouched\n")
        self.commit(project, "a directory where the job writes a file")
        before = suite.snapshot(project)
        result = runner("rm -rf out.txt; echo file > out.txt; echo changed > other.txt",
                        outputs=["out.txt", "other.txt"])
        self.wait(result)
        (row,) = jobs([result.job.jobid], action="fetch")
        assert "is a directory here" in row.get("error", ""), row
        assert str(project / "out.txt") in row["error"]
        assert suite.snapshot(project) == before
        with pytest.raises(Exception, match=f"in use by job\\(s\\) {result.job.jobid}"):
            runner("true", follow=True)
        jobs([result.job.jobid], action="delete")
        with pytest.raises(OutputConflictError):
            runner("rm -rf out.txt; echo file > out.txt", outputs=["out.txt"], follow=True)
        assert suite.snapshot(project) == before


class TestLocalRunResultSafety(DataladResultSafety):
    edit_refusal = "{path.parent} has unsaved changes (out.txt)"
    # Each job runs in a clone of its own, made for it and removed after its fetch.
    per_job_working_directory = True

    @pytest.fixture
    def orchestrator(self) -> str:
        return "datalad-local-run"
