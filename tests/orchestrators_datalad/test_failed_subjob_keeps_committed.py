"""A subjob that did not succeed never commits its output over a file the dataset already had.

Before, every DataLad orchestrator committed a failed subjob's empty or
half-written file over the user's committed result: the branch's current
version became the failure's, with only "(2 of 3 subjobs failed)" in the
subject (the user's version was left in the parent commit only). Now the
commit keeps the dataset's version, the failure's goes into the job record
(``failed-outputs/``, committed with it), the commit message names each kept
file, and core warns once per file as for the ``plain`` orchestrator.

Real DataLad and git-annex, the local shell resource, the CLI as a user runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datalad_testlib import ORCHESTRATORS, body, clean, git, run_job, sh

from reproman.jobs.registry import Registry
from reproman.testing.cli import run_cli

#: Every subjob truncates its output first; only i=1 then writes a result (core's trial O command).
PARTIAL = "mkdir -p o; : > o/{p[i]}; test {p[i]} = 1 || exit 1; echo new > o/{p[i]}"


def _kept_copy(ds: Path, jobid: str, rel: str) -> Path:
    return ds / ".reproman" / "jobs" / "local" / jobid / "failed-outputs" / rel


def _committed_results(ds: Path) -> None:
    (ds / "o").mkdir()
    for i in (1, 2, 3):
        (ds / "o" / str(i)).write_text(f"good result {i}\n")
    sh(ds, "datalad", "save", "-m", "the user's results")


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_failed_subjobs_do_not_commit_over_the_users_results(dataset: Path, root: Path, orchestrator: str) -> None:
    _committed_results(dataset)
    before = git(dataset, "rev-parse", "HEAD")
    result = run_cli(["run", "--follow", "--orc", orchestrator, "--jp", f"root_directory={root}",
                      "--bp", "i=1..3", "-o", "o/{p[i]}", "sh", "-c", PARTIAL])
    assert result.returncode == 1, result.stderr
    jobid = result.stdout.split()[0]
    assert (dataset / "o" / "1").read_text() == "new\n", "a succeeded subjob's output is committed as before"
    for i in (2, 3):
        assert (dataset / "o" / str(i)).read_text() == f"good result {i}\n", result.stderr
        assert _kept_copy(dataset, jobid, f"o/{i}").read_bytes() == b"", "the failed subjob's version is kept"
    # The job's commit changes o/1 only, and holds the failures' versions in its record.
    assert git(dataset, "diff", "--name-only", before, "HEAD", "--", "o").splitlines() == ["o/1"]
    committed = git(dataset, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert f".reproman/jobs/local/{jobid}/failed-outputs/o/2" in committed
    message = body(dataset)
    assert f"Kept as they were: outputs of subjobs that did not succeed (what those left there is in " \
           f".reproman/jobs/local/{jobid}/failed-outputs/):\n  o/2\n  o/3" in message, message
    if "RUNCMD" in message:
        # The note stays outside the run record, which 'datalad rerun' reads.
        record = message.split("=== Do not change lines below ===\n")[1].split("\n^^^")[0]
        assert json.loads(record)["reproman_jobid"] == jobid
    warnings = [line for line in result.stderr.splitlines() if "kept your" in line]
    assert len(warnings) == 2 and f"job {jobid}: kept your o/2 unchanged: subjob i=2 failed" in warnings[0], \
        result.stderr
    assert str(_kept_copy(dataset, jobid, "o/2")) in warnings[0]
    kept = Registry().load(jobid).extra["kept"]
    assert sorted((k["local"], k["subjob"]) for k in kept) == [(str(dataset / "o" / "2"), "i=2"),
                                                               (str(dataset / "o" / "3"), "i=3")]
    assert "does not match" not in result.stderr and "differ" not in result.stderr
    assert clean(dataset), git(dataset, "status", "--porcelain")


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-local-run"])
def test_a_directory_shared_with_a_failed_subjob_keeps_its_committed_files(
    dataset: Path, root: Path, orchestrator: str
) -> None:
    """``-o out`` for every subjob: what lands cannot be told apart by subjob, so one failure keeps every committed
    file in it (as core does); new files and identical ones are committed as before."""
    out = dataset / "out"
    out.mkdir()
    (out / "a").write_text("old a\n")
    (out / "b").write_text("old b\n")
    (out / "same").write_text("same\n")
    sh(dataset, "datalad", "save", "-m", "old results")
    result = run_cli(["run", "--follow", "--orc", orchestrator, "--jp", f"root_directory={root}",
                      "--jp", "num_processes=1", "--bp", "i=a,b", "-o", "out", "sh", "-c",
                      "mkdir -p out; echo new > out/{p[i]}; echo {p[i]} > out/new-{p[i]}; echo same > out/same; "
                      "test {p[i]} = a"])
    assert result.returncode == 1, result.stderr
    jobid = result.stdout.split()[0]
    assert (out / "a").read_text() == "old a\n" and (out / "b").read_text() == "old b\n", result.stderr
    assert (out / "new-a").read_text() == "a\n" and (out / "new-b").read_text() == "b\n"
    assert (out / "same").read_text() == "same\n" and not _kept_copy(dataset, jobid, "out/same").exists()
    assert _kept_copy(dataset, jobid, "out/a").read_text() == "new\n"
    assert sorted(line for line in body(dataset).splitlines() if line.startswith("  out/")) == ["  out/a", "  out/b"]
    assert clean(dataset), git(dataset, "status", "--porcelain")


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-local-run", "datalad-no-remote"])
def test_a_failed_command_keeps_a_file_of_a_nested_subdataset(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    """The kept file is in ``outputs/derived`` (two levels down); its copy goes in the top dataset's record."""
    from reproman_orchestrators_datalad import testing as yoda

    result = run_job(root, orchestrator, "mkdir -p outputs/derived; echo partial > outputs/derived/ref.csv; echo n > outputs/derived/new.csv; "
                     "exit 3", outputs=["outputs/derived"])
    assert not result.status.ok
    derived = yoda_ds / "outputs" / "derived"
    assert (derived / "ref.csv").read_text() == "x\ny\nz\n"
    assert (derived / "new.csv").read_text() == "n\n", "a new file is committed as before"
    assert _kept_copy(yoda_ds, result.job.jobid, "outputs/derived/ref.csv").read_text() == "partial\n"
    assert "  outputs/derived/ref.csv" in body(yoda_ds).splitlines()
    yoda.assert_clean(yoda_ds)


