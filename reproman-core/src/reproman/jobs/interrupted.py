"""Jobs whose submitting process died before the submission finished: said so, for good.

``reproman run`` writes the job record before it stages and submits (so a
job can never run unrecorded, see :mod:`reproman.jobs.submit`). A process
killed in between (``kill -9``, a lost terminal, the OOM killer) leaves a
``registered`` record that nothing will ever move on: it would read
"pending" forever. The record therefore names the process submitting it and
how far it got (:func:`mark`); once that process is gone, the next look at
the job (:func:`settle`) makes its end final:

* still staging: the submitter was never called, so nothing was queued or
  started: *never submitted*;
* handing it to the submitter: the scheduler may or may not have taken it,
  and without the submission id ReproMan cannot ask: *submission
  interrupted*, with a hint to check the scheduler. On this machine (the
  shell resource) the local launcher's own record of its start settles
  it: a launcher that started is followed like any submitted job.

Either way the job is finished (reason "submission failed") and
``reproman jobs --delete`` frees what was staged for it. A process is
judged gone only on the host that ran it: another machine's submission
(a registry on a shared home) is left alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from reproman.jobs import outcome
from reproman.jobs.registry import Registry
from reproman.jobs.spec import JobSpec

lgr = logging.getLogger(__name__)

#: ``job.extra`` key holding the submitting process while the submission is under way.
KEY = "submitting"
#: Stages recorded under :data:`KEY`.
STAGING = "staging"
SUBMITTING = "submitting"


def _host() -> str:
    import socket

    return socket.gethostname() or "localhost"


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux); None where that cannot be read.

    Tells a reused PID from the process that wrote the record.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[-1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def mark(job: JobSpec, stage: str) -> None:
    """Record this process as ``job``'s submitter, at ``stage`` (:data:`STAGING` or :data:`SUBMITTING`)."""
    pid = os.getpid()
    job.extra[KEY] = {"stage": stage, "host": _host(), "pid": pid, "started": _start_ticks(pid),
                      "boot": _boot_id()}


def done(job: JobSpec) -> None:
    """The submission ended (submitted, or refused and recorded): nothing left to settle."""
    job.extra.pop(KEY, None)


def without_mark(job: JobSpec) -> JobSpec:
    """``job`` as the copy on the resource should say it: which local process submitted it is local business."""
    import attrs

    return attrs.evolve(job, extra={k: v for k, v in job.extra.items() if k != KEY})


def _gone(info: dict[str, Any]) -> bool:
    """Whether the submitting process named by ``info`` no longer exists (judged on its own host only)."""
    if info.get("host") != _host():
        return False
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    boot = _boot_id()
    if info.get("boot") and boot and info["boot"] != boot:
        return True  # the machine rebooted since
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, someone else's now or still ours
    started = info.get("started")
    now = _start_ticks(pid)
    return started is not None and now is not None and started != now


def _adopt(job: JobSpec) -> bool:
    """Whether the launcher of a job on this machine started (it writes its id first thing); record it if so.

    Only a job directory on this machine (the shell resource) can be looked
    at without a connection; elsewhere the submission stays "interrupted".
    """
    from reproman.jobs import layout

    if job.resource_type != "shell" or not job.job_dir:
        return False
    try:
        with open(os.path.join(job.job_dir, layout.SUBMISSION_ID), "rb") as handle:
            said = handle.read(64).strip()
    except OSError:
        return False
    if not said.isdigit():
        return False
    job.submission_id = said.decode()
    job.status = "submitted"
    return True


def settle(jobs: Sequence[JobSpec], registry: Registry) -> list[JobSpec]:
    """Make the end of every job in ``jobs`` whose submission was interrupted final; return those jobs."""
    settled = []
    for job in jobs:
        info = job.extra.get(KEY)
        if job.status != "registered" or job.submission_id or not isinstance(info, dict) or not _gone(info):
            continue
        if info.get("stage") == SUBMITTING and _adopt(job):
            done(job)
            lgr.info("job %s: its submitting process ended, but its launcher had started (%s); following it",
                     job.jobid, job.submission_id)
            registry.save(job)
            continue
        who = f"reproman (process {info.get('pid')})"
        if info.get("stage") == SUBMITTING:
            error = (f"submission interrupted: {who} ended while handing it to the {job.submitter} submitter; "
                     "whether the scheduler took it cannot be known (check its queue, and cancel it there if so)")
        else:
            error = f"never submitted: {who} ended before handing it to the {job.submitter} submitter"
        outcome.record_submission_failure(job, error)
        job.extra["interrupted"] = outcome.now_iso()
        done(job)
        lgr.info("job %s: %s", job.jobid, error)
        registry.save(job)
        settled.append(job)
    return settled
