"""The result-safety suite: what every resource and orchestrator must do with a user's files.

It starts from what users already have - files in the output directory, a
git repository in the working directory, a local edit made while the job
ran, binary output with a non-UTF-8 name - and checks that fetching results
merges, never deletes, never turns a directory into a file, and never
overwrites an edit. Use it by subclassing in a backend's or orchestrator's
tests::

    from reproman.testing.result_safety import ResultSafetyContract

    class TestMyBackendResults(ResultSafetyContract):
        @pytest.fixture
        def resref(self):
            ...  # create the resource in the (test's) inventory, yield its name

Fixtures a subclass may override: ``resref`` (default: the local resource),
``orchestrator`` (default ``plain``), ``submitter`` (default ``local``) and
``job_parameters``. :meth:`ResultSafetyContract.make_project` prepares the
user's working directory (a DataLad suite makes it a dataset there).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reproman.errors import OutputConflictError, ReproManError
from reproman.jobs.commands import RunResult, jobs, run
from reproman.jobs.registry import Registry


def snapshot(root: Path, *, skip: tuple[str, ...] = (".reproman",)) -> dict[str, tuple[str, bytes]]:
    """Every path under ``root`` (but ``skip``) with its kind and content."""
    found: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir.split(os.sep)[0] in skip:
            continue
        for name in dirnames:
            found[os.path.normpath(os.path.join(rel_dir, name))] = ("dir", b"")
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                found[os.path.normpath(os.path.join(rel_dir, name))] = ("link", os.fsencode(os.readlink(path)))
            else:
                found[os.path.normpath(os.path.join(rel_dir, name))] = ("file", Path(path).read_bytes())
    return found


class ResultSafetyContract:
    """Results never lost or altered, and local files never lost, whatever the resource."""

    #: Subjobs (one output each) in the many-outputs test.
    batch_outputs = 200

    # -- fixtures a subclass may override ---------------------------------------
    @pytest.fixture
    def resref(self) -> str | None:
        return None

    @pytest.fixture
    def orchestrator(self) -> str:
        return "plain"

    @pytest.fixture
    def submitter(self) -> str:
        return "local"

    @pytest.fixture
    def job_parameters(self) -> Mapping[str, Any]:
        return {}

    def make_project(self, path: Path) -> None:
        """Prepare the user's working directory (already created, and the current directory)."""

    def commit(self, project: Path, message: str) -> None:
        """Record the project's state where the orchestrator needs it (a DataLad suite saves)."""

    @pytest.fixture
    def project(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resref: str | None) -> Iterator[Path]:
        if resref is None:
            home = tmp_path / "home"
            home.mkdir()
            monkeypatch.setenv("HOME", str(home))
        path = tmp_path / "project"
        path.mkdir()
        monkeypatch.chdir(path)
        self.make_project(path)
        yield path

    @pytest.fixture
    def runner(self, resref: str | None, orchestrator: str, submitter: str,
               job_parameters: Mapping[str, Any]) -> Any:
        def go(command: str, **kwargs: Any) -> RunResult:
            result = run(command=command, resref=resref, orchestrator=orchestrator, submitter=submitter,
                         job_parameters=dict(job_parameters) or None, **kwargs)
            assert isinstance(result, RunResult)
            return result
        return go

    # -- the cases ---------------------------------------------------------------
    def test_files_already_in_the_output_directory_survive(self, project: Path, runner: Any) -> None:
        (project / "res").mkdir()
        (project / "res" / "keep.me").write_text("precious\n")
        (project / "res" / "sub").mkdir()
        (project / "res" / "sub" / "mine.txt").write_text("mine\n")
        self.commit(project, "existing results")
        result = runner("mkdir -p res/sub && echo new > res/a.txt && echo job > res/sub/job.txt",
                        outputs=["res"], follow=True)
        assert result.ok
        assert (project / "res" / "keep.me").read_text() == "precious\n"
        assert (project / "res" / "sub" / "mine.txt").read_text() == "mine\n"
        assert (project / "res" / "a.txt").read_text() == "new\n"
        assert (project / "res" / "sub" / "job.txt").read_text() == "job\n"

    def test_dot_output_merges_and_keeps_git(self, project: Path, runner: Any) -> None:
        if not (project / ".git").exists():
            subprocess.run(["git", "init", "-q"], cwd=project, check=True)
        (project / "notes.txt").write_text("my notes\n")
        self.commit(project, "notes")
        git_before = snapshot(project / ".git", skip=())
        result = runner("echo made > made.txt", outputs=["."], follow=True)
        assert result.ok
        assert (project / "made.txt").read_text() == "made\n"
        assert (project / "notes.txt").read_text() == "my notes\n"
        git_after = snapshot(project / ".git", skip=())
        # The job may add commits (DataLad records it); it never removes what was there.
        assert set(git_before) <= set(git_after)
        assert subprocess.run(["git", "rev-parse", "--git-dir"], cwd=project, capture_output=True).returncode == 0

    def test_file_over_local_directory_is_refused_with_nothing_changed(self, project: Path, runner: Any) -> None:
        (project / "out.txt").mkdir()
        (project / "out.txt" / "inside.txt").write_text("keep\n")
        (project / "other.txt").write_text("untouched\n")
        self.commit(project, "a directory where the job writes a file")
        before = snapshot(project)
        result = runner("rm -rf out.txt; echo file > out.txt; echo changed > other.txt",
                        outputs=["out.txt", "other.txt"])
        self.wait(result)
        (row,) = jobs([result.job.jobid], action="fetch")
        assert "is a directory here" in row.get("error", ""), row
        assert str(project / "out.txt") in row["error"]
        assert snapshot(project) == before
        assert Registry().load(result.job.jobid).status != "fetched"
        # Followed jobs say the same, as an error.
        with pytest.raises(OutputConflictError):
            runner("rm -rf out.txt; echo file > out.txt", outputs=["out.txt"], follow=True)
        assert snapshot(project) == before

    def test_output_edited_locally_after_submission_is_kept(self, project: Path, runner: Any) -> None:
        (project / "out.txt").write_text("before\n")
        self.commit(project, "an output that exists before the job")
        result = runner("sleep 2; echo job > out.txt", outputs=["out.txt"])
        (project / "out.txt").write_text("my edit while the job ran\n")
        self.wait(result)
        rows = self.fetch(result.job.jobid)
        assert (project / "out.txt").read_text() == "my edit while the job ran\n"
        self.assert_job_version_kept(project, result.job.jobid, rows, "out.txt", "job\n")
        self.overwrite(project, result.job.jobid, rows)
        assert (project / "out.txt").read_text() == "job\n"

    def test_binary_output_with_a_non_utf8_name_is_byte_exact(self, project: Path, runner: Any) -> None:
        name = b"r\xe9sultat-\xff.bin".decode("utf-8", "surrogateescape")
        result = runner("mkdir -p bin && printf 'a\\000\\377\\376z' > bin/\"$(printf 'r\\351sultat-\\377.bin')\"",
                        outputs=["bin"], follow=True)
        assert result.ok
        assert os.listdir(os.fsencode(project / "bin")) == [os.fsencode(name)]
        assert (project / "bin" / name).read_bytes() == b"a\x00\xff\xfez"

    def test_many_per_subjob_outputs(self, project: Path, runner: Any) -> None:
        n = self.batch_outputs
        result = runner("mkdir -p out && printf '%s\\n' {p[i]} > out/{p[i]}.txt",
                        batch_parameters={"i": [str(i) for i in range(n)]},
                        outputs=["out/{p[i]}.txt"], follow=True)
        assert result.ok, result.status.summary() if result.status else None
        files = sorted(os.listdir(project / "out"))
        assert len(files) == n
        assert (project / "out" / f"{n - 1}.txt").read_text() == f"{n - 1}\n"

    def test_a_link_made_by_a_job_is_never_a_way_out(self, project: Path, runner: Any) -> None:
        """A job's output may be a symbolic link; a later fetch must not write through it."""
        victim = project.parent / "victim"
        victim.mkdir()
        (victim / "f.txt").write_text("precious\n")
        first = runner(f"ln -s {victim} res", outputs=["res"], follow=True)
        assert first.ok
        assert os.readlink(project / "res") == str(victim)  # links arrive as links
        self.commit(project, "the first job's link")
        try:
            runner("rm -f res; mkdir res; echo clobbered > res/f.txt", outputs=["res"], follow=True)
        except ReproManError:
            pass  # refusing is right; writing through the link is not
        assert (victim / "f.txt").read_text() == "precious\n"
        assert os.listdir(victim) == ["f.txt"]

    def test_a_local_link_into_git_is_not_a_way_in(self, project: Path, runner: Any) -> None:
        if not (project / ".git").exists():
            subprocess.run(["git", "init", "-q"], cwd=project, check=True)
        (project / "gitlink").symlink_to(".git")
        self.commit(project, "a link to .git")
        head = (project / ".git" / "HEAD").read_bytes()
        try:
            runner("rm -f gitlink; mkdir gitlink; echo 'ref: refs/heads/evil' > gitlink/HEAD",
                   outputs=["gitlink/HEAD"], follow=True)
        except ReproManError:
            pass
        assert (project / ".git" / "HEAD").read_bytes() == head

    def test_dot_output_never_rewrites_the_records_of_earlier_jobs(self, project: Path, runner: Any) -> None:
        first = runner("echo one > one.txt", outputs=["."], follow=True)
        assert first.ok
        records = project / ".reproman" / "jobs"
        before = snapshot(records, skip=())
        assert any(name.endswith("spec.yaml") for name in before), before
        self.commit(project, "the first job")
        victim = f".reproman/jobs/{first.job.resource_name}/{first.job.jobid}/spec.yaml"
        second = runner(f"mkdir -p {os.path.dirname(victim)} && echo hacked > {victim} && echo two > two.txt",
                        outputs=["."], follow=True)
        assert second.ok
        assert (project / "two.txt").read_text() == "two\n"
        after = snapshot(records, skip=())
        assert {k: v for k, v in after.items() if first.job.jobid in k} == \
               {k: v for k, v in before.items() if first.job.jobid in k}

    # -- steps a subclass may adapt ------------------------------------------------
    def wait(self, result: RunResult, timeout: float = 300) -> None:
        """Wait until the job finished on the resource, without fetching it."""
        from reproman.jobs.connection import Connection
        from reproman.jobs.follow import follow

        with Connection.open(result.job.resource_name) as connection:
            status = follow(connection, result.job, timeout=timeout)
        assert status.finished

    def fetch(self, jobid: str, **kwargs: Any) -> list[dict[str, Any]]:
        rows = jobs([jobid], action="fetch", **kwargs)
        errors = [r["error"] for r in rows if r.get("error")]
        assert not errors, errors
        return rows

    def assert_job_version_kept(
        self, project: Path, jobid: str, rows: list[dict[str, Any]], output: str, content: str
    ) -> None:
        """The job's version of an edited output is kept where the fetch said, and says so."""
        (row,) = rows
        kept = {Path(k["local"]).name: Path(k["fetched"]) for k in row.get("kept", [])}
        assert output in kept, row
        assert kept[output].read_text() == content
        assert project in kept[output].parents

    def overwrite(self, project: Path, jobid: str, rows: list[dict[str, Any]]) -> None:
        """Ask for the job's version explicitly."""
        self.fetch(jobid, overwrite=True)
