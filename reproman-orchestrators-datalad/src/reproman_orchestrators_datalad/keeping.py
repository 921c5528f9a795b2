"""A rerun's results beside the outputs they are compared with, never over them.

``reproman rerun`` promises that the outputs a rerun may be compared with
stay in place and the rerun's versions land in
``.reproman/jobs/<resource>/<jobid>/fetched/``. For the DataLad
orchestrators that fetch a commit (``datalad-pair*``) the rerun's commits
stay on ``refs/reproman/<jobid>`` in each dataset they changed (merge them
to take the rerun's results) and its output files are copied out of those
commits: plain git files from their blobs, annexed ones from the content
the fetch brought into the local annex. A file identical to the one the
branch has is left where it is (same blob or same annex key).

The copies are excluded from ``git status`` (``.git/info/exclude``, never
committed), so the dataset stays clean and the next job can start.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Sequence
from pathlib import Path

from reproman.plugins import KeptFile, LandingReport, OrchestratorError
from reproman_orchestrators_datalad.changes import Change
from reproman_orchestrators_datalad.hierarchy import TOP, Hierarchy, join, repository
from reproman_orchestrators_datalad.local_dataset import LocalDataset

#: Where kept copies go, as a ``.git/info/exclude`` pattern (relative to the top dataset).
EXCLUDE = "/.reproman/jobs/*/*/fetched/"
_LINK = "120000"
_SUBDATASET = "160000"


def exclude_kept_copies(top: LocalDataset, pattern: str = EXCLUDE) -> None:
    """Add ``pattern`` to the top dataset's ``info/exclude`` once (local to this clone, never committed)."""
    rel = top.git("rev-parse", "--git-path", "info/exclude").stdout.strip()
    path = Path(top.path, rel) if not os.path.isabs(rel) else Path(rel)
    text = path.read_text() if path.exists() else ""
    if pattern not in text.splitlines():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + ("" if not text or text.endswith("\n") else "\n") + pattern + "\n")


def keep_beside(root: str, record_dir: str, plan: Sequence[Change], outputs: Sequence[str]) -> LandingReport | None:
    """Copy the outputs the job commits in ``plan`` changed into ``<record_dir>/fetched/``; report them as kept.

    ``None`` (nothing copied) when no existing local output differs: the
    results then land as for any job (a rerun of failed subjobs whose
    outputs are not here yet).
    """
    kept_root = Path(root, *record_dir.split("/"), "fetched")
    groups = Hierarchy.scan(root).split(outputs)
    copies: list[tuple[LocalDataset, str, str, Path, Path]] = []
    for change in plan:
        rels = groups.get(change.path)
        repo = repository(root, change.path)
        if not rels or not repo.is_repository() or not repo.has_commit(change.new):
            continue
        for mode, obj, rel in _files(repo, change.new, rels):
            local = Path(root, *join(change.path, rel).split("/"))
            if _same(repo, rel, mode, obj) and os.path.lexists(local):
                continue
            copies.append((repo, mode, obj, local, kept_root / join(change.path, rel)))
    if not any(os.path.lexists(local) for _r, _m, _o, local, _d in copies):
        return None
    report = LandingReport()
    for repo, mode, obj, local, dest in copies:
        _write(repo, mode, obj, dest)
        report.kept.append(KeptFile(local=local, fetched=dest))
    exclude_kept_copies(repository(root, TOP))
    return report


def _files(repo: LocalDataset, commit: str, rels: Sequence[str]) -> list[tuple[str, str, str]]:
    """``(mode, object, path)`` of the files under ``rels`` in ``commit`` (subdatasets left out)."""
    specs = [f":(literal){r}" for r in rels if r != TOP] if TOP not in rels else []
    out = repo.git("ls-tree", "-r", "-z", "--full-tree", commit, "--", *specs).stdout
    found = []
    for entry in out.split("\0"):
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[0] != _SUBDATASET:
            found.append((parts[0], parts[2], path))
    return found


def _same(repo: LocalDataset, rel: str, mode: str, obj: str) -> bool:
    """Does the checked-out commit have exactly this file (mode and object) at ``rel``?"""
    here = repo.git("ls-tree", "-z", "HEAD", "--", f":(literal){rel}", check=False).stdout.split("\0")[0]
    meta = here.partition("\t")[0].split()
    return len(meta) == 3 and meta[0] == mode and meta[2] == obj


def _write(repo: LocalDataset, mode: str, obj: str, dest: Path) -> None:
    """The file ``obj`` as a plain copy at ``dest``: annexed content, a symbolic link, or the blob."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(dest):
        dest.unlink()
    raw = _blob_bytes(repo, obj)
    if mode == _LINK and b"annex/objects/" not in raw:
        os.symlink(os.fsdecode(raw), dest)
        return
    if mode == _LINK or (raw.startswith(b"/annex/objects/") and len(raw) < 1024):
        # A locked annexed file (link) or an unlocked one (pointer file): its content is in the annex.
        key = posixpath.basename(os.fsdecode(raw.strip()))
        shutil.copyfile(repo.content_location(key), dest)
    else:
        dest.write_bytes(raw)
    dest.chmod(0o755 if mode == "100755" else 0o644)


def keep_files(root: str, record_dir: str, files: Path, changed: Sequence[str]) -> LandingReport | None:
    """Move downloaded results (``files/<rel>``) that differ from the local ones into ``fetched/``.

    ``None`` (nothing moved) when no existing local file differs.
    """
    import filecmp

    kept_root = Path(root, *record_dir.split("/"), "fetched")
    moves = []
    for rel in changed:
        source = files / rel
        local = Path(root, *rel.split("/"))
        if local.is_file() and source.is_file() and filecmp.cmp(source, local, shallow=False):
            continue
        moves.append((source, local, kept_root / rel))
    if not any(os.path.lexists(local) for _s, local, _d in moves):
        return None
    report = LandingReport()
    for source, local, dest in moves:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(dest):
            dest.unlink()
        shutil.move(str(source), str(dest))
        report.kept.append(KeptFile(local=local, fetched=dest))
    return report


def _blob_bytes(repo: LocalDataset, obj: str) -> bytes:
    """The exact bytes of a git object (``LocalDataset.git`` decodes text)."""
    import subprocess

    proc = subprocess.run(["git", "cat-file", "blob", obj], cwd=repo.path, capture_output=True)
    if proc.returncode != 0:
        raise OrchestratorError(f"could not read {obj} in {repo.path}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout
