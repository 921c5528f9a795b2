"""Say when a job that failed ran on a file system with no space left: the job itself could not say so.

A subjob that fills the disk fails, and so does everything that would tell
why: its stderr, its status line and the launcher's log are files on the
same full file system, so the user reads "exit code 1" or "lost" and empty
logs. One ``df`` at fetch time, only for a job with failed or lost subjobs,
names the cause.
"""

from __future__ import annotations

import logging

from reproman.jobs.connection import Connection
from reproman.jobs.spec import JobSpec
from reproman.jobs.status import JobStatus

lgr = logging.getLogger(__name__)

#: Below this many KiB available, a failure may well be the full disk.
LOW_KIB = 1024


def warn_if_full(connection: Connection, job: JobSpec, status: JobStatus) -> None:
    """One warning when the job or its working directory sits on an (almost) full file system; best effort."""
    if not status.failed:
        return
    places = [p for p in dict.fromkeys((job.job_dir, job.working_directory)) if p]
    try:
        result = connection.session.execute_command(["df", "-Pk", "--", *places])
    except Exception as exc:  # a hint only: never in the way of the fetch
        lgr.debug("job %s: df failed: %s", job.jobid, exc)
        return
    for place, free in zip(places, available_kib(result.stdout)):
        if free is not None and free < LOW_KIB:
            lgr.warning("job %s: the file system holding %s on resource %r has %d KiB free; the failed or lost "
                        "subjobs may have run out of space (a full disk leaves their stderr and status empty "
                        "too). Free space there, then 'reproman rerun --failed %s'", job.jobid, place,
                        job.resource_name, free, job.jobid)
            return


def available_kib(df_output: str) -> list[int | None]:
    """The "Available" column of POSIX ``df -Pk`` output, one entry per file system line.

    The field before the one ending in ``%`` (Capacity), so a file system
    name holding spaces does not shift it.
    """
    found: list[int | None] = []
    for line in df_output.split("\n")[1:]:
        if not line.strip():
            continue
        fields = line.split()
        capacity = next((i for i, f in enumerate(fields) if f.endswith("%") and f[:-1].isdigit()), None)
        value = fields[capacity - 1] if capacity else ""
        found.append(int(value) if value.isdigit() else None)
    return found
