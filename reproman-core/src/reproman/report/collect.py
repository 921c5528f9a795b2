"""What a job report shows, gathered without any plotting library.

Sources, best first:

* the resource: core's :func:`~reproman.jobs.status.poll` (one status read,
  at most one scheduler query, and one accounting query for finished
  subjobs whose usage is not recorded yet), which records every final
  outcome and its usage in the job record, and one ``find`` for the
  subjobs' start and end times (:mod:`reproman.jobs.timing`);
* the fetched copy of the job directory next to the results, when the
  resource cannot be reached or no longer has the job: the status files and
  their times are read there, and the report says so.

States, failure reasons, exit codes and usage figures are those the job
record keeps (``Subjob.outcome``, see :mod:`reproman.jobs.outcome`): the
first time a subjob is seen finished its outcome is stored, so a fetched
job's report keeps "walltime exceeded" and the accounting figures long
after the scheduler forgot the job, with no network.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import attrs

from reproman.errors import JobError, ReproManError
from reproman.jobs import layout, outcome, timing
from reproman.jobs.contracts import Usage
from reproman.jobs.spec import JobSpec
from reproman.jobs.status import JobStatus, RemoteFiles, interpret, local_log_dir, stderr_path

lgr = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class SubjobRow:
    """One subjob as the report shows it."""

    index: int
    state: str
    exit_code: int | None = None
    reason: str | None = None
    detail: str | None = None
    command: str = ""
    params: Mapping[str, Any] = attrs.Factory(dict)
    start: float | None = None
    end: float | None = None
    usage: Mapping[str, Any] | None = None
    stderr: str | None = None
    #: It traced its node's environment while its command ran: its usage includes that.
    captured: bool = False

    @property
    def category(self) -> str:
        """What the report draws it as: its state, with ``cancelled`` and ``lost`` told apart from ``failed``."""
        if self.state == "failed" and self.reason == "cancelled":
            return "cancelled"
        if self.state == "failed" and (self.reason or "").startswith("lost"):
            return "lost"
        return self.state


@attrs.frozen(kw_only=True)
class ReportData:
    """Everything the HTML is made from (plain data: easy to test and to benchmark)."""

    job: JobSpec
    subjobs: tuple[SubjobRow, ...]
    #: When the job was submitted (its record's ``created``), a POSIX timestamp.
    queued: float | None
    generated: float
    #: Where states and times came from, in words.
    source: str
    notes: tuple[str, ...] = ()
    #: Why there are no usage figures, when there are none ("unavailable (the resource keeps no accounting)").
    usage_note: str = ""

    def counts(self) -> dict[str, int]:
        """Subjobs per category (see :attr:`SubjobRow.category`; ``failed`` excludes cancelled and lost)."""
        counts = {"pending": 0, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0, "lost": 0, "unknown": 0}
        for row in self.subjobs:
            counts[row.category] = counts.get(row.category, 0) + 1
        return counts

    @property
    def has_usage(self) -> bool:
        return any(row.usage for row in self.subjobs)


def parse_created(text: str | None) -> float | None:
    """The record's ``created`` (ISO 8601, local time) as a timestamp."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def usage_figures(usage: Usage | None) -> dict[str, Any] | None:
    """A recorded :class:`~reproman.jobs.contracts.Usage` as the report shows it (``*_s`` seconds, ``*_bytes``)."""
    if usage is None:
        return None
    figures = {"node": usage.node or None, "elapsed_s": usage.elapsed, "cpu_s": usage.cpu_time,
               "max_rss_bytes": usage.max_rss}
    return {k: v for k, v in figures.items() if v is not None} or None


def usage_note(job: JobSpec) -> str:
    """Why no usage figures are shown (:func:`reproman.jobs.outcome.usage_rows`' words)."""
    rows = outcome.usage_rows(job)
    return rows if isinstance(rows, str) else "not recorded for any subjob"


def local_files(job_dir: str) -> RemoteFiles:
    """The status files of a fetched job directory, read like the remote status command reads them."""
    lines: dict[int, str] = {}
    try:
        names = os.listdir(job_dir)
    except OSError:
        return RemoteFiles()
    for name in names:
        kind, _, index = name.partition(".")
        if kind != "status" or not index.isdigit():
            continue
        try:
            with open(os.path.join(job_dir, name), encoding="utf-8", errors="replace") as handle:
                lines[int(index)] = handle.readline().rstrip("\n")
        except OSError:
            continue
    return RemoteFiles(
        exists=True,
        completed=os.path.exists(os.path.join(job_dir, layout.COMPLETED)),
        cancelled=os.path.exists(os.path.join(job_dir, layout.CANCELLED)),
        lines=lines,
    )


class DirectoryGone(JobError):
    """The job directory is gone from the resource; ``status`` is what the poll still knew (``unknown``)."""

    def __init__(self, message: str, status: JobStatus) -> None:
        super().__init__(message)
        self.status = status


