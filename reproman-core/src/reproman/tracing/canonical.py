"""Canonical paths on a resource, for all paths in one remote command.

Tracers ask package databases about files, and databases know files by one
spelling: ``/usr/bin/awk`` is an alternatives symlink whose package file is
``/usr/bin/mawk``; ``/lib`` is a symlink to ``usr/lib`` on merged-/usr
systems. So before lookup every path is made absolute and its symlinks
followed (``realpath -m``, batched through ``xargs``), and we remember what the
user called it: the link itself is traced too (it often belongs to another
package, e.g. ``python3`` vs ``python3.11``), and unclaimed files are reported
under the name the user gave.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from reproman.errors import TracingError
from reproman.tracing.remote import PRINT_SECTION, run_script, sections

if TYPE_CHECKING:
    from reproman.resources.session import Session

FILE, DIR, MISSING = "file", "dir", "missing"

_SCRIPT = r"""
set -f
T=$(mktemp "${TMPDIR:-/tmp}/reproman-paths.XXXXXX") || exit 70
trap 'rm -f "$T"' EXIT
cat > "$T"
pwd
@SECTION@
if realpath -z -m -- / >/dev/null 2>&1; then
  xargs -0 realpath -z -m -- < "$T"
else
  xargs -0 sh -c 'for p; do r=$(readlink -f -- "$p" 2>/dev/null) || r=; printf "%s\0" "${r:-$p}"; done' sh < "$T"
fi
@SECTION@
xargs -0 sh -c 'for p; do if [ -L "$p" ]; then l=L; else l=-; fi; if [ -d "$p" ]; then k=D; elif [ -e "$p" ]; then k=F; else k=M; fi; printf "%s%s" "$l" "$k"; done' sh < "$T"
""".replace("@SECTION@", PRINT_SECTION)


@attrs.frozen(kw_only=True)
class PathInfo:
    """One path as given, and as the resource resolves it."""

    given: str
    #: Absolute and normalised, symlinks not followed (the name the user meant).
    absolute: str
    #: Symlinks followed: the file that actually holds the content.
    canonical: str
    is_link: bool
    #: ``file``, ``dir`` or ``missing`` (of the canonical target).
    kind: str

    @property
    def exists(self) -> bool:
        return self.kind != MISSING


def canonicalize(session: Session, paths: Sequence[str]) -> list[PathInfo]:
    """Resolve ``paths`` on the resource; one :class:`PathInfo` per path, in order."""
    if not paths:
        return []
    result = run_script(session, _SCRIPT, paths)
    parts = sections(result.stdout, 3)
    if result.returncode != 0 or len(parts) != 3:
        raise TracingError(
            f"cannot resolve paths on the resource (exit {result.returncode}): "
            f"{result.stderr.strip().splitlines()[-1:] or 'no output'}",
            hint="The resource needs a POSIX shell with mktemp, xargs and realpath or readlink.",
        )
    cwd = parts[0].strip() or "/"
    resolved = parts[1].split("\0")
    if resolved and resolved[-1] == "":
        resolved.pop()
    kinds = parts[2].strip("\n")
    if len(resolved) != len(paths) or len(kinds) != 2 * len(paths):
        raise TracingError(
            f"path resolution on the resource returned {len(resolved)} results for {len(paths)} paths"
        )
    infos: list[PathInfo] = []
    names = {"D": DIR, "F": FILE, "M": MISSING}
    for i, given in enumerate(paths):
        absolute = posixpath.normpath(posixpath.join(cwd, given))
        if absolute.startswith("//"):
            absolute = "/" + absolute.lstrip("/")
        infos.append(
            PathInfo(
                given=given,
                absolute=absolute,
                canonical=resolved[i] or absolute,
                is_link=kinds[2 * i] == "L",
                kind=names.get(kinds[2 * i + 1], MISSING),
            )
        )
    return infos


#: Top-level directories that merged-/usr systems fold into /usr.
MERGED_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def merged_usr_alternatives(path: str) -> list[str]:
    """Other spellings of ``path`` on a merged-/usr system (``/usr/lib/x`` <-> ``/lib/x``).

    Package databases register a file under the spelling its package used
    (``/lib/x86_64-linux-gnu/libc.so.6``) while realpath gives the /usr one,
    so tracers look up both.
    """
    parts = path.split("/", 3)  # ['', 'usr', 'lib', 'rest'] or ['', 'lib', 'rest']
    if len(parts) >= 3 and parts[1] == "usr" and parts[2] in MERGED_DIRS:
        return ["/" + "/".join(parts[2:])]
    if len(parts) >= 2 and parts[1] in MERGED_DIRS:
        return ["/usr" + path]
    return []
