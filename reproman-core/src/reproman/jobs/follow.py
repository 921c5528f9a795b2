"""Wait for a job by polling, with an interval that adapts to how fast it moves.

The first polls come quickly (a trivial batch finishes in a fraction of a
second, and a fixed multi-second interval would dominate its run time); while
nothing changes the interval grows to a few seconds, so following a day-long
cluster job costs a handful of remote commands a minute. Any change in the
counts keeps it below a second. Each poll is one status read plus at
most one scheduler query (see :func:`reproman.jobs.status.poll`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from reproman.errors import JobError
from reproman.jobs.connection import Connection
from reproman.jobs.spec import JobSpec
from reproman.jobs.status import JobStatus, poll

ProgressCallback = Callable[[JobStatus], None]

INITIAL_INTERVAL = 0.05
MAX_INTERVAL = 3.0
BACKOFF = 1.5
BUSY_GROWTH = 1.25
BUSY_INTERVAL = 1.0


def next_interval(interval: float, changed: bool, maximum: float = MAX_INTERVAL) -> float:
    """Grow slowly while the job moves (up to :data:`BUSY_INTERVAL`), faster while it does not.

    Even a moving job gets a growing interval: on a small machine every poll
    takes CPU from the subjobs, and a job that is still moving after a
    second will not finish in the next 50 ms.
    """
    if changed:
        return min(maximum, BUSY_INTERVAL, interval * BUSY_GROWTH)
    return min(maximum, interval * BACKOFF)


def follow(
    connection: Connection,
    job: JobSpec,
    progress: ProgressCallback | None = None,
    *,
    initial: float = INITIAL_INTERVAL,
    maximum: float = MAX_INTERVAL,
    timeout: float | None = None,
) -> JobStatus:
    """Poll until every subjob has finished; return the final status.

    ``progress`` is called with every status read (the CLI draws its
    progress bar from it). ``timeout`` (seconds) raises :class:`JobError`;
    the job itself keeps running.
    """
    submitter = connection.submitter(job.submitter)
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = initial
    last: dict[str, int] | None = None
    while True:
        status = poll(connection.session, submitter, [job])[job.jobid]
        if progress is not None:
            progress(status)
        if status.finished:
            return status
        if status.missing:
            raise JobError(
                f"job {job.jobid}: its directory {job.job_dir} is not on resource {job.resource_name!r}",
                hint="The resource may have been reset; 'reproman jobs --delete' forgets the job.",
            )
        if deadline is not None and time.monotonic() >= deadline:
            raise JobError(f"job {job.jobid} did not finish within {timeout} s ({status.summary()})")
        counts = status.counts()
        interval = next_interval(interval, last is not None and counts != last, maximum)
        last = counts
        time.sleep(interval)
