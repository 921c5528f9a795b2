"""Wait for a job by polling, with an interval that adapts to how fast it moves and how old it is.

The first polls come quickly (a trivial batch finishes in a fraction of a
second, and a fixed multi-second interval would dominate its run time);
while nothing changes the interval grows to a few seconds, and as the job
ages the ceiling grows with it (a twentieth of the time followed so far), up
to a maximum: 60 s by default, ``[jobs] max_poll_interval`` in the
configuration, or the ``max_poll_interval`` job parameter. Following a
one-hour job so costs about 130 scheduler queries (225 for a 1,000-subjob
array that changes at every poll), where the former 3 s ceiling cost 1,200
(``python benchmarks/poll_load.py`` measures it). A change in the counts
keeps the interval short, but even a busy job's interval grows with its age
(a fiftieth of it). Each poll is one status read plus at most one scheduler
query (see :func:`reproman.jobs.status.poll`).

Following stops early when the only subjobs left are ones the scheduler
says can never start (Slurm ``PartitionConfig`` and the like): waiting would
be forever.

A resource that stops answering for a moment (sshd restarted, a network
blip, a scheduler command timing out) does not end the wait: the poll is
tried again with backoff, saying so once on stderr, for up to ``[jobs]
retry_for`` seconds (default 300) before following gives up with one line
(exit code 4, as for a follow stopped by a full disk: not 1, "some subjobs failed").
The job itself runs on whatever happens to the follower.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from reproman.errors import (
    FollowStoppedError,
    JobError,
    ResourceConnectionError,
    ResourceGoneError,
    SessionError,
    SubmissionError,
)
from reproman.jobs import layout, outcome
from reproman.jobs.connection import Connection
from reproman.jobs.spec import JobSpec
from reproman.jobs.status import JobStatus, poll

ProgressCallback = Callable[[JobStatus], None]

lgr = logging.getLogger(__name__)

#: Seconds a job may wait, none of it started, for the same pending reason before following
#: says so once (a drained or down partition waits for an admin, maybe for days).
LONG_WAIT = 300.0

INITIAL_INTERVAL = 0.05
#: The ceiling while a job is young (the first minute).
YOUNG_CEILING = 3.0
BACKOFF = 1.5
BUSY_GROWTH = 1.25
#: While a job moves its polls stay this close at first (a short batch should not wait a second for nothing).
BUSY_INTERVAL = 0.5
#: Shortest wait between polls while the completion marker is watched (it wakes the follower at the end).
MARKED_INTERVAL = 1.0
#: The ceiling grows to this fraction of the time followed so far...
AGE_FRACTION = 0.05
#: ...and a busy job's interval to this fraction.
BUSY_AGE_FRACTION = 0.02
#: Default of the maximum interval (seconds).
MAX_INTERVAL = 60.0
#: Records learned while following are saved at most this often (and when the job ends): rewriting a
#: 1,000-subjob record at every poll of a short job would cost more than the job.
SAVE_INTERVAL = 5.0
#: How long the scheduler must keep saying "can never start" before following stops:
#: a reason seen once may be the scheduler's first guess (Slurm shows PartitionConfig
#: before it settles on PartitionTimeLimit).
STUCK_CONFIRM = 5.0


#: Default of ``[jobs] retry_for``: seconds following keeps trying a resource that stopped answering.
RETRY_FOR = 300.0
#: The first retry comes after this many seconds; each later one waits RETRY_BACKOFF times longer...
RETRY_FIRST = 1.0
RETRY_BACKOFF = 2.0
#: ...up to this.
RETRY_CEILING = 30.0
#: What a poll raises when the resource or its scheduler failed to answer, as opposed to a wrong request:
#: a lost or refused connection, a command cut short, a scheduler query that failed (slurmctld restarting).
TRANSIENT = (ResourceConnectionError, SessionError, SubmissionError)


def next_interval(interval: float, changed: bool, maximum: float = MAX_INTERVAL, elapsed: float = 0.0) -> float:
    """The next sleep: grow slowly while the job moves, faster while it does not, and with its age.

    Even a moving job gets a growing interval: on a small machine every poll
    takes CPU from the subjobs, and a job that is still moving after a
    second will not finish in the next 50 ms; after an hour, one query a
    minute tells the user as much as one a second.
    """
    ceiling = min(maximum, max(YOUNG_CEILING, elapsed * AGE_FRACTION))
    if changed:
        return min(ceiling, max(BUSY_INTERVAL, elapsed * BUSY_AGE_FRACTION), interval * BUSY_GROWTH)
    return min(ceiling, interval * BACKOFF)


def _seconds(raw: Any, source: str, *, zero_allowed: bool) -> float:
    """A configured duration in seconds, or one line saying what is wrong with it."""
    from reproman.config import config_number

    return config_number(raw, source, above=not zero_allowed, seconds=True)


def max_interval(parameters: Mapping[str, Any] | None = None) -> float:
    """The job parameter ``max_poll_interval``, else ``[jobs] max_poll_interval``, else 60 s."""
    from reproman.config import get_config

    raw = (parameters or {}).get("max_poll_interval")
    source = "job parameter max_poll_interval"
    if raw is None:
        raw = get_config().get("jobs", "max_poll_interval")
        source = "[jobs] max_poll_interval"
    if raw is None:
        return MAX_INTERVAL
    return _seconds(raw, source, zero_allowed=False)


def retry_seconds() -> float:
    """``[jobs] retry_for``: how long following retries a resource that does not answer (0: not at all)."""
    from reproman.config import get_config

    raw = get_config().get("jobs", "retry_for")
    return RETRY_FOR if raw is None else _seconds(raw, "[jobs] retry_for", zero_allowed=True)


class Outage:
    """A resource that stopped answering while a job was followed: when to try again, and when to give up."""

    def __init__(self, job: JobSpec, limit: float) -> None:
        self.job = job
        self.limit = limit
        self.since = time.monotonic()
        self.delay = RETRY_FIRST
        self.tries = 0

    def next_delay(self, error: Exception) -> float:
        """Seconds to wait before the next try; :class:`FollowStoppedError` once ``limit`` seconds have passed."""
        waited = time.monotonic() - self.since
        jobid, resource = self.job.jobid, self.job.resource_name
        if waited >= self.limit:
            raise FollowStoppedError(
                f"job {jobid}: resource {resource!r} has not answered for {waited:.0f} s ({error}); "
                "the job itself keeps running there",
                hint=f"Wait for it again with 'reproman jobs --follow {jobid}' once {resource!r} answers.",
            ) from None
        self.tries += 1
        if self.tries == 1:
            lgr.warning("job %s: resource %r does not answer (%s); retrying for up to %.0f s "
                        "(Ctrl-C detaches, the job keeps running)", jobid, resource, error, self.limit)
        else:
            lgr.info("job %s: resource %r still does not answer (%s); retrying", jobid, resource, error)
        delay = min(self.delay, self.limit - waited)
        self.delay = min(RETRY_CEILING, self.delay * RETRY_BACKOFF)
        return max(0.0, delay)

    def over(self) -> None:
        lgr.warning("job %s: resource %r answers again after %.0f s; following on", self.job.jobid,
                    self.job.resource_name, time.monotonic() - self.since)


def open_connection(job: JobSpec) -> Connection:
    """The job's resource, connected; one that cannot be reached is retried as a poll would be.

    Only an unreachable resource is waited for: a resource that answers
    with a refusal (a stopped container, an unknown name) fails at once.
    """
    outage: Outage | None = None
    limit = retry_seconds()
    while True:
        try:
            connection = Connection.for_job(job)
        except ResourceConnectionError as exc:
            outage = outage or Outage(job, limit)
            time.sleep(outage.next_delay(exc))
            continue
        if outage is not None:
            outage.over()
        return connection


def _save_on_the_way_out(on_change: Callable[[JobSpec], None], job: JobSpec) -> None:
    """Save what following learned as it ends early; a failure here must not hide why it ended."""
    try:
        on_change(job)
    except Exception as exc:  # the error that ended following is the one to report
        lgr.warning("job %s: could not record the subjob outcomes seen while following (%s); "
                    "'reproman jobs --status %s' reads them again", job.jobid, exc, job.jobid)


def _only_pending_reason(status: JobStatus) -> str | None:
    """The scheduler's one pending reason when every subjob is pending for it, else None."""
    reasons = status.pending_reasons()
    if len(reasons) != 1 or status.counts()["pending"] != len(status.subjobs):
        return None
    return next(iter(reasons))