def from_resource(
    job: JobSpec, changed: set[str] | None = None
) -> tuple[JobStatus, RemoteFiles, dict[str, dict[int, float]]]:
    """States (outcomes and usage recorded in ``job``), status lines and file times, from the resource.

    Raises :class:`ReproManError` when the resource cannot be asked. The
    jobid is added to ``changed`` when the poll recorded something in ``job``.
    """
    from reproman.jobs.connection import Connection
    from reproman.jobs.status import poll, read_files

    with Connection.for_job(job) as connection:
        submitter = connection.submitter(job.submitter)
        status = poll(connection.session, submitter, [job], changed=changed)[job.jobid]
        if status.missing:
            raise DirectoryGone(f"its directory {job.job_dir} is not on resource {job.resource_name!r}", status)
        # The status lines as they are now (the poll may have been answered a moment
        # earlier): a file's time is an end only when its line is final.
        files = read_files(connection.session, [job])[job.jobid]
        raw = timing.read_remote(connection.session, job.job_dir)
    return status, files, raw


def collect(job: JobSpec, changed: set[str] | None = None) -> ReportData:
    """Gather a report's data for ``job``: from the resource, else from the fetched copy.

    What the resource tells is recorded in ``job`` (its jobid added to
    ``changed``), for the caller to save.
    """
    notes: list[str] = []
    local_dir = local_log_dir(job)
    status: JobStatus | None = None
    problem = ""
    gone: JobStatus | None = None
    try:
        status, files, raw = from_resource(job, changed)
        source = f"resource {job.resource_name!r} ({job.job_dir})"
    except DirectoryGone as exc:
        problem, gone = str(exc), exc.status
    except ReproManError as exc:
        problem = str(exc)
    if status is None and gone is not None and not os.path.isdir(local_dir):
        # Nothing left to read: the subjobs read as 'jobs --status' says them (unknown, with the scheduler's word).
        status, files, raw = gone, RemoteFiles(), {}
        source = f"the job record and resource {job.resource_name!r}"
        unknown = sum(1 for s in gone.subjobs if s.state.value == outcome.UNKNOWN)
        notes.append(f"Its directory {job.job_dir} is gone from resource {job.resource_name!r}"
                     + (f": how {unknown} subjob(s) ended cannot be known ({outcome.UNKNOWN})." if unknown else "."))
    if status is None:
        if not os.path.isdir(local_dir):
            raise JobError(
                f"job {job.jobid}: cannot read its state: {problem or 'no fetched copy'}",
                hint=f"Its fetched copy ({local_dir}) is not there either; fetch it with 'reproman jobs {job.jobid}'.",
            )
        # The record's outcomes win over the copy's status files (see status.interpret).
        files = local_files(local_dir)
        status = interpret(job, files)
        raw = timing.read_local(local_dir)
        source = f"the job record and the fetched copy in {local_dir}"
        if problem:
            notes.append(f"The resource could not be asked ({problem}); states and usage are those the job "
                         "record kept.")
    final = {index: layout.parse_status_line(line)[0] in ("succeeded", "failed") for index, line in files.lines.items()}
    times = timing.combine(raw, final)
    if gone is None and not any(t.start for t in times.values()):
        notes.append("No start or end times were found (job directories from before ReproMan recorded them).")
    fetched = job.was_fetched and os.path.isdir(local_dir)
    from reproman.jobs.environment import tracing_subjobs

    tracers = tracing_subjobs(job.environment)
    rows = []
    for s in status.subjobs:
        span = times.get(s.index, timing.SubjobTimes())
        end = span.end
        if end is None and span.start is not None and s.state.finished and s.usage and s.usage.elapsed is not None:
            end = span.start + s.usage.elapsed  # killed before writing its end: accounting knows how long it ran
        subjob = job.subjobs[s.index] if s.index < job.n_subjobs else None
        rows.append(SubjobRow(
            index=s.index,
            state=s.state.value,
            exit_code=s.exit_code,
            reason=s.reason.value if s.reason else None,
            detail=s.detail or None,
            command=subjob.command if subjob else "",
            params=dict(subjob.p) if subjob else {},
            start=span.start,
            end=end,
            usage=usage_figures(s.usage),
            stderr=stderr_path(job, s.index, local=fetched) if s.state.value == "failed" else None,
            captured=s.index in tracers,
        ))
    # The record's time is whole seconds; the job directory's, written just
    # before submission, is finer. Never earlier than the record, though.
    created, staged = parse_created(job.created), timing.written(raw)
    queued = max(created, staged) if created is not None and staged is not None else (created or staged)
    return ReportData(job=job, subjobs=tuple(rows), queued=queued, generated=time.time(),
                      source=source, notes=tuple(notes), usage_note=usage_note(job))
