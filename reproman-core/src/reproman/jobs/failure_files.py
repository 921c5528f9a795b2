"""Files a fetch put in place for subjobs that did not succeed, so that a later result may replace them.

A failed (cancelled, lost) subjob's output lands where no local file was:
there is nothing of the user's to keep. But it is no result either, and no
edit: a later fetch that keeps existing files (a rerun keeps every one that
differs; any fetch keeps those changed after its submission) must not keep
it in place of the good result the user asked for, and put that result aside.

So each fetch lists such files (:attr:`LandingReport.from_failures`) in its
job's local record directory (:data:`LEDGER`), with what identifies each as
it landed: size, modification time, inode and the SHA-256 of its content.
A later fetch replaces a file that still matches all of them
(:attr:`Landing.left_by_failure`); any change since (an edit, a copy over it,
a ``touch``) makes it the user's file, kept like any other. Files larger than
:data:`HASH_LIMIT`, and those past :data:`HASH_BUDGET` in one fetch, are not
listed (hashing them would cost the fetch minutes): they stay kept, which
loses nothing (the result goes aside, and the fetch says where).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from reproman.jobs import layout

lgr = logging.getLogger(__name__)

#: The list's name in a job's local record directory (``.reproman/jobs/<resource>/<jobid>/``).
LEDGER = "left-by-failures.json"
#: Larger files are not listed (see the module docstring).
HASH_LIMIT = 1 << 30
#: How many bytes one fetch hashes at most (a failed ``-o .`` job may leave a whole data set).
HASH_BUDGET = 4 << 30


@attrs.frozen(kw_only=True)
class LeftFile:
    """One file as a subjob that did not succeed left it: enough to tell whether it changed since."""

    path: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str
    #: Who left it: the job and the subjob label(s) that owed it, for the message when it is replaced.
    jobid: str = ""
    subjob: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns, "inode": self.inode,
                "sha256": self.sha256, "subjob": self.subjob}


def _digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _identify(path: Path, base: str, subjob: str, budget: int) -> LeftFile | None:
    """``path`` as it is now; ``None`` for what is not listed (not a regular file, too large, gone)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > min(HASH_LIMIT, budget):
            return None
        digest = _digest(os.fspath(path))
    except OSError:
        return None
    return LeftFile(path=os.path.relpath(os.path.abspath(path), base), size=st.st_size, mtime_ns=st.st_mtime_ns,
                    inode=st.st_ino, sha256=digest, subjob=subjob)


def record(local_directory: str, resource_name: str, jobid: str, paths: Iterable[tuple[Path, str]]) -> None:
    """Add ``(path, subjob label)`` pairs to the job's list; what an earlier fetch of the job listed stays.

    A fetch of the same job again lands the same files over themselves (not
    listed again: a local file was there), so the list only ever grows.
    Best effort: a list that cannot be written leaves the files the user's,
    which loses nothing.
    """
    from reproman.localfiles import atomic_write

    base = os.path.abspath(local_directory)
    record_dir = layout.local_record_dir(base, resource_name, jobid)
    found = {f.path: f for f in _read(os.path.join(record_dir, LEDGER), jobid)}
    budget = HASH_BUDGET
    for path, subjob in paths:
        left = _identify(path, base, subjob, budget)
        if left is None:
            lgr.debug("not listing %s as left by a subjob that did not succeed (too large, or not a file)", path)
            continue
        found[left.path] = left
        budget -= left.size
    if not found:
        return
    text = json.dumps({"files": [f.to_dict() for f in found.values()]}, indent=1) + "\n"
    try:
        os.makedirs(record_dir, exist_ok=True)
        atomic_write(os.path.join(record_dir, LEDGER), text)
    except OSError as exc:
        lgr.debug("could not list the files subjobs that did not succeed left in %s: %s", record_dir, exc)


def _read(path: str, jobid: str) -> list[LeftFile]:
    """One job's list; an unreadable one is empty (its files then count as the user's)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return [LeftFile(path=str(f["path"]), size=int(f["size"]), mtime_ns=int(f["mtime_ns"]),
                         inode=int(f["inode"]), sha256=str(f["sha256"]), jobid=jobid, subjob=str(f.get("subjob", "")))
                for f in data["files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if not isinstance(exc, FileNotFoundError):
            lgr.debug("ignoring %s: %s", path, exc)
        return []


class LeftByFailures:
    """What every job fetched into a directory listed there; callable as :attr:`Landing.left_by_failure`."""

    def __init__(self, local_directory: str) -> None:
        self.base = os.path.abspath(local_directory)
        self.files: dict[str, list[LeftFile]] = {}
        #: The listed file each local path was recognised as (by :meth:`which`), for the message once replaced.
        self.matched: dict[str, LeftFile] = {}
        jobs = os.path.join(self.base, *layout.JOBS_SUBDIR.split("/"))
        for resource in _subdirectories(jobs):
            for jobid in _subdirectories(os.path.join(jobs, resource)):
                for left in _read(os.path.join(jobs, resource, jobid, LEDGER), jobid):
                    self.files.setdefault(os.path.normpath(os.path.join(self.base, left.path)), []).append(left)

    def __bool__(self) -> bool:
        return bool(self.files)

    def __call__(self, path: Path, local: os.stat_result) -> bool:
        return self.which(path, local) is not None

    def which(self, path: Path | str, local: os.stat_result | None = None) -> LeftFile | None:
        """The listed file the local ``path`` still is (same size, time, inode and content), or ``None``."""
        key = os.path.normpath(os.path.abspath(path))
        candidates = self.files.get(key)
        if not candidates:
            return None
        try:
            local = local or os.lstat(path)
            if not stat.S_ISREG(local.st_mode):
                return None
            alike = [c for c in candidates if (c.size, c.mtime_ns, c.inode) == (local.st_size, local.st_mtime_ns,
                                                                                 local.st_ino)]
            if not alike:
                return None
            digest = _digest(os.fspath(path))
        except OSError:
            return None
        found = next((c for c in alike if c.sha256 == digest), None)
        if found is not None:
            self.matched[key] = found
        return found


def _subdirectories(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
