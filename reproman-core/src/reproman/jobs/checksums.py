"""Output checksums: size and SHA-256 of every output file, computed where the job ran.

On the resource one shell step lists every regular file under the job's
outputs (``find``, skipping ``.git``) and hashes and sizes them all
(``sha256sum`` and ``stat`` through ``xargs``: a fixed number of processes
whatever the number of files). The answers are written next to the
captured environment (``env/outputs.files``, NUL-separated names;
``env/outputs.sha256`` and ``env/outputs.size``, one line per file in the
same order) and travel back with it, in the same command (see
:mod:`reproman.jobs.provenance`).

Locally, :func:`verify` checks fetched files against the record, so a
transfer that altered a byte is reported instead of trusted, and a later
fetch, a rerun or another machine can check the same way.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import stat
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

lgr = logging.getLogger(__name__)

FILES = "outputs.files"
SHA256 = "outputs.sha256"
SIZES = "outputs.size"

#: Shell code run in the working directory with ``$e`` the env directory and
#: the outputs (``./``-prefixed, NUL-separated) on its standard input. A
#: fixed handful of processes, whatever the number of outputs: this runs
#: at every fetch, and each process costs a job of 100 subjobs about 1 %.
SCRIPT = r"""
: > "$e/@SHA@"; : > "$e/@SIZES@"
xargs -0 sh -c '[ "$#" -eq 0 ] || exec find "$@" -name .git -prune -o -name .reproman -prune -o -type f -print0' sh > "$e/@FILES@" 2>/dev/null
if [ -s "$e/@FILES@" ]; then
  if command -v sha256sum >/dev/null 2>&1; then H=sha256sum
  elif command -v shasum >/dev/null 2>&1; then H="shasum -a 256"
  else H="openssl dgst -sha256 -r"; fi
  xargs -0 $H < "$e/@FILES@" > "$e/@SHA@" 2>/dev/null
  xargs -0 stat -c %s < "$e/@FILES@" > "$e/@SIZES@" 2>/dev/null ||
    xargs -0 stat -f %z < "$e/@FILES@" > "$e/@SIZES@" 2>/dev/null
fi
""".replace("@FILES@", FILES).replace("@SHA@", SHA256).replace("@SIZES@", SIZES)


def outputs_list(outputs: Iterable[str]) -> bytes:
    """The outputs as the script reads them: ``./``-prefixed (so none reads as an option), NUL-separated."""
    return b"".join(b"./" + o.lstrip("/").encode("utf-8", "surrogateescape") + b"\0" for o in outputs)


def parse(files: bytes, sums: bytes, sizes: bytes) -> dict[str, dict[str, Any]]:
    """The three answers as ``{path: {"size": N, "sha256": HEX}}``; ``{}`` if they disagree.

    ``sha256sum`` escapes names holding a newline or backslash by starting
    the line with ``\\``, so each file still has exactly one line.
    """
    names = [n for n in files.split(b"\0") if n]
    hashes = [line.split()[0].lstrip(b"\\").decode("ascii", "replace") for line in sums.split(b"\n") if line.strip()]
    counts = [line.strip() for line in sizes.split(b"\n") if line.strip()]
    if not names:
        return {}
    if len(hashes) != len(names) or len(counts) != len(names):
        lgr.warning("output checksums are incomplete (%d files, %d hashes, %d sizes): not recorded",
                    len(names), len(hashes), len(counts))
        return {}
    result: dict[str, dict[str, Any]] = {}
    for name, digest, size in zip(names, hashes, counts):
        path = name.decode("utf-8", "surrogateescape")
        path = path[2:] if path.startswith("./") else path
        result[path] = {"size": int(size) if size.isdigit() else None, "sha256": digest.lower()}
    return dict(sorted(result.items()))


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@attrs.frozen(kw_only=True)
class Verification:
    """How local files compare with a job's recorded checksums."""

    matched: list[str] = attrs.Factory(list)
    mismatched: list[str] = attrs.Factory(list)
    #: Recorded outputs with no local file (not fetched, deleted, or content not present).
    absent: list[str] = attrs.Factory(list)

    @property
    def ok(self) -> bool:
        return not self.mismatched

    def to_dict(self) -> dict[str, Any]:
        return {"matched": len(self.matched), "mismatched": self.mismatched, "absent": self.absent}


def verify(checksums: Mapping[str, Mapping[str, Any]], base: str | os.PathLike[str],
           elsewhere: Mapping[str, str] | None = None) -> Verification:
    """Compare files under ``base`` (or at ``elsewhere[path]``) with ``checksums``.

    Sizes are compared first, so a changed file costs a read only when its
    size is the same.
    """
    matched: list[str] = []
    mismatched: list[str] = []
    absent: list[str] = []
    # Keys name the same file however the output was written (``./a.txt`` under ``-o .``, ``a.txt``).
    kept = {posixpath.normpath(k): v for k, v in (elsewhere or {}).items()}
    root = os.fspath(base)
    for rel, expected in checksums.items():
        local = kept.get(posixpath.normpath(rel)) or os.path.join(root, rel)
        try:
            st = os.stat(local)
        except OSError:
            absent.append(rel)
            continue
        if not stat.S_ISREG(st.st_mode):
            absent.append(rel)
        elif expected.get("size") not in (None, st.st_size) or sha256_file(local) != expected.get("sha256"):
            mismatched.append(rel)
        else:
            matched.append(rel)
    return Verification(matched=matched, mismatched=mismatched, absent=absent)
