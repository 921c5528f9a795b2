"""What bringing a job's results in would do to local files, checked before anything is written.

The DataLad orchestrators land results with git (a merge, or a commit of
downloaded files), not with core's landing rules, but keep the same
promises (see "The fetch contract" in ``docs/plugin-authors.md``):

* no type changes: a result file where a local directory is, or below a
  local file or symbolic link, is refused;
* nothing local is destroyed: a path the job changes that has unsaved
  changes here, is untracked or ignored (git would overwrite an ignored
  file silently), or that the job deletes while it exists here, is refused;
* all problems are reported at once, with absolute paths, before any
  dataset is touched, as :class:`reproman.errors.OutputConflictError` (core
  adds that nothing was changed and how to fetch again).

What the job did to files that are unchanged here is the job's result and
is recorded in git like any commit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reproman.plugins import OutputConflictError
from reproman_orchestrators_datalad.hierarchy import repository

if TYPE_CHECKING:
    from reproman_orchestrators_datalad.changes import Change

_SUBDATASET = "160000"
#: ``git status`` takes paths as arguments only: this many per call stays far below any length limit.
_PATHS_PER_CALL = 500


def type_problems(root: str, paths: Iterable[str]) -> dict[Path, str]:
    """Result files (relative to ``root``) that would replace a directory or go through a file or link."""
    problems: dict[Path, str] = {}
    top = Path(root)
    for rel in paths:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            parent = top.joinpath(*parts[:i])
            if parent.is_symlink() or (os.path.lexists(parent) and not parent.is_dir()):
                problems.setdefault(parent, f"is a {'link' if parent.is_symlink() else 'file'} here")
                break
        else:
            dest = top / rel
            if dest.is_dir() and not dest.is_symlink():
                problems.setdefault(dest, "is a directory here")
    return problems


def local_state(root: str, dataset: str, rels: Sequence[str]) -> dict[str, str]:
    """``rel -> problem`` for paths of one dataset with unsaved changes, untracked or ignored here."""
    repo = repository(root, dataset)
    out = ""
    for start in range(0, len(rels), _PATHS_PER_CALL):
        specs = [f":(literal){r}" for r in rels[start:start + _PATHS_PER_CALL]]
        out += repo.git("status", "--porcelain", "-z", "--untracked-files=all", "--ignored=matching",
                        "--ignore-submodules=all", "--", *specs).stdout
    found: dict[str, str] = {}
    entries = out.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        code, rel = entry[:2], entry[3:]
        if code[0] in "RC":
            i += 1  # a rename is followed by its source path
        what = {"??": "is untracked here", "!!": "is ignored by git here"}.get(code, "has unsaved changes here")
        if rel.endswith("/"):
            # A whole directory is untracked or ignored: name the paths asked about inside it.
            for asked in rels:
                if asked.startswith(rel):
                    found[asked] = what
        else:
            found[rel] = what
    return found


def merge_problems(root: str, plan: Sequence[Change]) -> list[str]:
    """Everything merging ``plan`` would destroy locally, one line each (empty: safe to merge)."""
    problems: list[str] = []
    for change in plan:
        repo = repository(root, change.path)
        if not change.old or not repo.is_repository() or not repo.has_commit(change.new):
            continue
        raw = repo.git("diff", "--raw", "-z", "--no-abbrev", "--no-renames", change.old, change.new).stdout
        written, deleted = _job_paths(raw)
        top = repo.path
        typed = type_problems(top, written)
        problems += [f"{path} {what}" for path, what in typed.items()]
        state = local_state(root, change.path, [*written, *deleted])
        for rel in [*written, *deleted]:
            full = Path(top, rel)
            if any(b == full or b in full.parents for b in typed):
                continue
            if rel in state:
                problems.append(f"{full} {state[rel]}")
            elif rel in deleted and os.path.lexists(full):
                problems.append(f"{full} would be deleted")
    return problems


def _job_paths(raw: str) -> tuple[list[str], list[str]]:
    """Files a job commit writes and files it deletes, from ``git diff --raw -z`` (subdatasets left out)."""
    fields = raw.split("\0")
    written: list[str] = []
    deleted: list[str] = []
    for i in range(0, len(fields) - 1, 2):
        parts = fields[i].lstrip(":").split()
        if len(parts) < 5:
            continue
        old_mode, new_mode, status = parts[0], parts[1], parts[4]
        if _SUBDATASET in (old_mode, new_mode):
            continue
        (deleted if status.startswith("D") else written).append(fields[i + 1])
    return written, deleted


def refuse(problems: Sequence[str], waiting: str) -> OutputConflictError:
    """One error naming the first problems and where the results wait meanwhile."""
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return OutputConflictError(f"{shown} (the results wait {waiting})")
