"""Bring a job's commits into the local dataset hierarchy, all of it or none of it.

A job that wrote into subdatasets left one commit in each dataset it
changed, and the top commit records the subdatasets' new commits. Merging
the top alone would leave every changed subdataset "modified" (the tree
records a commit the subdataset has not checked out), so the merge goes
bottom-up: the deepest changed subdataset first, then its parent, up to the
top, each by fast-forward when nothing happened there meanwhile.

When a dataset had commits of its own meanwhile it gets a merge commit,
and its parent then records the merged subdataset, not the job's commit,
so that every level ends clean. If any step is impossible (a conflict, an
untracked file in the way, another branch checked out), every dataset
already moved is put back where it was and the error says where the job's
commits are: nothing is half-merged. What git would do to local files that
it cannot give back (unsaved edits, ignored files, a directory where a
result file goes) is refused before any dataset is touched (see
:mod:`reproman_orchestrators_datalad.safety`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import attrs

from reproman.plugins import OrchestratorError
from reproman_orchestrators_datalad.changes import Change
from reproman_orchestrators_datalad.hierarchy import TOP, join, relative, repository
from reproman_orchestrators_datalad.local_dataset import LocalDataset
from reproman_orchestrators_datalad.safety import merge_problems, refuse

lgr = logging.getLogger("reproman.orchestrators_datalad")

@attrs.define
class _Undo:
    repo: LocalDataset
    head: str
    branch: str


class HierarchyMerge:
    """Merge one job's commits into every dataset it changed, or leave them all alone."""

    def __init__(self, root: str, jobid: str, ref: str, branch: str) -> None:
        self.root = root
        self.jobid = jobid
        self.ref = ref
        #: The branch the job started from: the results go there or nowhere.
        self.branch = branch
        self.message = f"[ReproMan] merge results of job {jobid}"
        self._undo: list[_Undo] = []

    def run(self, plan: Sequence[Change]) -> None:
        """Merge ``plan`` (from :func:`~reproman_orchestrators_datalad.changes.changes`) deepest first; on any failure undo and raise."""
        current = repository(self.root, TOP).current_branch()
        if current != self.branch:
            raise self._kept(
                f"branch {self.branch!r} is not checked out (HEAD is {current or 'detached'})",
                f"Check out {self.branch!r} and fetch again with 'reproman jobs {self.jobid}', "
                f"or merge {self.ref} where you want the results.",
            )
        # A subdataset the job created and whose commits did not come here is recorded by its
        # parent only (it reads as not installed, as after 'datalad clone').
        plan = [c for c in plan if c.old or repository(self.root, c.path).is_repository()]
        for change in plan:
            if change.path == TOP:
                continue
            repo = repository(self.root, change.path)
            if not repo.is_repository():
                raise self._kept(f"subdataset {change.path} is not installed here",
                                 f"Install it with 'datalad get -n {change.path}', then fetch again.")
            if not repo.has_commit(change.new):
                raise self._kept(f"the job's commit {change.new[:10]} is missing from subdataset {change.path}")
        problems = merge_problems(self.root, plan)
        if problems:
            raise refuse(problems, f"on {self.ref}")
        diverged: set[str] = set()
        try:
            for change in sorted(plan, key=lambda c: -c.level):
                children = [c.path for c in plan if c.parent == change.path and c.path != TOP]
                if self._merge_one(change, [relative(c, change.path) for c in children],
                                   any(c in diverged for c in children)):
                    diverged.add(change.path)
        except OrchestratorError:
            self.rollback()
            raise

    def _merge_one(self, change: Change, children: list[str], child_diverged: bool) -> bool:
        """Merge ``change.new`` into one dataset; True when its HEAD is not the job's commit afterwards."""
        repo = repository(self.root, change.path)
        head = repo.rev("HEAD")
        branch = repo.current_branch()
        where = "the dataset" if change.path == TOP else f"subdataset {change.path}"
        if head == change.new or repo.is_ancestor(change.new, head):
            return head != change.new
        self._undo.append(_Undo(repo=repo, head=head, branch=branch))
        if not child_diverged and repo.is_ancestor(head, change.new):
            if branch:
                proc = repo.git("merge", "--ff-only", "-q", change.new, check=False)
            else:
                proc = repo.git("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", change.new,
                                check=False)
            if proc.returncode != 0:
                raise self._kept(f"{where} could not be fast-forwarded: {_last_line(proc)}")
            return False
        proc = repo.git("merge", "--no-ff", "--no-commit", "-q", change.new, check=False)
        if proc.returncode != 0:
            unmerged = [p for p in repo.git("diff", "--name-only", "-z", "--diff-filter=U").stdout.split("\0") if p]
            if not unmerged or any(p not in children for p in unmerged):
                repo.git("merge", "--abort", check=False)
                shown = ", ".join(join(change.path, p) for p in unmerged[:5]) if unmerged else _last_line(proc)
                raise self._kept(f"merging into {where} conflicts ({shown})")
        if children:
            # Record the subdatasets as they now are (merged), not as the job left them.
            repo.git("add", "--", *children)
        commit = repo.git("commit", "-q", "--no-verify", "-m", self.message, check=False)
        if commit.returncode != 0:
            repo.git("merge", "--abort", check=False)
            raise self._kept(f"committing the merge in {where} failed: {_last_line(commit)}")
        return True

    def rollback(self) -> None:
        """Put every dataset this merge moved back where it was (best effort, logged)."""
        for undo in reversed(self._undo):
            repo = undo.repo
            repo.git("merge", "--abort", check=False)
            if undo.branch:
                proc = repo.git("reset", "-q", "--keep", undo.head, check=False)
            else:
                proc = repo.git("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", undo.head,
                                check=False)
            if proc.returncode != 0:
                lgr.warning("could not move %s back to %s: %s", repo.path, undo.head[:10], _last_line(proc))
            if repo.has_annex():
                # The abort rewrote unlocked annexed files through git-annex's smudge filter, which leaves
                # their index entries stale: they read "modified" (content unchanged), and saving as the
                # next refusal advises locks them (trial R, 3). Restaging refreshes the index entries.
                restaged = repo.git("annex", "restage", check=False)
                if restaged.returncode != 0:
                    lgr.warning("could not refresh the index of %s ('git annex restage'): %s", repo.path,
                                _last_line(restaged))
        self._undo.clear()

    def _kept(self, reason: str, hint: str | None = None) -> OrchestratorError:
        return OrchestratorError(
            f"the results of job {self.jobid} were not merged: {reason}; they are kept on {self.ref}",
            hint=hint or (
                f"Resolve that, then fetch again with 'reproman jobs {self.jobid}' "
                f"(or merge {self.ref} yourself, deepest subdataset first)."
            ),
        )


def _last_line(proc: object) -> str:
    stderr = getattr(proc, "stderr", "") or ""
    stdout = getattr(proc, "stdout", "") or ""
    lines = (stderr.strip() or stdout.strip()).splitlines()
    return lines[-1] if lines else "no output"
