"""``execute --trace``: run a command under strace on the resource and retrace the files it used.

Also the parser that job tracing (:mod:`reproman.jobs.nodetrace`) applies
to the strace log of every subjob.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from reproman.errors import TracingError, UsageError
from reproman.resources.session import CommandResult
from reproman.tracing.spec import EnvironmentSpec

if TYPE_CHECKING:
    from reproman.resources.session import Session


@attrs.frozen
class TracedResult(CommandResult):
    """A command's result plus the environment spec of the files it opened."""

    spec: EnvironmentSpec | None = None


#: Where opened files are not environment but the machine's own state.
_SKIP_PREFIXES = ("/proc/", "/sys/", "/dev/", "/run/")
#: A successful ``execve`` in the log: the traced command (or a child) did start.
_STARTED_RE = re.compile(r'^(?:\d+\s+)?execve\(.*\) = 0\s*$', re.MULTILINE)
_OPEN_RE = re.compile(r'^(?:\d+\s+)?(?:open|openat|openat2|execve|execveat)\((?:[^",]*, )?"((?:[^"\\]|\\.)*)"')


def parse_strace(text: str) -> list[str]:
    """Absolute paths that a traced process opened or executed successfully."""
    paths: dict[str, None] = {}
    for line in text.splitlines():
        match = _OPEN_RE.match(line)
        # A call split by another process's line (``<unfinished ...>``) is kept:
        # its outcome is on a later line we do not pair up, and a path that
        # does not exist ends up, harmlessly, in ``files:`` as missing.
        if not match or re.search(r"\) = -1 ", line[match.end():]):
            continue
        raw = match.group(1)
        path = raw.encode("latin-1", "backslashreplace").decode("unicode_escape", "replace") if "\\" in raw else raw
        if path.startswith("/") and not path.startswith(_SKIP_PREFIXES):
            paths[posixpath.normpath(path)] = None
    return list(paths)


def trace_execution(session: Session, argv: Sequence[str]) -> TracedResult:
    """Run ``argv`` under ``strace`` on the resource, then retrace the files it used.

    A minimal, honest tracer: ``strace -f`` records every successful
    ``open``/``openat``/``execve`` of the command and its children, and those
    files go through the same retrace as ``reproman retrace``. Without strace
    on the resource this refuses rather than silently tracing nothing.
    """
    if not argv:
        raise UsageError("no command to trace")
    check = session.execute_command("command -v strace")
    if check.returncode != 0:
        raise TracingError(
            "execute --trace needs strace on the resource, and it is not installed",
            hint="Install it there (e.g. 'apt-get install strace' or 'yum install strace'), or run without --trace.",
        )
    log = f"/tmp/reproman-strace-{os.getpid()}-{os.urandom(4).hex()}.log"
    line = (
        f"strace -f -qq -o {shlex.quote(log)} -e trace=open,openat,execve -- "
        + " ".join(shlex.quote(a) for a in argv)
    )
    result = session.execute_command(line)
    fetched = session.execute_command(f"cat {shlex.quote(log)}; rm -f {shlex.quote(log)}")
    if "ptrace" in result.stderr and "Operation not permitted" in result.stderr:
        raise TracingError(
            f"strace cannot trace on this resource: {result.stderr.strip().splitlines()[0]}",
            hint="Containers need the SYS_PTRACE capability (docker run --cap-add SYS_PTRACE).",
        )
    if not _STARTED_RE.search(fetched.stdout):
        # strace could not start the command (no such program, not executable): nothing ran,
        # so there is no environment to write down, and a trace file would say otherwise.
        said = (result.stderr.strip().splitlines() or ["strace started nothing"])[-1]
        raise TracingError(f"nothing was traced: {argv[0]!r} did not start on the resource ({said})",
                           hint="Check the command's name and path there.")
    from reproman.tracing.retrace import trace_paths

    spec = trace_paths(session, parse_strace(fetched.stdout))
    return TracedResult(command=shlex.join(argv), returncode=result.returncode, stdout_bytes=result.stdout_bytes,
                        stderr_bytes=result.stderr_bytes, spec=spec)
