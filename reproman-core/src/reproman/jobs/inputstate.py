"""What each input looked like when a job was submitted: size and modification time, by ``stat`` alone.

Why: two runs of a job can differ because their inputs did. Without a
record of the inputs, ``diff`` and ``rerun --verify`` can only say that an
output changed, and the user concludes the job is not deterministic.
Hashing inputs would settle it, but inputs are often large data read at
every submission; a ``stat`` per file costs microseconds and catches every
edit a user makes (an editor, ``cp``, a regenerated file) except one that
restores both size and time.

A directory input is summarised: its number of files, their total size and
the sum of their modification times (any one file touched, to an older time
too, changes it; symbolic links are not followed).
A tree of more than :data:`WALK_LIMIT` files is not walked to its end (a
submission must stay quick whatever the data): it is recorded as ``partial``
and compared by the files seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any


def snapshot(inputs: Iterable[str], base: str) -> dict[str, dict[str, int]]:
    """``{input: {"size": N, "mtime_ns": T}}`` (directories: ``files``, ``size``, ``mtimes_ns``); absent ones left out."""
    found: dict[str, dict[str, int]] = {}
    for rel in inputs:
        path = os.path.join(base, rel)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            found[rel] = _tree(path)
        else:
            found[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return found


#: Files of one input directory looked at, at most, per submission.
WALK_LIMIT = 20_000


def _tree(top: str) -> dict[str, int]:
    files = size = times = 0
    for directory, dirs, names in os.walk(top):
        dirs.sort()
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in sorted(names):
            if files >= WALK_LIMIT:
                return {"files": files, "size": size, "mtimes_ns": times, "partial": 1}
            try:
                st = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            files += 1
            size += st.st_size
            times += st.st_mtime_ns
    return {"files": files, "size": size, "mtimes_ns": times}


def changed(left: Mapping[str, Any], right: Mapping[str, Any]) -> list[str]:
    """Inputs recorded by both jobs whose size, time or file count differ (sorted)."""
    return sorted(rel for rel in set(left) & set(right)
                  if isinstance(left[rel], Mapping) and isinstance(right[rel], Mapping)
                  and any(left[rel].get(k) != right[rel].get(k) for k in ("size", "mtime_ns", "mtimes_ns", "files")))
