"""What each input looked like when a job was submitted: size and modification time, by ``stat`` alone.

Why: two runs of a job can differ because their inputs did. Without a
record of the inputs, ``diff`` and ``rerun --verify`` can only say that an
output changed, and the user concludes the job is not deterministic.
Hashing inputs would settle it, but inputs are often large data read at
every submission; a ``stat`` per file costs microseconds and catches every
edit a user makes (an editor, ``cp``, a regenerated file) except one that
restores both size and time.

A directory input is summarised: its number of files, their total size and
the newest modification time under it (symbolic links are not followed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any


def snapshot(inputs: Iterable[str], base: str) -> dict[str, dict[str, int]]:
    """``{input: {"size": N, "mtime_ns": T}}`` (directories also ``"files"``); inputs not there are left out."""
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


def _tree(top: str) -> dict[str, int]:
    files = size = newest = 0
    for directory, dirs, names in os.walk(top):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            try:
                st = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            files += 1
            size += st.st_size
            newest = max(newest, st.st_mtime_ns)
    return {"files": files, "size": size, "mtime_ns": newest}


def changed(left: Mapping[str, Any], right: Mapping[str, Any]) -> list[str]:
    """Inputs recorded by both jobs whose size, time or file count differ (sorted)."""
    return sorted(rel for rel in set(left) & set(right)
                  if isinstance(left[rel], Mapping) and isinstance(right[rel], Mapping)
                  and any(left[rel].get(k) != right[rel].get(k) for k in ("size", "mtime_ns", "files")))