def follow(
    connection: Connection,
    job: JobSpec,
    progress: ProgressCallback | None = None,
    *,
    initial: float = INITIAL_INTERVAL,
    maximum: float | None = None,
    timeout: float | None = None,
    on_change: Callable[[JobSpec], None] | None = None,
) -> JobStatus:
    """Poll until every subjob has finished, or only subjobs that can never start remain.

    ``progress`` is called with every status read (the CLI draws its
    progress bar from it); ``on_change`` with the job whenever a poll
    recorded something in it (the caller saves the record, so what was
    learned survives an interrupted follow): at most every
    :data:`SAVE_INTERVAL` seconds, at the end, and once more when following
    ends early (Ctrl-C, a signal, a resource given up on). ``timeout`` (seconds) raises
    :class:`JobError`; the job itself keeps running. The returned status is
    finished, or :attr:`JobStatus.stuck`.
    """
    submitter = connection.submitter(job.submitter)
    maximum = max_interval(job.parameters) if maximum is None else maximum
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    interval = initial
    last: dict[str, int] | None = None
    stuck_since: float | None = None
    unsaved = False
    saved_at = started
    # A submitter that writes the completion marker (local) lets a session that
    # watches files cheaply end each sleep the moment it appears. Once it
    # exists, plain sleeps: a job may finish with subjobs still to be declared lost.
    writes = getattr(submitter, "writes_completion_marker", False)
    marker: str | None = posixpath.join(job.job_dir, layout.COMPLETED) if writes else None
    watched = marker is not None and connection.session.watches_paths
    waiting: tuple[str, float] | None = None  # the pending reason while nothing has started, and since when
    told = False
    outage: Outage | None = None
    retry_for = retry_seconds()
    try:
        while True:
            changed: set[str] = set()
            try:
                # Usage is read once the results are in (see commands.run), not on the path to them.
                status = poll(connection.session, submitter, [job], changed=changed, usage=False)[job.jobid]
            except ResourceGoneError:
                raise  # not an outage: nothing will answer again
            except TRANSIENT as exc:
                outage = outage or Outage(job, retry_for)
                time.sleep(outage.next_delay(exc))
                continue
            if outage is not None:
                outage.over()
                outage = None
            unsaved = unsaved or bool(changed)
            if unsaved and on_change is not None and (
                status.finished or status.stuck or time.monotonic() - saved_at >= SAVE_INTERVAL
            ):
                unsaved = False  # a save that fails (a full disk) is not tried again on the way out
                on_change(job)
                saved_at = time.monotonic()
                if job.cancelled:  # the save may have taken in a 'jobs --cancel' made meanwhile: it wins
                    status = attrs.evolve(status, subjobs=outcome.relabel_cancelled(job, status.subjobs))
            if progress is not None:
                progress(status)
            if status.finished:
                return status
            reason = _only_pending_reason(status)
            if reason is None:
                waiting = None
            elif waiting is None or waiting[0] != reason:
                waiting = (reason, time.monotonic())
            elif not told and time.monotonic() - waiting[1] >= LONG_WAIT:
                told = True
                lgr.warning("job %s: nothing has started in %d min; the scheduler says %r. It waits for that to "
                            "change (Ctrl-C detaches and it stays queued; 'reproman jobs --follow %s' waits again, "
                            "'reproman jobs --cancel %s' removes it)", job.jobid, (time.monotonic() - waiting[1]) // 60,
                            reason, job.jobid, job.jobid)
            if status.stuck:
                stuck_since = stuck_since if stuck_since is not None else time.monotonic()
                if time.monotonic() - stuck_since >= STUCK_CONFIRM:
                    return status
            else:
                stuck_since = None
            if status.missing:
                from reproman.jobs.status import gone_message

                message, hint = gone_message(job, status)
                raise JobError(f"job {job.jobid}: {message}", hint=hint)
            if deadline is not None and time.monotonic() >= deadline:
                raise JobError(f"job {job.jobid} did not finish within {timeout} s ({status.summary()})")
            counts = status.counts()
            interval = next_interval(interval, last is not None and counts != last, maximum,
                                     time.monotonic() - started)
            if stuck_since is not None:
                interval = min(interval, STUCK_CONFIRM / 2)  # confirm soon rather than a minute later
            last = counts
            if marker is None:
                time.sleep(interval)
                continue
            try:
                # The marker ends the wait the moment the job completes, so polls in between only
                # feed the progress display: no need for them to take CPU from the subjobs twice a second.
                if connection.session.wait_for_path(marker, max(interval, MARKED_INTERVAL) if watched else interval):
                    marker = None  # it appeared: poll now, and plain sleeps from then on
            except TRANSIENT:
                pass  # the next poll meets the same trouble, and retries
    except BaseException:
        # Ctrl-C, a signal, giving up on a silent resource: what the polls saw since the last save would
        # be lost with the follower, and the list would read "not checked" for subjobs it saw finish.
        if unsaved and on_change is not None:
            _save_on_the_way_out(on_change, job)
        raise
