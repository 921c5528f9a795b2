"""``jobs --delete`` and a job's ``refs/reproman/<jobid>`` in the local dataset and its subdatasets.

A merged ref only names history the branch has: delete removes it. An
unmerged one may hold the only copy of fetched results (a merge refused by a
conflict): delete keeps it and says where it is and how to remove it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from datalad_testlib import ORCHESTRATORS, fetch_when_done, git, run_job, sh

from reproman import api
from reproman_orchestrators_datalad import testing as yoda

DATASETS = (".", "inputs", "outputs", "outputs/derived")
COUNT_DEEP = "sh code/count.sh inputs/s01.csv outputs/derived/new.txt"
IN_DEEP = [yoda.CODE, "inputs/s01.csv"]
OUT_DEEP = ["outputs/derived/new.txt"]


def _refs(ds: Path, jobid: str) -> dict[str, str]:
    """Dataset -> commit of the job's ref, where the dataset has one."""
    found = {}
    for sub in DATASETS:
        commit = sh(ds / sub, "git", "rev-parse", "-q", "--verify", f"refs/reproman/{jobid}", check=False)
        if commit.returncode == 0:
            found[sub] = commit.stdout.strip()
    return found


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_delete_removes_the_merged_ref_in_every_dataset(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    result = run_job(root, orchestrator, COUNT_DEEP, inputs=IN_DEEP, outputs=OUT_DEEP)
    assert result.ok, result.failed
    jobid = result.job.jobid
    refs = _refs(yoda_ds, jobid)
    # datalad-no-remote names the top dataset's commit only; the others every dataset the job changed.
    assert set(refs) == ({"."} if orchestrator == "datalad-no-remote" else {".", "outputs", "outputs/derived"}), refs
    heads = {sub: yoda.head(yoda_ds, sub) for sub in DATASETS}
    [row] = api.jobs([jobid], action="delete")
    assert row["deleted"] and not row.get("kept_local") and not row.get("warning"), row
    assert _refs(yoda_ds, jobid) == {}, "a merged job's ref outlived its deletion"
    # The results stay: they are on the branch.
    assert {sub: yoda.head(yoda_ds, sub) for sub in DATASETS} == heads
    assert yoda.rows(yoda_ds / "outputs" / "derived" / "new.txt") == yoda.expected_rows("s01")


def test_delete_keeps_an_unmerged_ref_and_says_how_to_remove_it(yoda_ds: Path, root: Path) -> None:
    result = run_job(root, "datalad-pair", "sleep 1; sh code/count.sh inputs/s01.csv outputs/derived/ref.csv",
                     inputs=[yoda.CODE, "inputs/s01.csv"], outputs=["outputs/derived/ref.csv"], follow=False)
    jobid = result.job.jobid
    yoda.datalad(yoda_ds, "unlock", "outputs/derived/ref.csv")
    (yoda_ds / "outputs" / "derived" / "ref.csv").write_text("my own edit\n")
    yoda.datalad(yoda_ds, "save", "-r", "-m", "edit the reference")
    row = fetch_when_done(jobid)
    assert not row.get("fetched") and "were not merged" in row["error"], row
    refs = _refs(yoda_ds, jobid)
    assert "outputs/derived" in refs, refs
    job_version = git(yoda_ds / "outputs" / "derived", "show", f"refs/reproman/{jobid}:ref.csv")

    proc = subprocess.run([sys.executable, "-m", "reproman", "jobs", "--delete", jobid], cwd=yoda_ds,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    kept = [line for line in proc.stderr.splitlines() if "kept" in line]
    assert len(kept) == 1, proc.stderr
    line = kept[0]
    assert f"refs/reproman/{jobid}" in line and "never merged" in line
    assert f"git update-ref -d refs/reproman/{jobid}" in line and f"git merge refs/reproman/{jobid}" in line
    assert str(yoda_ds / "outputs" / "derived") in line
    # Kept exactly as it was, in every dataset that had it: the job's results are still there to merge.
    assert _refs(yoda_ds, jobid) == refs
    assert git(yoda_ds / "outputs" / "derived", "show", f"refs/reproman/{jobid}:ref.csv") == job_version
    assert (yoda_ds / "outputs" / "derived" / "ref.csv").read_text() == "my own edit\n"
    assert jobid not in {r["jobid"] for r in api.jobs(action="list")}
