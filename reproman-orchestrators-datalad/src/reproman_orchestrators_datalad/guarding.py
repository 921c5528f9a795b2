"""A subjob that did not succeed never commits its output over a file the dataset already had.

Core's ``plain`` orchestrator keeps such a local file and puts the
subjob's version aside (:attr:`reproman.plugins.Landing.guarded`). The
DataLad orchestrators commit a job's results instead, so a failed subjob's
empty or half-written file used to become the branch's current version of
the user's committed result, with only "(2 of 3 subjobs failed)" in the
subject to tell. Now, for every output core guards (owed by a subjob that
did not succeed), each file the job's starting commit had and the job
changed or deleted is committed as it was, and what the subjob left there
goes into the job's record at ``<record>/failed-outputs/<path>``, committed
with it: both versions are in the same commit, the branch keeps the user's,
and the commit message names the files (:func:`note`). New files land as
before, as with core: there was nothing to lose.

The copies are not under ``<record>/fetched/``: a rerun keeps its
uncommitted copies there, and that directory is excluded from git in the
dataset (see :mod:`reproman_orchestrators_datalad.keeping`).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Sequence
from pathlib import Path
from shlex import quote as q

from reproman.plugins import KeptFile, LandingReport, relative_path

#: Below the job record: what subjobs that did not succeed left over the dataset's files.
KEPT_DIR = "failed-outputs"
#: How many kept files the commit message names one by one.
NAMED = 20


def guarded(paths: Iterable[str], local_directory: str) -> list[str]:
    """Core's guarded outputs (absolute local paths) as paths relative to the dataset, ``.`` for all of it."""
    rels = {posixpath.normpath(relative_path(p, local_directory)) for p in paths}
    return sorted(r for r in rels if r != ".." and not r.startswith("../"))


def owed(rel: str, outputs: Sequence[str]) -> bool:
    """Is ``rel`` one of ``outputs`` or inside one (``.`` holds everything)?"""
    rel = posixpath.normpath(rel)
    return any(o == "." or rel == o or rel.startswith(o.rstrip("/") + "/") for o in outputs)


def header(record_dir: str) -> str:
    """The first line of :func:`note` (also written by the shell code that saves on the resource)."""
    return (f"Kept as they were: outputs of subjobs that did not succeed (what those left there is in "
            f"{record_dir}/{KEPT_DIR}/):")


def note(record_dir: str, kept: Sequence[str]) -> str:
    """The commit message's paragraph naming the files kept as they were (empty without any)."""
    if not kept:
        return ""
    lines = [header(record_dir), *(f"  {p}" for p in kept[:NAMED])]
    if len(kept) > NAMED:
        lines.append(f"  and {len(kept) - NAMED} more")
    return "\n".join(lines) + "\n"


def report(root: str, record_dir: str, kept: Sequence[str]) -> LandingReport | None:
    """Core's view of the kept files: it warns about each and checks the copies against the checksums."""
    if not kept:
        return None
    base = Path(root, *record_dir.split("/"), KEPT_DIR)
    result = LandingReport()
    for rel in kept:
        copy = base / rel
        if os.path.lexists(copy):
            result.kept.append(KeptFile(local=Path(root, rel), fetched=copy, guarded=True))
    return result


def shell(dataset: str, rels: Sequence[str], kept_dir: str) -> str:
    """Shell code run at the top of the dataset on the resource, before the save: keep what ``rels`` changed.

    For each file of ``dataset`` (a path from the top, ``""`` for the
    top) under ``rels`` that differs from ``HEAD`` (the job's starting
    commit; the job has not been saved yet): the work-tree version moves
    to ``kept_dir`` (a shell word) under its path from the top, and
    ``HEAD``'s version is checked out again. Prints ``KEPT path`` for each.
    ``git diff`` runs git-annex's filter, so an annexed file the job
    unlocked but left alone is no change.
    """
    prefix = dataset.rstrip("/") + "/" if dataset else ""
    body = (
        'k=$1; p=$2; shift 2; for f; do t="$k/$p$f"; '
        'if [ -e "$p$f" ] || [ -L "$p$f" ]; then mkdir -p "$(dirname "$t")" && mv -f "$p$f" "$t" || exit 1; fi; '
        'git -C "./$p" checkout -q HEAD -- "$f" || exit 1; printf "KEPT %s\\n" "$p$f"; done'
    )
    paths = " ".join(q(r) for r in rels)
    return (f"git -C {q('./' + prefix)} diff -z --name-only --no-renames --ignore-submodules=all --diff-filter=MTD "
            f"HEAD -- {paths} | xargs -0 -r sh -c {q(body)} sh {kept_dir} {q(prefix)}")
