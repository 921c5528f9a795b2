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
* handing it to the submitter: the scheduler may or may not have taken it.
  A submitter that can look its jobs up by name
  (:meth:`~reproman.jobs.contracts.Submitter.find_submitted`, Slurm's
  ``squeue``/``sacct``) is asked, over one connection per resource: a job
  it holds is *adopted* (its submission id recorded, then followed and
  fetched like any submitted job); one it never had is *never queued*.
  On this machine (the shell resource) the local launcher's own record of
  its start settles it the same way. Where nobody can tell (the submitter
  cannot look, the resource cannot be reached, the lookup failed):
  *submission interrupted*, with a hint to check the scheduler.

Every job settled without a submission id is finished (reason "submission
failed") and ``reproman jobs --delete`` frees what was staged for it. A
process is judged gone only on the host that ran it: another machine's
submission (a registry on a shared home) is left alone.
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


def _can_look(submitter: str) -> bool:
    """Whether the ``submitter`` plugin overrides :meth:`Submitter.find_submitted` (no connection needed to know)."""
    from reproman.jobs.contracts import Submitter
    from reproman.plugins.manager import get_plugin_manager

    try:
        cls = get_plugin_manager().submitter(submitter).load()
    except Exception as exc:  # a plugin that is gone or broken cannot look; the job still gets settled
        lgr.debug("cannot load submitter %r to look for interrupted jobs: %s", submitter, exc)
        return False
    return getattr(cls, "find_submitted", Submitter.find_submitted) is not Submitter.find_submitted


def _ask_schedulers(jobs: Sequence[JobSpec]) -> tuple[dict[str, str | None], dict[str, str]]:
    """What each job's scheduler says (see :meth:`Submitter.find_submitted`), and why some could not be asked.

    One connection per resource; an unreachable resource or a failed lookup
    never raises: the job then has no answer, and the reason, keyed by jobid.
    """
    from reproman.errors import ReproManError
    from reproman.jobs.connection import Connection

    answers: dict[str, str | None] = {}
    why: dict[str, str] = {}
    by_resource: dict[str, list[JobSpec]] = {}
    for job in jobs:
        by_resource.setdefault(job.resource_name, []).append(job)
    for resource_name, group in by_resource.items():
        try:
            connection = Connection.open(resource_name)
        except ReproManError as exc:
            lgr.info("cannot ask resource %r about interrupted submissions: %s", resource_name, exc)
            why.update({job.jobid: f"resource {resource_name!r} could not be reached: {_line(exc)}" for job in group})
            continue
        with connection:
            for job in group:
                try:
                    answers[job.jobid] = connection.submitter(job.submitter).find_submitted(job)
                except ReproManError as exc:
                    lgr.info("job %s: cannot tell whether the %s scheduler took it: %s", job.jobid, job.submitter, exc)
                    why[job.jobid] = f"{job.submitter}: {_line(exc)}"
    return answers, why


def _line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _finish(job: JobSpec, error: str, registry: Registry) -> None:
    outcome.record_submission_failure(job, error)
    job.extra["interrupted"] = outcome.now_iso()
    done(job)
    lgr.info("job %s: %s", job.jobid, error)
    registry.save(job)


def settle(jobs: Sequence[JobSpec], registry: Registry) -> list[JobSpec]:
    """Settle every job in ``jobs`` whose submission was interrupted; return those now final.

    Jobs the scheduler turns out to hold are adopted (status "submitted")
    and are not in the returned list.
    """
    stranded: list[JobSpec] = []
    finished = []
    for job in jobs:
        info = job.extra.get(KEY)
        if job.status != "registered" or job.submission_id or not isinstance(info, dict) or not _gone(info):
            continue
        if info.get("stage") != SUBMITTING:
            who = f"reproman (process {info.get('pid')})"
            _finish(job, f"never submitted: {who} ended before handing it to the {job.submitter} submitter", registry)
            finished.append(job)
        elif _adopt(job):
            done(job)
            lgr.info("job %s: its submitting process ended, but its launcher had started (%s); following it",
                     job.jobid, job.submission_id)
            registry.save(job)
        else:
            stranded.append(job)
    answers, why = _ask_schedulers([job for job in stranded if _can_look(job.submitter)])
    for job in stranded:
        who = f"reproman (process {job.extra[KEY].get('pid')})"
        found = answers.get(job.jobid)
        if found:
            job.submission_id = found
            job.status = "submitted"
            job.extra["adopted"] = outcome.now_iso()
            done(job)
            lgr.info("job %s: its submitting process ended, but the %s scheduler holds it as %s; following it",
                     job.jobid, job.submitter, found)
            registry.save(job)
            continue
        if found == "":
            error = (f"never queued: {who} ended while handing it to the {job.submitter} submitter, "
                     "and the scheduler has no record of it")
        else:
            error = (f"submission interrupted: {who} ended while handing it to the {job.submitter} submitter; "
                     "whether the scheduler took it cannot be known (check its queue, and cancel it there if so)")
            if job.jobid in why:
                error += f"; {why[job.jobid]}"
        _finish(job, error, registry)
        finished.append(job)
    return finished
