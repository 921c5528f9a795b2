"""The provenance commands behind ``reproman.api``: retrace and diff.

``install`` has its own module (:mod:`reproman.tracing.install`), and so has
``execute --trace`` (:mod:`reproman.tracing.strace`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from reproman.errors import TracingError, UsageError
from reproman.tracing.spec import EnvironmentSpec, as_spec

if TYPE_CHECKING:
    from reproman.jobs.compare import JobDiff
    from reproman.resources.base import Resource
    from reproman.resources.session import Session
    from reproman.tracing.diff import DiffReport

lgr = logging.getLogger(__name__)


def retrace(
    path: Sequence[str] | str | None = None,
    spec: str | None = None,
    output_file: str | None = None,
    resref: str | Resource | Session | None = None,
    resref_type: str = "auto",
) -> EnvironmentSpec:
    """Trace paths (and the files of a ReproZip ``config.yml``) into an environment spec.

    With ``output_file`` the spec is also written there, a new file (an
    existing one is refused before tracing); the CLI prints
    ``spec.to_yaml()`` otherwise.
    """
    paths = [path] if isinstance(path, str) else list(path or [])
    typed = list(paths)
    if spec:
        from reproman.tracing.reprozip import read_reprozip

        paths = read_reprozip(spec) + paths
    if not paths:
        if spec:
            raise TracingError(f"{spec} lists no files to trace")
        raise UsageError("nothing to trace", hint="Give paths, or a ReproZip trace with --spec.")
    if output_file:
        from reproman.tracing.spec import check_output_file

        check_output_file(output_file, exclusive=True)
    from reproman.resources.commands import open_session
    from reproman.tracing.retrace import trace_paths

    with open_session(resref, resref_type) as session:
        result = trace_paths(session, paths, required=typed)
    if output_file:
        result.write(output_file, exclusive=True)
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