def test_a_save_that_fails_puts_the_failed_commands_file_back(yoda_ds: Path, root: Path) -> None:
    """The kept version was moved into the record before the save; a failed save removes the record, so the file
    goes back where the command left it first (never lost), and the next fetch keeps it aside again."""
    import time

    from datalad_testlib import fetch_when_done

    result = run_job(root, "datalad-no-remote", "echo partial > outputs/derived/ref.csv; echo a > outputs/a.txt; "
                     "exit 3", outputs=["outputs"], follow=False)
    status = Path(result.job.job_dir, "status.0")
    deadline = time.monotonic() + 60
    while not (status.exists() and status.read_text().startswith("failed")):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.2)
    lock = Path(git(yoda_ds / "outputs", "rev-parse", "--absolute-git-dir")) / "index.lock"
    lock.write_text("")  # git cannot update this subdataset's index: its save fails
    row = fetch_when_done(result.job.jobid)
    assert "put back to their state before the save" in row.get("error", ""), row
    derived = yoda_ds / "outputs" / "derived"
    assert (derived / "ref.csv").read_text() == "partial\n", "what the command left is where it left it"
    assert not _kept_copy(yoda_ds, result.job.jobid, "outputs/derived/ref.csv").exists()
    lock.unlink()
    assert fetch_when_done(result.job.jobid).get("fetched")
    assert (derived / "ref.csv").read_text() == "x\ny\nz\n"
    assert _kept_copy(yoda_ds, result.job.jobid, "outputs/derived/ref.csv").read_text() == "partial\n"
    assert (yoda_ds / "outputs" / "a.txt").read_text() == "a\n"
