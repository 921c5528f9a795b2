"""What a job staged on the resource is freed, and never a dataset or clone later jobs use.

Core calls ``Orchestrator.cleanup()`` after a successful fetch unless the
user keeps the job's files (``keep_remote``), and on ``jobs --delete``
(which also removes the job directory itself). The first test goes through
those core calls; the others call ``cleanup()`` on the orchestrator core
would build for the job (:meth:`Connection.orchestrator`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from datalad_testlib import ORCHESTRATORS, run_job

from reproman import api
from reproman.errors import SessionError
from reproman.jobs.connection import Connection
from reproman_orchestrators_datalad import testing as yoda
from reproman_orchestrators_datalad.base import DataladOrchestrator

COUNT = "sh code/count.sh inputs/s02.csv outputs/derived/c.txt"
INPUTS = [yoda.CODE, "inputs/s02.csv"]
OUTPUTS = ["outputs/derived/c.txt"]


def _orchestrator(job: Any) -> tuple[Connection, DataladOrchestrator]:
    connection = Connection.open(job.resource_name)
    orchestrator = connection.orchestrator(job)
    assert isinstance(orchestrator, DataladOrchestrator)
    return connection, orchestrator


def _staged(root: Path, job: Any) -> list[str]:
    """Files of ``job`` under the resource root, apart from its job directory (core's) and a pair clone."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == job.extra.get("dataset_id") or Path(job.job_dir) in (path, *path.parents):
            continue
        if job.jobid in rel.parts and path.is_file():
            found.append(str(rel))
    return found


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_fetch_frees_what_the_job_staged_unless_kept(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    kept = run_job(root, orchestrator, COUNT, inputs=INPUTS, outputs=OUTPUTS, keep_remote=True)
    if orchestrator == "datalad-local-run":
        # Kept: the staged input, as big as the real one, and the stamp are still there.
        assert (Path(kept.job.working_directory) / "inputs" / "s02.csv").is_file()
        assert _staged(root, kept.job)
    freed = run_job(root, orchestrator, "sh code/count.sh inputs/s02.csv outputs/derived/d.txt", inputs=INPUTS,
                    outputs=["outputs/derived/d.txt"])
    assert freed.job.extra.get("remote_released")
    assert _staged(root, freed.job) == []
    if orchestrator.startswith("datalad-pair"):
        # The clone stays for later jobs, released: the next job reuses it and sends nothing twice.
        clone = Path(freed.job.working_directory)
        assert (clone / ".git").is_dir() and not any((clone / ".git" / "reproman" / "active").iterdir())
        assert freed.job.working_directory == kept.job.working_directory and freed.job.extra["shipped_keys"] == 0
    # Deleting the job removes the rest (core removes the job directory).
    api.jobs([freed.job.jobid], action="delete")
    assert not Path(freed.job.job_dir).exists()
    assert yoda.rows(yoda_ds / "outputs" / "derived" / "d.txt") == yoda.expected_rows("s02")
    yoda.assert_clean(yoda_ds)


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_cleanup_removes_only_the_jobs_files_and_can_run_twice(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    result = run_job(root, orchestrator, COUNT, inputs=INPUTS, outputs=OUTPUTS, keep_remote=True)
    connection, orchestrator_ = _orchestrator(result.job)
    with connection:
        orchestrator_.cleanup()
        orchestrator_.cleanup()  # again: nothing left, no error
    assert _staged(root, result.job) == []
    assert Path(result.job.job_dir, "status.0").is_file()  # the job directory is core's to remove
    if orchestrator == "datalad-no-remote":
        assert (yoda_ds / ".git").is_dir() and not any((yoda_ds / ".git" / "reproman" / "active").iterdir())
    yoda.assert_clean(yoda_ds)


def test_local_run_keeps_a_working_directory_the_user_chose(yoda_ds: Path, root: Path, tmp_path: Path) -> None:
    chosen = tmp_path / "my-workdir"
    result = api.run(command=COUNT, orchestrator="datalad-local-run", inputs=INPUTS, outputs=OUTPUTS,
                     job_parameters=[f"root_directory={root}", f"working_directory={chosen}"], follow=True)
    assert result.ok and result.job.extra.get("remote_released")
    assert (chosen / "outputs" / "derived" / "c.txt").is_file()
    assert not (root / ".reproman" / "datalad-stamps" / result.job.jobid).exists()


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_cleanup_on_a_resource_that_is_gone_does_not_raise(
    yoda_ds: Path, root: Path, orchestrator: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault injection: a session whose every command fails as an unreachable resource's would."""
    result = run_job(root, orchestrator, COUNT, inputs=INPUTS, outputs=OUTPUTS, keep_remote=True)
    connection, orchestrator_ = _orchestrator(result.job)

    def gone(*_args: Any, **_kwargs: Any) -> Any:
        raise SessionError("resource unreachable")

    with connection:
        monkeypatch.setattr(connection.session, "execute_command", gone)
        with caplog.at_level(logging.WARNING, logger="reproman"):
            orchestrator_.cleanup()
            orchestrator_.abandon()
    assert "resource unreachable" in caplog.text


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-no-remote"])
def test_deleting_an_unfetched_job_frees_the_dataset(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    first = run_job(root, orchestrator, "true", follow=False)
    rows = api.jobs(action="list", status=True)
    while rows[0].get("summary") != "1 succeeded":
        rows = api.jobs(action="list", status=True)
    assert api.jobs([first.job.jobid], action="delete")[0]["deleted"]
    second = run_job(root, orchestrator, COUNT, inputs=INPUTS, outputs=OUTPUTS)
    assert second.status.ok
    yoda.assert_clean(yoda_ds)
