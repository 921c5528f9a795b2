"""Subdatasets in the user's world: not installed yet, unreachable, dirty, changed while a job runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from datalad_testlib import ORCHESTRATORS, fetch_when_done, git, run_job, sh

from reproman import api
from reproman.errors import OrchestratorError
from reproman_orchestrators_datalad import testing as yoda

COUNT_DEEP = "sh code/count.sh inputs/s01.csv outputs/derived/new.txt"
IN_DEEP = [yoda.CODE, "inputs/s01.csv"]
OUT_DEEP = ["outputs/derived/new.txt"]


def _clone(source: Path, dest: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    yoda.datalad(dest.parent, "clone", str(source), str(dest))
    monkeypatch.chdir(dest)
    return dest


@pytest.mark.parametrize("orchestrator", ["datalad-local-run", "datalad-no-remote"])
def test_subdatasets_are_installed_for_inputs_and_outputs(
    yoda_ds: Path, tmp_path: Path, root: Path, orchestrator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = _clone(yoda_ds, tmp_path / "clone", monkeypatch)
    assert not (clone / "inputs" / ".git").exists() and not (clone / "outputs" / ".git").exists()
    base = yoda.head(clone)
    result = run_job(root, orchestrator, COUNT_DEEP, inputs=IN_DEEP, outputs=OUT_DEEP)
    assert result.status.ok, result.failed
    assert yoda.rows(clone / "outputs" / "derived" / "new.txt") == yoda.expected_rows("s01")
    # Installed as datalad run would have; the nested output subdataset got its commit, recorded above.
    assert yoda.commits_since(clone, base) == [yoda.head(clone)]
    assert git(clone / "outputs" / "derived", "rev-parse", "HEAD~1") == yoda.head(yoda_ds, "outputs/derived")
    yoda.assert_clean(clone)


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-pair-run"])
def test_pair_installs_subdatasets_and_needs_the_content_somewhere(
    yoda_ds: Path, tmp_path: Path, root: Path, orchestrator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = _clone(yoda_ds, tmp_path / "clone", monkeypatch)
    with pytest.raises(OrchestratorError, match=r"could not get the content of input\(s\) inputs/s01.csv.*"):
        run_job(root, orchestrator, COUNT_DEEP, inputs=IN_DEEP, outputs=OUT_DEEP)
    assert api.jobs() == []
    # The subdatasets were installed here, so getting the content is all it takes.
    yoda.datalad(clone, "get", "inputs/s01.csv")
    result = run_job(root, orchestrator, COUNT_DEEP, inputs=IN_DEEP, outputs=OUT_DEEP)
    assert result.status.ok and result.job.extra["shipped_keys"] == 1
    assert yoda.rows(clone / "outputs" / "derived" / "new.txt") == yoda.expected_rows("s01")
    yoda.assert_clean(clone)


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_unreachable_subdataset_is_refused_before_anything_runs(
    yoda_ds: Path, tmp_path: Path, root: Path, orchestrator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = _clone(yoda_ds, tmp_path / "clone", monkeypatch)
    shutil.move(str(yoda_ds), str(tmp_path / "moved-away"))
    with pytest.raises(OrchestratorError, match=r"inputs/s01.csv is in subdataset inputs, which is not installed "
                                                r"and could not be installed.*") as caught:
        run_job(root, orchestrator, COUNT_DEEP, inputs=IN_DEEP, outputs=OUT_DEEP)
    assert "datalad get -n inputs" in (caught.value.hint or "")
    assert api.jobs() == [] and not root.exists()
    yoda.assert_clean(clone)


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_unsaved_change_in_a_subdataset_is_refused(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    (yoda_ds / "outputs" / "derived" / "scratch.txt").write_text("mine\n")
    with pytest.raises(OrchestratorError, match=r"unsaved changes \(outputs\)"):
        run_job(root, orchestrator, COUNT_DEEP, inputs=IN_DEEP, outputs=OUT_DEEP)
    assert (yoda_ds / "outputs" / "derived" / "scratch.txt").read_text() == "mine\n"


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-pair-run", "datalad-local-run"])
def test_commits_in_subdatasets_while_the_job_runs_are_merged(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    before = {sub: yoda.head(yoda_ds, sub) for sub in (".", "outputs", "outputs/derived")}
    result = run_job(root, orchestrator, "sleep 1; " + COUNT_DEEP, inputs=IN_DEEP, outputs=OUT_DEEP, follow=False)
    (yoda_ds / "outputs" / "derived" / "mine.txt").write_text("written meanwhile\n")
    yoda.datalad(yoda_ds, "save", "-r", "-m", "meanwhile")
    row = fetch_when_done(result.job.jobid)
    assert row.get("fetched"), row
    assert (yoda_ds / "outputs" / "derived" / "mine.txt").read_text() == "written meanwhile\n"
    assert yoda.rows(yoda_ds / "outputs" / "derived" / "new.txt") == yoda.expected_rows("s01")
    ref = f"refs/reproman/{result.job.jobid}"
    for sub, old in before.items():
        # Each dataset: the job's commit sits on the starting commit and is merged.
        assert git(yoda_ds / sub, "rev-parse", f"{ref}~1") == old, sub
        assert sh(yoda_ds / sub, "git", "merge-base", "--is-ancestor", ref, "HEAD").returncode == 0, sub
    yoda.assert_clean(yoda_ds)


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-local-run"])
def test_conflict_in_a_subdataset_merges_nothing(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    result = run_job(root, orchestrator, "sleep 1; sh code/count.sh inputs/s01.csv outputs/derived/ref.csv",
                     inputs=[yoda.CODE, "inputs/s01.csv"], outputs=["outputs/derived/ref.csv"], follow=False)
    yoda.datalad(yoda_ds, "unlock", "outputs/derived/ref.csv")
    (yoda_ds / "outputs" / "derived" / "ref.csv").write_text("my own edit\n")
    yoda.datalad(yoda_ds, "save", "-r", "-m", "edit the reference")
    heads = {sub: yoda.head(yoda_ds, sub) for sub in (".", "inputs", "outputs", "outputs/derived")}
    for _attempt in range(2):
        row = fetch_when_done(result.job.jobid)
        assert not row.get("fetched") and "were not merged" in row["error"], row
        assert "outputs/derived/ref.csv" in row["error"] and f"refs/reproman/{result.job.jobid}" in row["error"]
        # Nothing half-merged: every dataset where it was, the edit intact, the results on the job's ref.
        assert {sub: yoda.head(yoda_ds, sub) for sub in heads} == heads
        assert (yoda_ds / "outputs" / "derived" / "ref.csv").read_text() == "my own edit\n"
        assert git(yoda_ds / "outputs" / "derived", "rev-parse", f"refs/reproman/{result.job.jobid}")
        yoda.assert_clean(yoda_ds)


@pytest.mark.parametrize("orchestrator", ["datalad-pair-run", "datalad-local-run"])
def test_conflict_at_the_top_undoes_the_subdataset_merges(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    """The subdatasets would fast-forward, the top cannot merge: the subdatasets are put back."""
    result = run_job(root, orchestrator, "sleep 1; echo job > notes.txt; " + COUNT_DEEP, inputs=IN_DEEP,
                     outputs=["notes.txt", *OUT_DEEP], follow=False)
    (yoda_ds / "notes.txt").write_text("mine\n")
    yoda.datalad(yoda_ds, "save", "-m", "my notes", "notes.txt")
    heads = {sub: yoda.head(yoda_ds, sub) for sub in (".", "outputs", "outputs/derived")}
    row = fetch_when_done(result.job.jobid)
    assert "merging into the dataset conflicts (notes.txt)" in row.get("error", ""), row
    assert {sub: yoda.head(yoda_ds, sub) for sub in heads} == heads
    assert not (yoda_ds / "outputs" / "derived" / "new.txt").exists()
    assert (yoda_ds / "notes.txt").read_text() == "mine\n"
    yoda.assert_clean(yoda_ds)


@pytest.mark.parametrize("orchestrator", ["datalad-pair-run", "datalad-local-run"])
def test_results_wait_while_another_branch_is_checked_out(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    branch = git(yoda_ds, "symbolic-ref", "--short", "HEAD")
    result = run_job(root, orchestrator, "sleep 1; " + COUNT_DEEP, inputs=IN_DEEP, outputs=OUT_DEEP, follow=False)
    sh(yoda_ds, "git", "checkout", "-q", "-b", "elsewhere")
    row = fetch_when_done(result.job.jobid)
    assert f"branch '{branch}' is not checked out" in row.get("error", ""), row
    assert not (yoda_ds / "outputs" / "derived" / "new.txt").exists()
    sh(yoda_ds, "git", "checkout", "-q", branch)
    row = fetch_when_done(result.job.jobid)
    assert row.get("fetched"), row
    assert yoda.rows(yoda_ds / "outputs" / "derived" / "new.txt") == yoda.expected_rows("s01")
    assert git(yoda_ds, "rev-list", "--count", f"refs/reproman/{result.job.jobid}..{branch}") == "0"
    yoda.assert_clean(yoda_ds)


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-pair-run", "datalad-local-run"])
@pytest.mark.parametrize("edit", ["untracked file", "unsaved edit"])
def test_a_local_file_in_the_way_is_never_overwritten(yoda_ds: Path, root: Path, orchestrator: str, edit: str) -> None:
    target = "outputs/derived/ref.csv" if edit == "unsaved edit" else "outputs/derived/new.txt"
    result = run_job(root, orchestrator, f"sleep 1; sh code/count.sh inputs/s01.csv {target}", inputs=IN_DEEP,
                     outputs=[target], follow=False)
    if edit == "unsaved edit":
        yoda.datalad(yoda_ds, "unlock", target)
    (yoda_ds / target).write_text("mine\n")
    heads = {sub: yoda.head(yoda_ds, sub) for sub in (".", "outputs", "outputs/derived")}
    row = fetch_when_done(result.job.jobid)
    said = "has unsaved changes here" if edit == "unsaved edit" else "is untracked here"
    if orchestrator == "datalad-local-run":
        said = "has unsaved changes"  # refused before anything is downloaded: the dataset must be clean
    assert not row.get("fetched") and said in row.get("error", ""), row
    if orchestrator != "datalad-local-run":
        assert f"{yoda_ds / target} {said}" in row["error"] and "Nothing was changed" in row["error"]
    assert (yoda_ds / target).read_text() == "mine\n"
    assert {sub: yoda.head(yoda_ds, sub) for sub in heads} == heads
    # Once the user's file is out of the way, the same job's results come in.
    (yoda_ds / target).rename(yoda_ds / "mine.txt")
    if edit == "unsaved edit":
        sh(yoda_ds / "outputs" / "derived", "git", "checkout", "HEAD", "--", "ref.csv")
    (yoda_ds / "mine.txt").unlink()
    assert fetch_when_done(result.job.jobid).get("fetched")
    assert yoda.rows(yoda_ds / target) == yoda.expected_rows("s01")
    yoda.assert_clean(yoda_ds)


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-pair-run", "datalad-local-run"])
def test_result_file_where_a_directory_is_refused_with_nothing_changed(
    yoda_ds: Path, root: Path, orchestrator: str
) -> None:
    (yoda_ds / "outputs" / "res").mkdir()
    (yoda_ds / "outputs" / "res" / "inside.txt").write_text("keep\n")
    yoda.datalad(yoda_ds, "save", "-r", "-m", "a directory")
    heads = {sub: yoda.head(yoda_ds, sub) for sub in (".", "outputs")}
    result = run_job(root, orchestrator, "mkdir -p outputs; rm -rf outputs/res; echo file > outputs/res",
                     outputs=["outputs/res"], follow=False)
    row = fetch_when_done(result.job.jobid)
    assert f"{yoda_ds / 'outputs' / 'res'} is a directory here" in row.get("error", ""), row
    assert (yoda_ds / "outputs" / "res" / "inside.txt").read_text() == "keep\n"
    assert {sub: yoda.head(yoda_ds, sub) for sub in heads} == heads
    yoda.assert_clean(yoda_ds)


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-pair-run"])
def test_pair_never_deletes_or_overwrites_ignored_files(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    # Ignored here only (the clone on the resource commits the job's log): git would overwrite it silently.
    with open(yoda_ds / "outputs" / ".git" / "info" / "exclude", "a") as exclude:
        exclude.write("*.log\n")
    result = run_job(root, orchestrator, "sleep 1; rm outputs/derived/ref.csv; echo job > outputs/run.log",
                     outputs=["outputs/run.log"], follow=False)
    (yoda_ds / "outputs" / "run.log").write_text("my log, ignored\n")
    heads = {sub: yoda.head(yoda_ds, sub) for sub in (".", "outputs", "outputs/derived")}
    row = fetch_when_done(result.job.jobid)
    error = row.get("error", "")
    assert f"{yoda_ds / 'outputs' / 'run.log'} is ignored by git here" in error, row
    assert f"{yoda_ds / 'outputs' / 'derived' / 'ref.csv'} would be deleted" in error, row
    assert (yoda_ds / "outputs" / "run.log").read_text() == "my log, ignored\n"
    assert (yoda_ds / "outputs" / "derived" / "ref.csv").read_text() == "x\ny\nz\n"
    assert {sub: yoda.head(yoda_ds, sub) for sub in heads} == heads


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-no-remote"])
def test_subdataset_created_by_the_job_is_recorded(
    yoda_ds: Path, root: Path, orchestrator: str, caplog: pytest.LogCaptureFixture
) -> None:
    result = run_job(root, orchestrator, f"{yoda.datalad_command()} create -d outputs outputs/fresh",
                     outputs=["outputs/fresh"])
    assert result.status.ok
    assert "fresh" in git(yoda_ds / "outputs", "config", "-f", ".gitmodules", "--get-regexp", "path")
    if orchestrator == "datalad-pair":
        # Its own commits stay in the clone, and the user is told where.
        assert "created subdataset outputs/fresh" in caplog.text
        assert not (yoda_ds / "outputs" / "fresh" / ".git").exists()
    yoda.assert_clean(yoda_ds)


# -- datalad-local-run never overwrites what git cannot give back ------------------------------
def test_local_run_refuses_an_ignored_output_before_anything_runs(yoda_ds: Path, root: Path) -> None:
    """Re-trial finding 3: an ignored --output (here inside a subdataset) is refused at submission, not after."""
    from reproman import api
    from reproman.errors import OrchestratorError

    (yoda_ds / "outputs" / ".gitignore").write_text("scratch/\n")
    yoda.datalad(yoda_ds, "save", "-r", "-m", "ignore scratch")
    heads = {sub: yoda.head(yoda_ds, sub) for sub in (".", "outputs")}
    ran = root / "ran"
    with pytest.raises(OrchestratorError) as refused:
        run_job(root, "datalad-local-run", f"touch {ran}; mkdir -p outputs/scratch; echo job > outputs/scratch/n.txt",
                inputs=["inputs/s00.csv"], outputs=["outputs/scratch/n.txt"])
    said = str(refused.value)
    assert "output(s) outputs/scratch/n.txt are ignored by git in the dataset" in said, said
    assert "DataLad does not save ignored files" in said and "nothing was submitted" in said, said
    assert "\n" not in said
    # Nothing ran, nothing was staged on the resource, no job is registered, the dataset is as it was.
    assert not ran.exists()
    assert not root.exists() or not any(p.name != ".reproman" for p in root.iterdir()), list(root.iterdir())
    assert api.jobs() == []
    assert {sub: yoda.head(yoda_ds, sub) for sub in heads} == heads
    yoda.assert_clean(yoda_ds)


def test_local_run_refuses_to_overwrite_an_ignored_file(yoda_ds: Path, root: Path) -> None:
    """An ignored file the job wrote without declaring it: refused at fetch, never overwritten."""
    (yoda_ds / "outputs" / ".gitignore").write_text("scratch/\n")
    yoda.datalad(yoda_ds, "save", "-r", "-m", "ignore scratch")
    result = run_job(root, "datalad-local-run", "sleep 1; mkdir -p outputs/scratch; echo job > outputs/scratch/n.txt",
                     outputs=["outputs/derived"], follow=False)
    (yoda_ds / "outputs" / "scratch").mkdir()
    (yoda_ds / "outputs" / "scratch" / "n.txt").write_text("mine, ignored\n")
    head = yoda.head(yoda_ds)
    row = fetch_when_done(result.job.jobid)
    assert "outputs/scratch/n.txt is ignored by git here" in row.get("error", ""), row
    assert (yoda_ds / "outputs" / "scratch" / "n.txt").read_text() == "mine, ignored\n"
    assert yoda.head(yoda_ds) == head
    # Moved aside, the results come in.
    (yoda_ds / "outputs" / "scratch" / "n.txt").rename(yoda_ds / "outputs" / "scratch" / "mine.txt")
    assert fetch_when_done(result.job.jobid).get("fetched")
    assert (yoda_ds / "outputs" / "scratch" / "n.txt").read_text() == "job\n"


def test_local_run_refuses_a_file_where_a_directory_is(yoda_ds: Path, root: Path) -> None:
    result = run_job(root, "datalad-local-run", "sleep 1; mkdir -p outputs; echo job > outputs/res", outputs=["outputs/res"],
                     follow=False)
    (yoda_ds / "outputs" / "res").mkdir()
    (yoda_ds / "outputs" / "res" / "kept.txt").write_text("kept\n")
    yoda.datalad(yoda_ds, "save", "-r", "-m", "a directory")
    row = fetch_when_done(result.job.jobid)
    assert "outputs/res is a directory here" in row.get("error", ""), row
    assert (yoda_ds / "outputs" / "res" / "kept.txt").read_text() == "kept\n"
    yoda.assert_clean(yoda_ds)
