"""The datalad-pair clone stays held by a job whose results were refused here (trial R, findings 1 and 2).

After a refused merge the results wait on ``refs/reproman/<jobid>``, and the
clone's commit may be their only copy besides that ref: a second job must be
refused until the first is merged, and a refetch must take the first job's
own commit, never the one a later job left in the clone.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from datalad_testlib import fetch_when_done, git, run_job, sh

from reproman.errors import OrchestratorError

PAIRS = ["datalad-pair", "datalad-pair-run"]


def _refused_job(dataset: Path, root: Path, orchestrator: str) -> str:
    """A job whose fetch is refused: a local commit conflicts with its output c.txt."""
    (dataset / "c.txt").write_text("x\n")
    with open(dataset / ".gitattributes", "a") as attributes:  # in git, not the annex, there too
        attributes.write("c.txt annex.largefiles=nothing\n")
    sh(dataset, "git", "add", "c.txt", ".gitattributes")
    sh(dataset, "git", "commit", "-qm", "c")
    job = run_job(root, orchestrator, "sleep 1; echo job > c.txt", outputs=["c.txt"], follow=False).job
    (dataset / "c.txt").write_text("mine\n")
    sh(dataset, "git", "commit", "-qam", "mine")
    row = fetch_when_done(job.jobid)
    assert "conflicts (c.txt)" in row.get("error", ""), row
    assert git(dataset, "show", f"refs/reproman/{job.jobid}:c.txt") == "job"
    return str(job.jobid)


@pytest.mark.parametrize("orchestrator", PAIRS)
def test_a_refused_job_keeps_the_clone(dataset: Path, root: Path, orchestrator: str) -> None:
    first = _refused_job(dataset, root, orchestrator)
    with pytest.raises(OrchestratorError, match=f"in use by job.*{first}"):
        run_job(root, orchestrator, "echo b > b.txt", outputs=["b.txt"])
    # Resolved (the job's version taken): the refetch merges it and frees the clone.
    sh(dataset, "git", "reset", "-q", "--hard", "HEAD~1")
    row = fetch_when_done(first)
    assert row.get("fetched"), row
    assert (dataset / "c.txt").read_text() == "job\n"
    second = run_job(root, orchestrator, "echo b > b.txt", outputs=["b.txt"])
    assert second.status.ok and (dataset / "b.txt").read_text() == "b\n"


@pytest.mark.parametrize("orchestrator", PAIRS)
def test_a_refetch_never_takes_a_later_jobs_commit(dataset: Path, root: Path, orchestrator: str) -> None:
    """Even with the hold removed by hand (as the refusal's hint allows), the first job's ref stays its own."""
    first = _refused_job(dataset, root, orchestrator)
    clone = root / git(dataset, "config", "-f", ".datalad/config", "datalad.dataset.id")
    hold = clone / ".git" / "reproman"
    assert (hold / "active" / first).exists()
    for held in (hold / "active" / first, hold / "held-by"):
        held.unlink(missing_ok=True)
    second = run_job(root, orchestrator, "echo b > b.txt", outputs=["b.txt"])
    assert second.status.ok
    row = fetch_when_done(first)
    assert not row.get("fetched") and "conflicts (c.txt)" in row.get("error", ""), row
    ref = f"refs/reproman/{first}"
    assert git(dataset, "show", f"{ref}:c.txt") == "job"
    assert git(dataset, "rev-parse", f"{ref}^{{tree}}") != git(dataset, "rev-parse", f"refs/reproman/{second.job.jobid}^{{tree}}")
    assert f"ReproMan job: {first}" in git(dataset, "log", "-1", "--format=%B", ref).splitlines() or \
        f'"reproman_jobid": "{first}"' in git(dataset, "log", "-1", "--format=%B", ref)


def test_two_submissions_at_once_get_the_clone_once(dataset: Path, root: Path) -> None:
    """Racing for the clone, exactly one is accepted, the other refused naming it (not a raw git error)."""
    run_job(root, "datalad-pair", "true")  # the clone exists, as in the trial
    outcomes: dict[str, object] = {}

    def submit(name: str) -> None:
        try:
            outcomes[name] = run_job(root, "datalad-pair", f"sleep 2; echo {name} > {name}.txt",
                                     outputs=[f"{name}.txt"], follow=False).job.jobid
        except OrchestratorError as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=submit, args=(n,)) for n in ("u1", "u2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = [v for v in outcomes.values() if isinstance(v, str)]
    refused = [v for v in outcomes.values() if isinstance(v, OrchestratorError)]
    assert len(accepted) == 1 and len(refused) == 1, outcomes
    assert f"in use by job(s) {accepted[0]}" in str(refused[0]), refused[0]
    assert fetch_when_done(accepted[0]).get("fetched")


def test_a_ref_moved_to_another_jobs_commit_is_refused(dataset: Path, root: Path) -> None:
    """A clone whose job ref an older ReproMan pointed at a later job's commit: refused, the local ref kept."""
    first = _refused_job(dataset, root, "datalad-pair")
    own = git(dataset, "rev-parse", f"refs/reproman/{first}")
    clone = root / git(dataset, "config", "-f", ".datalad/config", "datalad.dataset.id")
    for held in (clone / ".git" / "reproman" / "active" / first, clone / ".git" / "reproman" / "held-by"):
        held.unlink()
    second = run_job(root, "datalad-pair", "echo b > b.txt", outputs=["b.txt"])
    assert second.status.ok
    sh(clone, "git", "update-ref", f"refs/reproman/{first}", f"refs/reproman/{second.job.jobid}")
    row = fetch_when_done(first)
    assert not row.get("fetched"), row
    assert f"refs/reproman/{first} in {clone}" in row["error"] and "is not job" in row["error"], row
    assert git(dataset, "rev-parse", f"refs/reproman/{first}") == own


@pytest.mark.parametrize("orchestrator", PAIRS)
def test_a_refused_merge_leaves_an_unlocked_annexed_file_clean(dataset: Path, root: Path, orchestrator: str) -> None:
    """Trial R, 3: after the aborted merge the unlocked file read "modified", and saving it locked it."""
    (dataset / "u.bin").write_bytes(bytes(range(256)) * 80)
    sh(dataset, "datalad", "save", "-m", "u")
    sh(dataset, "git", "annex", "unlock", "u.bin")
    sh(dataset, "git", "commit", "-qm", "unlock")
    assert git(dataset, "status", "--porcelain") == ""
    (dataset / "c.txt").write_text("x\n")
    with open(dataset / ".gitattributes", "a") as attributes:
        attributes.write("c.txt annex.largefiles=nothing\n")
    sh(dataset, "git", "add", "c.txt", ".gitattributes")
    sh(dataset, "git", "commit", "-qm", "c")
    job = run_job(root, orchestrator, "sleep 1; echo job > c.txt; echo jobdata > u.bin", outputs=["c.txt", "u.bin"],
                  follow=False).job
    (dataset / "c.txt").write_text("mine\n")
    sh(dataset, "git", "commit", "-qam", "mine")
    row = fetch_when_done(job.jobid)
    assert "conflicts (c.txt)" in row.get("error", ""), row
    assert git(dataset, "status", "--porcelain") == ""
    assert not (dataset / "u.bin").is_symlink() and (dataset / "u.bin").read_bytes() == bytes(range(256)) * 80
