"""What of a job is really on its resource, and removing it with a true account of what happened.

A user may remove a job's files on the resource by hand; ``jobs --delete``
and ``jobs --status`` must then say so rather than repeat what ReproMan
last did there. Each question is one remote command whatever the number of
paths: the paths travel on standard input, so no argument-length limit applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from reproman.resources.session import Session


def _listing(paths: list[str]) -> bytes:
    # One path per line: a path with a newline cannot travel this way (ReproMan never makes one).
    return "".join(p + "\n" for p in paths if "\n" not in p).encode("utf-8", "surrogateescape")


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", "surrogateescape")
    return [line for line in text.splitlines() if line]


_THERE = '[ -e "$p" ] || [ -L "$p" ]'


def absent(session: Session, paths: list[str]) -> set[str]:
    """Those of ``paths`` that do not exist on the resource (a dangling link counts as existing)."""
    if not paths:
        return set()
    script = f'while IFS= read -r p; do if ! {{ {_THERE}; }}; then printf "%s\\n" "$p"; fi; done'
    result = session.execute_command(script, stdin=_listing(paths), check=True)
    return set(_lines(result.stdout_bytes)) & set(paths)


@attrs.frozen
class Removal:
    """What :func:`remove` left behind, and the first thing ``rm`` said about it."""

    left: tuple[str, ...] = ()
    why: str = ""


def remove(session: Session, paths: list[str]) -> Removal:
    """``rm -rf`` each of ``paths``, then say which are still there and why (``rm``'s first complaint).

    Raises what the session raises when the resource cannot be reached.
    """
    if not paths:
        return Removal()
    script = ('while IFS= read -r p; do rm -rf -- "$p" 2>&1 >/dev/null | head -n 1 >&2; '
              f'if {_THERE}; then printf "%s\\n" "$p"; fi; done')
    result = session.execute_command(script, stdin=_listing(paths))
    left = tuple(p for p in _lines(result.stdout_bytes) if p in paths)
    said = _lines(result.stderr_bytes)
    why = said[0].strip() if said else ("" if not left else f"the command removing them exited {result.returncode}")
    return Removal(left=left, why=why if left else "")
