"""Each DataLad orchestrator end to end through ``reproman.api.run`` on the local shell resource."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from datalad_testlib import ORCHESTRATORS, body, clean, fetch_when_done, git, run_job, sh, subject

from reproman.errors import OrchestratorError

COUNT = "mkdir -p out && wc -l < data/f0.csv > out/count.txt"


def annexed(ds: Path, path: str) -> bool:
    return sh(ds, "git", "annex", "find", "--include=*", path).stdout.strip() == path


def record(ds: Path, jobid: str) -> Path:
    return ds / ".reproman" / "jobs" / "local" / jobid


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_single_job_commits_outputs_and_record(dataset: Path, root: Path, orchestrator: str) -> None:
    assert annexed(dataset, "data/f0.csv")
    base = git(dataset, "rev-parse", "HEAD")
    result = run_job(root, orchestrator, COUNT, inputs=["data/f0.csv"], outputs=["out/count.txt"],
                     message="count the rows")
    jobid = result.job.jobid
    assert result.status.ok
    assert (dataset / "out" / "count.txt").read_text().strip() == "2"
    # One commit on top of the starting one, carrying the job's message, marked by the job's ref.
    assert git(dataset, "rev-parse", "HEAD~1") == base
    assert "count the rows" in subject(dataset)
    assert git(dataset, "rev-parse", f"refs/reproman/{jobid}") == git(dataset, "rev-parse", "HEAD")
    changed = git(dataset, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert "out/count.txt" in changed
    assert f".reproman/jobs/local/{jobid}/status.0" in changed
    # The record is plain git (readable without datalad get) and says how the subjob ended.
    assert (record(dataset, jobid) / "status.0").read_text().strip() == "succeeded 0"
    assert not (record(dataset, jobid) / "status.0").is_symlink()
    assert json.loads((record(dataset, jobid) / "spec.yaml").read_text())["jobid"] == jobid
    # Nothing left behind: core's rewrite of spec.yaml after the fetch matches the committed one.
    assert clean(dataset), git(dataset, "status", "--porcelain")
    assert str(record(dataset, jobid)) in result.fetched


@pytest.mark.parametrize("orchestrator", ["datalad-pair-run", "datalad-local-run"])
def test_run_record_is_rerunnable(dataset: Path, root: Path, orchestrator: str) -> None:
    run_job(root, orchestrator, COUNT, inputs=["data/f0.csv"], outputs=["out/count.txt"], message="count")
    text = body(dataset)
    assert text.startswith("[DATALAD RUNCMD] count")
    found = re.search(r"=== Do not change lines below ===\n(.*)\n\^\^\^", text, re.S)
    assert found is not None
    rec = json.loads(found.group(1))
    assert rec["cmd"] == COUNT and rec["inputs"] == ["data/f0.csv"] and rec["outputs"] == ["out/count.txt"]
    assert rec["exit"] == 0 and rec["dsid"]
    # DataLad itself accepts the record: rerun redoes the command here.
    sh(dataset, "datalad", "unlock", "out/count.txt")
    (dataset / "out" / "count.txt").write_text("stale\n")
    sh(dataset, "datalad", "save", "-m", "break it")
    sh(dataset, "datalad", "rerun", git(dataset, "rev-parse", "HEAD~1"))
    assert (dataset / "out" / "count.txt").read_text().strip() == "2"
    assert clean(dataset)


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_batch_job(dataset: Path, root: Path, orchestrator: str) -> None:
    result = run_job(
        root, orchestrator, "mkdir -p out && sort -r data/{p[name]}.csv > out/{p[name]}.txt",
        batch=["name=f0,f1"], inputs=["data/{p[name]}.csv"], outputs=["out/{p[name]}.txt"], message="sort",
    )
    assert result.job.n_subjobs == 2 and result.status.ok
    assert (dataset / "out" / "f0.txt").read_text() == "a,b\n1,2\n"
    assert (dataset / "out" / "f1.txt").read_text() == "a,b\n5,6\n3,4\n"
    rec = record(dataset, result.job.jobid)
    assert sorted(p.name for p in rec.glob("status.*")) == ["status.0", "status.1"]
    assert clean(dataset)
    if orchestrator.endswith("-run"):
        # A batch is recorded as one command that redoes every subjob.
        rec_cmd = json.loads(body(dataset).split("===\n", 1)[1].rsplit("\n^^^", 1)[0])["cmd"]
        assert "data/f0.csv" in rec_cmd and "data/f1.csv" in rec_cmd


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_failed_subjob_is_recorded_and_dataset_stays_usable(dataset: Path, root: Path, orchestrator: str) -> None:
    base = git(dataset, "rev-parse", "HEAD")
    result = run_job(
        root, orchestrator, "mkdir -p out && cp data/{p[name]}.csv out/{p[name]}.csv && test {p[name]} = f0",
        batch=["name=f0,f1"], inputs=["data/{p[name]}.csv"], outputs=["out/{p[name]}.csv"], message="copy",
    )
    assert not result.status.ok
    assert [f["index"] for f in result.failed] == [1]
    # Recorded, with the failure in the subject and in the record's status files; nothing dangling.
    assert git(dataset, "rev-parse", "HEAD~1") == base
    assert "1 of 2 subjobs failed" in subject(dataset)
    assert (record(dataset, result.job.jobid) / "status.1").read_text().strip() == "failed 1"
    assert (dataset / "out" / "f0.csv").exists()
    assert clean(dataset)
    # The stderr path core reports for the failure exists locally.
    assert Path(result.failed[0]["stderr"]).exists()
    # The next job starts from this state without any cleanup.
    again = run_job(root, orchestrator, "echo ok > ok.txt", outputs=["ok.txt"], message="after failure")
    assert again.status.ok and (dataset / "ok.txt").read_text() == "ok\n"
    assert clean(dataset)


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_overwrites_an_annexed_output(dataset: Path, root: Path, orchestrator: str) -> None:
    """Existing annexed outputs are unlocked first, as ``datalad run`` does."""
    run_job(root, orchestrator, "mkdir -p out && echo one > out/v.txt", outputs=["out/v.txt"])
    assert annexed(dataset, "out/v.txt")
    second = run_job(root, orchestrator, "mkdir -p out && echo two > out/v.txt", outputs=["out/v.txt"])
    assert second.status.ok
    assert (dataset / "out" / "v.txt").read_text() == "two\n"
    assert clean(dataset)


def test_plain_refuses_an_annexed_output_before_it_runs_and_says_what_works(dataset: Path, root: Path) -> None:
    """The plain orchestrator cannot unlock a git-annex file: refused up front, pointing at what can."""
    from reproman.errors import UsageError

    run_job(root, "datalad-local-run", "mkdir -p out && echo one > out/v.txt", outputs=["out/v.txt"])
    assert annexed(dataset, "out/v.txt")
    with pytest.raises(UsageError, match=r"is a git-annex file.*") as caught:
        run_job(root, "plain", "echo two > out/v.txt", outputs=["out/v.txt"])
    assert "datalad-local-run" in (caught.value.hint or "")
    assert (dataset / "out" / "v.txt").read_text() == "one\n" and clean(dataset)


def test_pair_reuses_the_clone_and_sends_content_once(dataset: Path, root: Path) -> None:
    first = run_job(root, "datalad-pair", COUNT, inputs=["data/f0.csv"], outputs=["out/count.txt"])
    assert first.job.extra["shipped_keys"] == 1
    clone = Path(first.job.working_directory)
    assert clone.parent == root and (clone / ".git").exists()
    second = run_job(root, "datalad-pair", "wc -l < data/f0.csv > out/again.txt", inputs=["data/f0.csv"],
                     outputs=["out/again.txt"])
    assert second.job.working_directory == first.job.working_directory
    assert second.job.extra["shipped_keys"] == 0
    assert (dataset / "out" / "again.txt").read_text().strip() == "2"
    # Staging areas on the resource are gone.
    assert not any((root / ".reproman" / "datalad-staging").glob("*"))


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-pair-run", "datalad-local-run"])
def test_local_commits_while_the_job_runs_are_kept(dataset: Path, root: Path, orchestrator: str) -> None:
    base = git(dataset, "rev-parse", "HEAD")
    result = run_job(root, orchestrator, "sleep 1; echo done > done.txt", outputs=["done.txt"], follow=False)
    (dataset / "notes.txt").write_text("meanwhile\n")
    sh(dataset, "datalad", "save", "-m", "meanwhile")
    row = fetch_when_done(result.job.jobid)
    assert row.get("fetched"), row
    assert (dataset / "done.txt").read_text() == "done\n"
    assert (dataset / "notes.txt").read_text() == "meanwhile\n"
    # The results commit sits on the starting commit and is merged into the branch.
    ref = f"refs/reproman/{result.job.jobid}"
    assert git(dataset, "rev-parse", f"{ref}~1") == base
    assert sh(dataset, "git", "merge-base", "--is-ancestor", ref, "HEAD").returncode == 0
    assert clean(dataset)


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-no-remote"])
def test_second_job_waits_for_the_first_to_be_fetched(dataset: Path, root: Path, orchestrator: str) -> None:
    first = run_job(root, orchestrator, "echo 1 > one.txt", outputs=["one.txt"], follow=False)
    with pytest.raises(OrchestratorError, match=f"in use by job.*{first.job.jobid}"):
        run_job(root, orchestrator, "echo 2 > two.txt", outputs=["two.txt"])
    assert fetch_when_done(first.job.jobid).get("fetched")
    second = run_job(root, orchestrator, "echo 2 > two.txt", outputs=["two.txt"])
    assert second.status.ok and (dataset / "two.txt").exists() and (dataset / "one.txt").exists()


def test_fetching_twice_records_once(dataset: Path, root: Path) -> None:
    from reproman import api

    result = run_job(root, "datalad-pair-run", COUNT, inputs=["data/f0.csv"], outputs=["out/count.txt"],
                     keep_remote=True)
    head = git(dataset, "rev-parse", "HEAD")
    rows = api.jobs([result.job.jobid], action="fetch")
    assert rows[0].get("fetched"), rows
    assert git(dataset, "rev-parse", "HEAD") == head
    assert clean(dataset)


# -- refusals ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_dirty_dataset_is_refused(dataset: Path, root: Path, orchestrator: str) -> None:
    (dataset / "scratch.txt").write_text("unsaved\n")
    with pytest.raises(OrchestratorError, match=r"unsaved changes \(scratch.txt\).*datalad save"):
        run_job(root, orchestrator, "true")


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_not_a_dataset_is_refused(tmp_path: Path, root: Path, datalad_tools: None, orchestrator: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "plain-git"
    repo.mkdir()
    sh(repo, "git", "init", "-q")
    (repo / "f").write_text("x")
    sh(repo, "git", "add", "f")
    sh(repo, "git", "commit", "-qm", "f")
    monkeypatch.chdir(repo)
    with pytest.raises(OrchestratorError, match="needs a DataLad dataset"):
        run_job(root, orchestrator, "true")


def test_detached_head_is_refused(dataset: Path, root: Path) -> None:
    sh(dataset, "git", "checkout", "-q", "--detach")
    with pytest.raises(OrchestratorError, match="detached HEAD"):
        run_job(root, "datalad-pair", "true")


def test_subdirectory_is_refused(dataset: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(dataset / "data")
    with pytest.raises(OrchestratorError, match="top directory of the dataset"):
        run_job(root, "datalad-pair", "true")


def test_missing_input_is_refused(dataset: Path, root: Path) -> None:
    with pytest.raises(OrchestratorError, match="not in the dataset.*nope.csv"):
        run_job(root, "datalad-pair", "true", inputs=["data/nope.csv"])


def test_pair_input_without_content_anywhere(tmp_path: Path, dataset: Path, root: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Content neither here nor reachable by the resource: a clear error, and after 'datalad get' it works."""
    clone = tmp_path / "clone"
    sh(tmp_path, "datalad", "clone", str(dataset), str(clone))
    monkeypatch.chdir(clone)
    with pytest.raises(OrchestratorError, match="could not get the content.*data/f0.csv.*datalad get"):
        run_job(root, "datalad-pair", COUNT, inputs=["data/f0.csv"], outputs=["out/count.txt"])
    sh(clone, "datalad", "get", "data/f0.csv")
    result = run_job(root, "datalad-pair", COUNT, inputs=["data/f0.csv"], outputs=["out/count.txt"])
    assert result.status.ok and (clone / "out" / "count.txt").read_text().strip() == "2"


