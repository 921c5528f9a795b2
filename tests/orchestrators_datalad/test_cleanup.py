"""``Orchestrator.cleanup()`` frees what a job staged on the resource, and never a dataset later jobs use.

Core calls ``cleanup()`` after a successful fetch (unless ``--keep-remote``)
and from ``jobs --delete``; these tests call it through the orchestrator
core would build for the job (:meth:`Connection.orchestrator`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from datalad_testlib import ORCHESTRATORS, fetch_when_done, git, run_job

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


def _leftovers(root: Path) -> list[str]:
    """Everything under the resource root except the pair clones (named by dataset id)."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] != ".reproman" and len(rel.parts[0]) == 36:
            continue  # <root>/<dataset id>: the clone datalad-pair reuses
        if path.is_file():
            found.append(str(rel))
    return found


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_cleanup_after_fetch_leaves_nothing_of_the_job(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    result = run_job(root, orchestrator, COUNT, inputs=INPUTS, outputs=OUTPUTS)
    job = result.job
    assert Path(job.job_dir).is_dir()
    if orchestrator == "datalad-local-run":
        staged = Path(job.working_directory) / "inputs" / "s02.csv"
        assert staged.is_file()  # the staged input, as big as the real one
    connection, orchestrator_ = _orchestrator(job)
    with connection:
        orchestrator_.cleanup()
        orchestrator_.cleanup()  # again: nothing left, no error
    assert _leftovers(root) == []
    assert not Path(job.job_dir).exists()
    if orchestrator.startswith("datalad-pair"):
        # The clone stays for later jobs, released: the next job reuses it and sends nothing twice.
        clone = Path(job.working_directory)
        assert (clone / ".git").is_dir() and not any((clone / ".git" / "reproman" / "active").iterdir())
        again = run_job(root, orchestrator, "sh code/count.sh inputs/s02.csv outputs/derived/d.txt",
                        inputs=INPUTS, outputs=["outputs/derived/d.txt"])
        assert again.status.ok and again.job.working_directory == job.working_directory
        assert again.job.extra["shipped_keys"] == 0
    # The results and the local dataset are untouched.
    assert yoda.rows(yoda_ds / "outputs" / "derived" / "c.txt") == yoda.expected_rows("s02")
    yoda.assert_clean(yoda_ds)


def test_local_run_keeps_a_working_directory_the_user_chose(yoda_ds: Path, root: Path, tmp_path: Path) -> None:
    from reproman import api

    chosen = tmp_path / "my-workdir"
    result = api.run(command=COUNT, orchestrator="datalad-local-run", inputs=INPUTS, outputs=OUTPUTS,
                     job_parameters=[f"root_directory={root}", f"working_directory={chosen}"], follow=True)
    assert result.status.ok
    connection, orchestrator = _orchestrator(result.job)
    with connection:
        orchestrator.cleanup()
    assert (chosen / "outputs" / "derived" / "c.txt").is_file()
    assert not Path(result.job.job_dir).exists()


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_cleanup_on_a_resource_that_is_gone_does_not_raise(
    yoda_ds: Path, root: Path, orchestrator: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault injection: a session whose every command fails as an unreachable resource's would."""
    result = run_job(root, orchestrator, COUNT, inputs=INPUTS, outputs=OUTPUTS)
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
    api.jobs([first.job.jobid], action="delete")
    second = run_job(root, orchestrator, COUNT, inputs=INPUTS, outputs=OUTPUTS)
    assert second.status.ok
    yoda.assert_clean(yoda_ds)


def test_fetch_after_cleanup_of_a_merged_job_changes_nothing(yoda_ds: Path, root: Path) -> None:
    result = run_job(root, "datalad-pair-run", COUNT, inputs=INPUTS, outputs=OUTPUTS)
    connection, orchestrator = _orchestrator(result.job)
    with connection:
        orchestrator.cleanup()
    head = yoda.head(yoda_ds)
    fetch_when_done(result.job.jobid, timeout=2)
    assert yoda.head(yoda_ds) == head and git(yoda_ds, "status", "--porcelain") == ""
