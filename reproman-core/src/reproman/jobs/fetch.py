"""Bring a finished job's results back and record that it happened.

The orchestrator moves the files; this module keeps the bookkeeping in one
place: the job record kept with the results is rewritten with what is known
now (submission id, each subjob's outcome), and the registry entry is marked
``fetched`` (with the time) but kept, so the job can still be shown, fetched
again or deleted, and still says how it ended.
"""

from __future__ import annotations

import os
from typing import Any

from reproman.jobs import layout, outcome
from reproman.jobs.connection import Connection
from reproman.jobs.registry import Registry, dump_record
from reproman.jobs.spec import JobSpec
from reproman.jobs.status import JobStatus, local_log_dir, stderr_path


def fetch_job(connection: Connection, job: JobSpec, status: JobStatus, registry: Registry | None = None) -> list[str]:
    """Fetch outputs and logs of ``job``; return the local paths written."""
    registry = registry or Registry()
    orchestrator = connection.orchestrator(job)
    outcome.record(job, status)
    fetched_at = outcome.now_iso()
    if orchestrator.records_job:
        # The orchestrator writes (commits) the record itself: give it the final one.
        job.status = "fetched"
        job.fetched = fetched_at
        job.extra["result"] = status.summary()
    paths = orchestrator.fetch()
    job.status = "fetched"
    job.fetched = fetched_at
    job.extra["result"] = status.summary()
    save_record(job, registry, orchestrator.records_job)
    return paths


def save_record(job: JobSpec, registry: Registry, records_job: bool | None = None) -> None:
    """The registry entry, and the copy kept with the results unless the orchestrator keeps its own."""
    from reproman.yamlio import atomic_write

    registry.save(job)
    if records_job is None:
        from reproman.plugins.manager import get_plugin_manager

        records_job = bool(get_plugin_manager().orchestrator(job.orchestrator).load().records_job)
    if job.was_fetched and not records_job:
        atomic_write(os.path.join(local_log_dir(job), layout.SPEC_FILE), dump_record(job))


def failures(job: JobSpec, status: JobStatus, fetched: bool) -> list[dict[str, Any]]:
    """Failed subjobs, named by their parameters, with the path of their stderr (local copy once fetched)."""
    return [
        {
            "index": s.index,
            "subjob": outcome.subjob_label(job, s.index),
            "p": dict(job.subjobs[s.index].p) if s.index < job.n_subjobs else {},
            "exit_code": s.exit_code,
            "reason": s.reason.value if s.reason else None,
            "detail": s.detail or None,
            "command": job.subjobs[s.index].command if s.index < job.n_subjobs else None,
            "stderr": stderr_path(job, s.index, local=fetched),
        }
        for s in status.failed
    ]
