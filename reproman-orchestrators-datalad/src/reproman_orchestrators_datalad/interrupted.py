"""A ``datalad-local-run`` commit that survives being killed half-way: a journal, then resume or undo.

``datalad-local-run`` commits a job's results *here*: it puts the files in
the work tree and runs ``datalad save``, which commits every subdataset
first and the top dataset last. A fetch killed anywhere in between (kill -9,
a closed terminal, a crash) would leave files unsaved, or subdatasets
committed under a top dataset that is not, or every commit made but no
``refs/reproman/<jobid>``: the next fetch would refuse the "unsaved" tree or
commit the job a second time, conflicting with the first.

So before touching the work tree, the fetch writes a journal (inside
``.git``, never committed) naming every dataset it commits in, the commit it
commits on, where the dataset was, and the paths it writes. The next fetch,
holding the same lock, finds the journal and either

* **adopts** the commit when the top dataset's ``HEAD`` is already the job's
  run record (the save got that far; subdatasets are committed before the
  top), setting the job's ref wherever a commit was made; or
* **undoes** the partial work (each dataset's commit of this job is taken
  back with the work tree kept, the journaled paths are put back as they
  were in the starting commit, and new files are removed), so the fetch
  commits everything again, exactly once.

Either way every dataset goes back to the branch (or commit) it was on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from reproman.plugins import OrchestratorError
from reproman_orchestrators_datalad.hierarchy import TOP, relative, repository, within
from reproman_orchestrators_datalad.local_dataset import LocalDataset

lgr = logging.getLogger("reproman.orchestrators_datalad")


class CommitJournal:
    """The journal of one job's local commit, in the top dataset's ``.git/reproman/local-run/``."""

    def __init__(self, root: str, jobid: str) -> None:
        self.root = root
        self.jobid = jobid
        gitdir = LocalDataset(root).git("rev-parse", "--absolute-git-dir", check=False).stdout.strip()
        self.path = Path(gitdir or os.path.join(root, ".git"), "reproman", "local-run", f"{jobid}.json")

    # -- writing ------------------------------------------------------------------------
    def begin(self, datasets: Sequence[dict[str, str]], paths: Sequence[str], moved: bool) -> None:
        """Record, durably, what the commit is about to touch (before anything is)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8", errors="surrogateescape") as handle:
            json.dump({"datasets": list(datasets), "paths": list(paths), "moved": moved}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def end(self) -> None:
        self.path.unlink(missing_ok=True)

    def exists(self) -> bool:
        return self.path.exists()

    # -- resuming -----------------------------------------------------------------------
    def resume(self, ref: str) -> None:
        """Finish (adopt) or undo the interrupted commit, so exactly one commit of the job results."""
        with open(self.path, encoding="utf-8", errors="surrogateescape") as handle:
            journal = json.load(handle)
        datasets: list[dict[str, str]] = journal["datasets"]
        paths: list[str] = journal["paths"]
        repos = {d["path"]: repository(self.root, d["path"]) for d in datasets}
        started = self.path.stat().st_mtime
        for d in datasets:
            self._drop_stale_index_lock(repos[d["path"]], started)
        top = next(d for d in datasets if d["path"] == TOP)
        if self._is_ours(repos[TOP], top["target"]):
            lgr.info("job %s: an interrupted fetch had committed it; taking that commit", self.jobid)
            for d in datasets:
                repo = repos[d["path"]]
                if repo.rev("HEAD") != d["target"]:
                    repo.git("update-ref", ref, "HEAD")
        else:
            lgr.info("job %s: undoing what an interrupted fetch left half-committed", self.jobid)
            for d in reversed(datasets):  # deepest first: a parent's gitlink is reset after its child
                self._undo(repos[d["path"]], d, datasets, paths)
        if journal.get("moved"):
            for d in datasets:
                repo = repos[d["path"]]
                if d["branch"]:
                    repo.git("checkout", "-q", d["branch"])
                else:
                    repo.git("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", d["head"])
        self.end()

    def _is_ours(self, repo: LocalDataset, target: str) -> bool:
        """Is ``HEAD`` this job's commit on ``target``?"""
        if repo.rev("HEAD") == target or repo.rev("HEAD^") != target:
            return False
        message = repo.git("log", "-1", "--format=%B", "HEAD").stdout
        return f'"reproman_jobid": "{self.jobid}"' in message

    def _undo(self, repo: LocalDataset, dataset: dict[str, str], datasets: Sequence[dict[str, str]],
              paths: Sequence[str]) -> None:
        """Take back this job's commit in one dataset (work tree kept), then put its journaled paths back."""
        target = dataset["target"]
        if repo.rev("HEAD") != target:
            if not self._is_ours(repo, target):
                raise OrchestratorError(
                    f"the interrupted fetch of job {self.jobid} cannot be resumed: {repo.path} is at a commit "
                    "that is neither the one the job started on nor the job's",
                    hint=f"Put it back on {target[:10]} (or remove {self.path} to take it as it is), then fetch "
                    f"again with 'reproman jobs {self.jobid}'.",
                )
            repo.git("reset", "-q", "--soft", target)
        here = dataset["path"]
        children = [d["path"] for d in datasets if d.get("parent") == here and d["path"] != here]
        owned = [relative(p, here) for p in paths
                 if within(p, here) and not any(within(p, c) for c in children if c != here)]
        gitlinks = [relative(c, here) for c in children]
        if owned or gitlinks:
            repo.git("reset", "-q", target, "--", *owned, *gitlinks, check=False)
        if not owned:
            return
        tracked = set(repo.git("ls-tree", "-r", "-z", "--name-only", target, "--", *owned,
                               check=False).stdout.split("\0")) - {""}
        if tracked:
            repo.git("checkout", "-q", target, "--", *sorted(tracked))
        for rel in owned:
            full = Path(repo.path, rel)
            if rel in tracked or not os.path.lexists(full):
                continue
            if full.is_dir() and not full.is_symlink():
                shutil.rmtree(full)
            else:
                full.unlink()

    @staticmethod
    def _drop_stale_index_lock(repo: LocalDataset, started: float) -> None:
        """A git process killed with the fetch leaves ``index.lock``; git would refuse every later command.

        Only a lock made after the interrupted fetch began is removed: the
        fetch lock is held (by this process, or an orphan of the killed one,
        which would still hold it), so that git process is gone.
        """
        gitdir = repo.git("rev-parse", "--absolute-git-dir", check=False).stdout.strip()
        lock = Path(gitdir, "index.lock") if gitdir else None
        if lock is not None and lock.exists() and lock.stat().st_mtime >= started - 1:
            lgr.info("removing %s left by the interrupted fetch", lock)
            lock.unlink(missing_ok=True)

