"""A deleted job's ``refs/reproman/<jobid>``: dropped where merged, kept (and said so) where it is the only copy.

Every DataLad orchestrator names a job's commit with ``refs/reproman/<jobid>``
in each dataset the job changed. Usually the fetch merges that commit into
the branch and the ref is only a second name for history the branch has.
But the ref can also hold the only copy of results that were fetched and
never merged:

* a merge that was refused or impossible (local changes in the way, a
  subdataset not installed): the commits stay on the ref in each dataset
  (:mod:`reproman_orchestrators_datalad.merging`);
* a rerun whose outputs differ from the ones in place: its commits stay on
  the ref, to be merged by the user (:mod:`reproman_orchestrators_datalad.keeping`).

Deleting such a ref would leave the results, and the annexed content they
name, to ``git gc`` and ``git annex unused``. So ``jobs --delete`` removes a
ref whose commit ``HEAD`` or a local branch already contains, and keeps any
other, telling the user where it is and how to merge or remove it.
"""

from __future__ import annotations

import logging
import os

from reproman_orchestrators_datalad.hierarchy import TOP, Hierarchy, repository
from reproman_orchestrators_datalad.local_dataset import LocalDataset

lgr = logging.getLogger("reproman.orchestrators_datalad")


def job_ref(jobid: str) -> str:
    return f"refs/reproman/{jobid}"


def forget_job_refs(root: str, jobid: str) -> list[str]:
    """Remove the job's merged refs in the dataset at ``root`` and its installed subdatasets; describe the kept ones."""
    if not os.path.isdir(root) or not LocalDataset(root).is_repository():
        return []  # the dataset was moved or removed: nothing of the job is left here
    ref = job_ref(jobid)
    kept: list[str] = []
    for node in Hierarchy.scan(root).installed:
        repo = repository(root, node.path)
        commit = repo.rev(ref)
        if not commit:
            continue
        if _merged(repo, commit):
            # With the old value: a ref that moved meanwhile is not deleted.
            repo.git("update-ref", "-d", ref, commit, check=False)
            lgr.debug("job %s: removed %s in %s (merged)", jobid, ref, repo.path)
        else:
            kept.append(root if node.path == TOP else os.path.join(root, *node.path.split("/")))
    if not kept:
        return []
    where = kept[0] if len(kept) == 1 else f"{len(kept)} datasets ({', '.join(kept)})"
    each = "there" if len(kept) == 1 else "in each"
    return [f"{ref} in {where}: it holds results of the job that were fetched but never merged, and may be "
            f"their only copy. Merge it to take them ('git merge {ref}'), or drop them with "
            f"'git update-ref -d {ref}' {each}."]


def _merged(repo: LocalDataset, commit: str) -> bool:
    """Does ``HEAD`` or a local branch contain ``commit`` (so the ref is not needed to keep it)?"""
    if repo.is_ancestor(commit, "HEAD"):
        return True
    branches = repo.git("for-each-ref", "--contains", commit, "--count=1", "--format=%(refname)", "refs/heads",
                        check=False)
    return branches.returncode == 0 and bool(branches.stdout.strip())
