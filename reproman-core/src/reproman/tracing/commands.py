"""The provenance commands behind ``reproman.api``: retrace, diff, install, execute --trace."""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs

from reproman.errors import TracingError, UsageError
from reproman.resources.session import CommandResult
from reproman.tracing.spec import EnvironmentSpec, load_spec

if TYPE_CHECKING:
    from reproman.jobs.compare import JobDiff
    from reproman.resources.session import Session
    from reproman.tracing.diff import DiffReport

lgr = logging.getLogger(__name__)


@contextmanager
def open_session(resref: Any = None, resref_type: str = "auto") -> Iterator[Session]:
    """A session on the resource ``resref`` names (a Session passed in is used as is)."""
    from reproman.resources.session import Session

    if isinstance(resref, Session):
        yield resref
        return
    from reproman.resources.manage import get_resource

    resource = get_resource(resref, resref_type)
    resource.connect()
    session = resource.get_session()
    try:
        yield session
    finally:
        session.close()


def retrace(
    path: Sequence[str] | str | None = None,
    spec: str | None = None,
    output_file: str | None = None,
    resref: Any = None,
    resref_type: str = "auto",
) -> EnvironmentSpec:
    """Trace paths (and the files of a ReproZip ``config.yml``) into an environment spec.

    With ``output_file`` the spec is also written there; the CLI prints
    ``spec.to_yaml()`` otherwise.
    """
    paths = [path] if isinstance(path, str) else list(path or [])
    if spec:
        from reproman.tracing.reprozip import read_reprozip

        paths = read_reprozip(spec) + paths
    if not paths:
        if spec:
            raise TracingError(f"{spec} lists no files to trace")
        raise UsageError("nothing to trace", hint="Give paths, or a ReproZip trace with --spec.")
    from reproman.tracing.retrace import trace_paths

    with open_session(resref, resref_type) as session:
        result = trace_paths(session, paths)
    if output_file:
        result.write(output_file)
    return result


def diff(prov1: str | EnvironmentSpec, prov2: str | EnvironmentSpec, satisfies: bool = False) -> DiffReport | JobDiff:
    """Compare two specs (files or loaded); ``report.equal`` says whether they match (or satisfy).

    Two job IDs (no file by those names) compare the jobs instead: see
    :func:`diff_jobs_if_jobs`.
    """
    if isinstance(prov1, str) and isinstance(prov2, str):
        jobs = diff_jobs_if_jobs(prov1, prov2, satisfies)
        if jobs is not None:
            return jobs
    from reproman.tracing.diff import diff_specs

    return diff_specs(as_spec(prov1), as_spec(prov2), satisfies=satisfies)


def diff_jobs_if_jobs(prov1: str, prov2: str, satisfies: bool = False) -> JobDiff | None:
    """Outputs (by checksum) and environments of two recorded jobs, when both arguments name jobs."""
    from reproman.jobs.compare import diff as diff_jobs

    return diff_jobs(prov1, prov2, satisfies)


def as_spec(spec: str | os.PathLike[str] | EnvironmentSpec) -> EnvironmentSpec:
    """A spec object as is, a file name loaded (``retrace`` returns the former, users give the latter)."""
    return spec if isinstance(spec, EnvironmentSpec) else load_spec(spec)


def install(resref: Any, spec: Sequence[str | EnvironmentSpec] | str | EnvironmentSpec,
            resref_type: str = "auto") -> Any:
    """Install spec(s) on a resource (implemented in :mod:`reproman.tracing.install`)."""
    from reproman.tracing.install import install as _install

    return _install(resref=resref, spec=spec, resref_type=resref_type)


# -- execute --trace -------------------------------------------------------------------
@attrs.frozen
class TracedResult(CommandResult):
    """A command's result plus the environment spec of the files it opened."""

    spec: EnvironmentSpec | None = None


#: Where opened files are not environment but the machine's own state.
_SKIP_PREFIXES = ("/proc/", "/sys/", "/dev/", "/run/")
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
    from reproman.tracing.retrace import trace_paths

    spec = trace_paths(session, parse_strace(fetched.stdout))
    return TracedResult(command=shlex.join(argv), returncode=result.returncode, stdout_bytes=result.stdout_bytes,
                        stderr_bytes=result.stderr_bytes, spec=spec)
