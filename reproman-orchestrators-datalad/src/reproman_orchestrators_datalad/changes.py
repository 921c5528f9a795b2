"""What a job changed in a dataset hierarchy: one :class:`Change` per dataset, read from its commits.

The plan that :mod:`reproman_orchestrators_datalad.merging` carries out and
:mod:`reproman_orchestrators_datalad.safety` checks first.
"""

from __future__ import annotations

import attrs

from reproman_orchestrators_datalad.hierarchy import TOP, join, repository
from reproman_orchestrators_datalad.local_dataset import LocalDataset

_NULL = "0" * 40


@attrs.frozen(kw_only=True)
class Change:
    """One dataset the job changed: its commit before the job and the job's commit."""

    path: str
    old: str
    new: str
    #: The dataset that records this one (``""`` for the top) and how many datasets are above it.
    parent: str = ""
    level: int = 0


def changes(root: str, base: str, commit: str) -> list[Change]:
    """The datasets a job commit changed, read from the subdataset commits it records, parents first.

    Subdatasets that are not installed here cannot be followed further
    (their commits are not here); they are listed and the merge refuses them.
    """
    found = [Change(path=TOP, old=base, new=commit)]
    queue = [found[0]]
    while queue:
        change = queue.pop(0)
        repo = repository(root, change.path)
        if not repo.is_repository() or not repo.has_commit(change.new):
            continue
        for path, old, new in _gitlink_changes(repo, change.old, change.new):
            sub = Change(path=join(change.path, path), old="" if old == _NULL else old, new=new,
                         parent=change.path, level=change.level + 1)
            found.append(sub)
            queue.append(sub)
    return found


def _gitlink_changes(repo: LocalDataset, old: str, new: str) -> list[tuple[str, str, str]]:
    """``(path, old commit, new commit)`` of the subdatasets whose recorded commit differs."""
    out = repo.git("diff", "--raw", "-z", "--no-abbrev", "--no-renames", old, new).stdout
    fields = out.split("\0")
    result = []
    for i in range(0, len(fields) - 1, 2):
        meta, path = fields[i], fields[i + 1]
        parts = meta.lstrip(":").split()
        if len(parts) >= 4 and parts[1] == "160000":
            result.append((path, parts[2] if parts[0] == "160000" else _NULL, parts[3]))
    return result
