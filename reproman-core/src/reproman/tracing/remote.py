"""Run one shell script on a resource for many paths at once.

Tracers must not cost a remote command per file: each one ships its paths as
NUL-separated standard input to a single script, which hands them to
``xargs -0`` (so the kernel's ARG_MAX is respected by chunking *inside* that
one command), and prints its several answers separated by a marker line.
One round trip per tracer step, whatever the number of files, on ssh and
docker as on the local shell.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reproman.resources.session import CommandResult, Session

lgr = logging.getLogger(__name__)

#: Printed by scripts between sections of their output (``printf "$SEP"``).
SECTION = "@@reproman-section@@"
#: Shell snippet that prints a section marker on a line of its own.
PRINT_SECTION = f"printf '\\n%s\\n' '{SECTION}'"


def nul_join(items: Iterable[str]) -> bytes:
    """Paths as ``xargs -0`` reads them (paths may hold spaces, quotes and newlines)."""
    return b"".join(item.encode("utf-8", "surrogateescape") + b"\0" for item in items)


def run_script(session: Session, script: str, items: Iterable[str] = ()) -> CommandResult:
    """Run ``script`` with ``items`` NUL-separated on its standard input."""
    data = nul_join(items)
    lgr.debug("remote script (%d bytes of input): %s", len(data), script.splitlines()[0] if script else "")
    return session.execute_command(script, stdin=data)


def sections(stdout: str, count: int | None = None) -> list[str]:
    """Split a script's output at :data:`SECTION` lines (``count`` pads missing ones)."""
    parts = stdout.split(f"\n{SECTION}\n")
    if count is not None and len(parts) < count:
        parts += [""] * (count - len(parts))
    return parts


def shell_quote_all(words: Iterable[str]) -> str:
    import shlex

    return " ".join(shlex.quote(w) for w in words)