def test_local_run_gets_inputs_locally_first(tmp_path: Path, dataset: Path, root: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    clone = tmp_path / "clone"
    sh(tmp_path, "datalad", "clone", str(dataset), str(clone))
    monkeypatch.chdir(clone)
    result = run_job(root, "datalad-local-run", COUNT, inputs=["data"], outputs=["out/count.txt"])
    assert result.status.ok and (clone / "out" / "count.txt").read_text().strip() == "2"
    # The copied inputs were not taken for results.
    assert "data/f0.csv" not in git(clone, "show", "--name-only", "--format=", "HEAD").splitlines()


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-pair-run"])
def test_output_directory_leaves_untouched_annexed_files_as_they_were(
    dataset: Path, root: Path, orchestrator: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``-o DIR`` unlocks every annexed file in DIR so the command can write any of them. The clone on the
    resource lacks the content of files that were not inputs, and ``datalad save`` locks again only files whose
    content is there: the untouched ones were committed as unlocked pointer files (a change of each in the user's
    history), and their checksums, of the pointer text, read as transfer mismatches, keeping the job's files on
    the resource. Untouched files stay exactly as they were; a changed one is committed; nothing is kept there."""
    import logging

    # Made here, not by a job: the clone on the resource has these commits but not their content.
    (dataset / "res").mkdir()
    (dataset / "res" / "a.bin").write_text("aaa\n")
    (dataset / "res" / "b.bin").write_text("bbb\n")
    sh(dataset, "datalad", "save", "-m", "two results", "res")
    run_job(root, orchestrator, "echo warm > warm.txt", outputs=["warm.txt"])  # the clone exists from here on
    assert annexed(dataset, "res/a.bin") and (dataset / "res" / "a.bin").is_symlink()
    before = git(dataset, "rev-parse", "HEAD")
    with caplog.at_level(logging.INFO, logger="reproman"):
        result = run_job(root, orchestrator, "echo changed > res/b.bin && echo ccc > res/c.bin", outputs=["res"])
    assert result.status.ok
    changed = git(dataset, "diff", "--name-status", before, "HEAD", "--", "res").splitlines()
    assert sorted(changed) == ["A\tres/c.bin", "M\tres/b.bin"], changed
    assert (dataset / "res" / "a.bin").is_symlink() and (dataset / "res" / "a.bin").read_text() == "aaa\n"
    assert (dataset / "res" / "b.bin").read_text() == "changed\n"
    assert (dataset / "res" / "c.bin").read_text() == "ccc\n"
    assert not [r.getMessage() for r in caplog.records if "does not match the checksum" in r.getMessage()
                or "stay on the resource" in r.getMessage()]
    assert clean(dataset), git(dataset, "status", "--porcelain")
