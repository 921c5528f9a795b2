"""What a job report shows, gathered without any plotting library.

Sources, best first:

* the resource: one status read and at most one scheduler query (core's
  :func:`~reproman.jobs.status.poll`, so scheduler reasons such as
  "walltime exceeded" are included), one ``find`` for the subjobs' start and
  end times (:mod:`reproman.jobs.timing`), and the submitter's accounting
  when it offers any (a ``usage(jobs)`` method, e.g. Grid Engine's ``qacct``);
* the fetched copy of the job directory next to the results, when the
  resource cannot be reached or no longer has the job: the status files and
  their times are read there, and the report says so.

Per-subjob usage recorded in the job record (a ``usage`` field, or
``extra["usage"]``: index -> figures) is used when present; otherwise the
report says usage is unavailable.
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
from reproman.jobs import layout, timing
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

    def counts(self) -> dict[str, int]:
        counts = {"pending": 0, "running": 0, "succeeded": 0, "failed": 0, "unknown": 0}
        for row in self.subjobs:
            counts[row.state] = counts.get(row.state, 0) + 1
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


def recorded_usage(job: JobSpec) -> dict[int, Mapping[str, Any]]:
    """Per-subjob usage stored in the job record, if any (index -> figures)."""
    raw = getattr(job, "usage", None) or job.extra.get("usage")
    out: dict[int, Mapping[str, Any]] = {}
    items: list[tuple[Any, Any]]
    if isinstance(raw, Mapping):
        items = list(raw.items())
    elif isinstance(raw, list):
        items = [(entry.get("index"), entry) for entry in raw if isinstance(entry, Mapping)]
    else:
        return out
    for key, value in items:
        if isinstance(value, Mapping) and str(key).lstrip("-").isdigit():
            out[int(str(key))] = {k: v for k, v in value.items() if k != "index"}
    return out


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


def from_resource(job: JobSpec) -> tuple[JobStatus, dict[str, dict[int, float]], dict[int, Mapping[str, Any]]]:
    """States, file times and accounting usage from the resource (raises :class:`ReproManError`)."""
    from reproman.jobs.connection import Connection
    from reproman.jobs.contracts import FailureReason
    from reproman.jobs.status import poll, read_files

    with Connection.for_job(job) as connection:
        submitter = connection.submitter(job.submitter)
        status = poll(connection.session, submitter, [job])[job.jobid]
        if status.missing:
            raise JobError(f"its directory {job.job_dir} is not on resource {job.resource_name!r}")
        if any(s.reason is FailureReason.LOST for s in status.failed):
            # Once a job is fetched its "completed" marker makes subjobs without a
            # final status read "lost" without the scheduler being asked; its
            # accounting may know better (e.g. walltime exceeded).
            try:
                said = submitter.scheduler_states([job]).get(job.jobid)
            except ReproManError as exc:
                lgr.info("could not ask the scheduler about job %s: %s", job.jobid, exc)
                said = None
            if said:
                status = interpret(job, read_files(connection.session, [job])[job.jobid], said)
        raw = timing.read_remote(connection.session, job.job_dir)
        usage: dict[int, Mapping[str, Any]] = {}
        usage_of = getattr(submitter, "usage", None)
        if callable(usage_of):
            try:
                usage = dict(usage_of([job]).get(job.jobid, {}))
            except ReproManError as exc:
                lgr.info("no accounting for job %s: %s", job.jobid, exc)
    return status, raw, usage


def collect(job: JobSpec) -> ReportData:
    """Gather a report's data for ``job``: from the resource, else from the fetched copy."""
    notes: list[str] = []
    local_dir = local_log_dir(job)
    status: JobStatus | None = None
    usage: dict[int, Mapping[str, Any]] = {}
    problem = ""
    try:
        status, raw, usage = from_resource(job)
        source = f"resource {job.resource_name!r} ({job.job_dir})"
    except ReproManError as exc:
        problem = str(exc)
    if status is None:
        if not os.path.isdir(local_dir):
            raise JobError(
                f"job {job.jobid}: cannot read its state: {problem or 'no fetched copy'}",
                hint=f"Its fetched copy ({local_dir}) is not there either; fetch it with 'reproman jobs {job.jobid}'.",
            )
        status = interpret(job, local_files(local_dir))
        raw = timing.read_local(local_dir)
        source = f"the fetched copy in {local_dir}"
        if problem:
            notes.append(f"The resource could not be asked ({problem}); scheduler reasons may be missing.")
    usage = {**usage, **recorded_usage(job)}
    final = {s.index: s.state.finished and s.exit_code is not None for s in status.subjobs}
    times = timing.combine(raw, final)
    if not any(t.start for t in times.values()):
        notes.append("No start or end times were found (job directories from before ReproMan recorded them).")
    fetched = job.status == "fetched" and os.path.isdir(local_dir)
    rows = []
    for s in status.subjobs:
        span = times.get(s.index, timing.SubjobTimes())
        figures = usage.get(s.index)
        end = span.end
        if end is None and s.state.finished and figures:
            end = parse_created(figures.get("end"))  # killed before writing a status: accounting knows
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
            usage=figures,
            stderr=stderr_path(job, s.index, local=fetched) if s.state.value == "failed" else None,
        ))
    # The record's time is whole seconds; the job directory's, written just
    # before submission, is finer. Never earlier than the record, though.
    created, staged = parse_created(job.created), timing.written(raw)
    queued = max(created, staged) if created is not None and staged is not None else (created or staged)
    return ReportData(job=job, subjobs=tuple(rows), queued=queued, generated=time.time(),
                      source=source, notes=tuple(notes))
