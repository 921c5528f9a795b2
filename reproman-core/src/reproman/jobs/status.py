"""Per-subjob status: one remote command reads every status file of many jobs.

A poll costs one :meth:`Session.execute_command` per resource whatever the
number of jobs and subjobs (the shell loop uses only builtins, so it forks
nothing per file), plus one :meth:`Submitter.scheduler_states` call for the
jobs that still have unfinished subjobs. The status file is the truth for a
subjob that wrote a final line; the scheduler's word counts only for
subjobs that did not, e.g. ones killed by the scheduler or cancelled.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from reproman.errors import ReproManError, ResourceGoneError
from reproman.jobs import layout, outcome
from reproman.jobs.contracts import FailureReason, SchedulerState, State, SubjobStatus, Submitter
from reproman.jobs.spec import JobSpec
from reproman.resources.session import Session

lgr = logging.getLogger(__name__)

_HEADER = "== "
#: Default of ``[jobs] lost_after``: seconds a subjob the scheduler is done with
#: may stay silent before it is declared lost. Covers a shared filesystem
#: showing the final status line late (NFS attribute caches hold for up to 60 s).
LOST_AFTER = 60.0


@attrs.frozen(kw_only=True)
class RemoteFiles:
    """What the status command found in one job directory."""

    exists: bool = False
    completed: bool = False
    cancelled: bool = False
    lines: Mapping[int, str] = attrs.Factory(dict)


@attrs.frozen(kw_only=True)
class JobStatus:
    """Every subjob's state for one job, and the counts shown to users."""

    jobid: str
    subjobs: tuple[SubjobStatus, ...]
    #: The job directory was not (yet) found on the resource.
    missing: bool = False
    #: Each subjob's name (its batch parameters, see :func:`reproman.jobs.outcome.subjob_label`).
    labels: tuple[str, ...] = ()
    #: Subjobs that still want the scheduler's word (not final, or killed by a
    #: signal and not yet explained); :func:`poll` asks only about these jobs.
    unsettled: frozenset[int] = frozenset()

    @property
    def finished(self) -> bool:
        return bool(self.subjobs) and all(s.state.finished for s in self.subjobs)

    @property
    def failed(self) -> list[SubjobStatus]:
        return [s for s in self.subjobs if s.state.value == "failed"]

    @property
    def ok(self) -> bool:
        return self.finished and not self.failed

    @property
    def blocked(self) -> list[SubjobStatus]:
        """Pending subjobs the scheduler says can never start as requested."""
        return [s for s in self.subjobs if s.blocked and not s.state.finished]

    @property
    def stuck(self) -> bool:
        """Nothing left but subjobs that can never start: waiting longer is pointless."""
        unfinished = [s for s in self.subjobs if not s.state.finished]
        return bool(unfinished) and all(s.blocked for s in unfinished)

    def label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) else f"#{index}"

    def counts(self) -> dict[str, int]:
        """Subjobs per :data:`reproman.jobs.outcome.CATEGORIES` (``failed`` excludes ``cancelled``)."""
        return outcome.tally(self.subjobs)

    def pending_reasons(self) -> dict[str, int]:
        """The scheduler's reasons for pending subjobs, most common first."""
        reasons: dict[str, int] = {}
        for s in self.subjobs:
            if s.state.value == "pending" and s.detail:
                reasons[s.detail] = reasons.get(s.detail, 0) + 1
        return dict(sorted(reasons.items(), key=lambda item: -item[1]))

    def summary(self) -> str:
        """The job's one summary (:func:`reproman.jobs.outcome.summarise`), with the main pending reason."""
        return outcome.summarise(self.subjobs, pending_reason=next(iter(self.pending_reasons()), ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobid": self.jobid,
            "finished": self.finished,
            "counts": self.counts(),
            "pending_reasons": self.pending_reasons(),
            "blocked": bool(self.blocked),
            "subjobs": [
                {
                    "index": s.index,
                    "subjob": self.label(s.index),
                    "state": s.state.value,
                    "exit_code": s.exit_code,
                    "reason": s.reason.value if s.reason else None,
                    "detail": s.detail or None,
                    "blocked": s.blocked,
                    "usage": s.usage.to_dict() if s.usage else None,
                }
                for s in self.subjobs
            ],
        }


def status_command(job_dirs: Sequence[str]) -> str:
    """Shell code printing, per job directory, a header, markers and ``INDEX LINE`` rows.

    Only builtins run per file (``read`` instead of ``cat``), so reading the
    status of thousands of subjobs is one process, not thousands.
    """
    dirs = " ".join(shlex.quote(d) for d in job_dirs)
    return (
        f"for d in {dirs}; do "
        f'printf "{_HEADER}%s\\n" "$d"; '
        '[ -d "$d" ] || continue; echo "+exists"; '
        f'[ -e "$d/{layout.COMPLETED}" ] && echo "+completed"; '
        f'[ -e "$d/{layout.CANCELLED}" ] && echo "+cancelled"; '
        'for f in "$d"/status.*; do '
        'case "$f" in *.tmp|*"status.*") continue ;; esac; '
        'IFS= read -r s < "$f" 2>/dev/null && printf "%s %s\\n" "${f##*.}" "$s"; '
        "done; done; true"
    )


def parse_status_output(text: str) -> dict[str, RemoteFiles]:
    """Invert :func:`status_command`: job directory -> what was found there."""
    found: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        if line.startswith(_HEADER):
            current = found.setdefault(line[len(_HEADER):], {"exists": False, "completed": False, "cancelled": False, "lines": {}})
        elif current is None:
            continue
        elif line == "+exists":
            current["exists"] = True
        elif line == "+completed":
            current["completed"] = True
        elif line == "+cancelled":
            current["cancelled"] = True
        else:
            index, _, rest = line.partition(" ")
            if index.isdigit():
                current["lines"][int(index)] = rest
    return {d: RemoteFiles(**v) for d, v in found.items()}


def interpret(
    job: JobSpec,
    files: RemoteFiles,
    scheduler: Mapping[int, SchedulerState] | None = None,
    *,
    ages: Mapping[int, float] | None = None,
    now: float | None = None,
    lost_after: float | None = None,
) -> JobStatus:
    """Combine recorded outcomes, status files, markers and the scheduler's word into subjob states.

    Recorded outcomes win (see :mod:`reproman.jobs.outcome`); then the
    subjob's own final status line; then the scheduler. ``ages`` gives, for
    subjobs the scheduler forgot, how long ago their status file (or the job
    directory) last changed; with ``job.unaccounted`` it decides when silence
    means lost. Pure: nothing is written to ``job``.
    """
    asked = scheduler is not None
    scheduler = scheduler or {}
    now = time.time() if now is None else now
    grace = lost_after_seconds() if lost_after is None else lost_after
    subjobs: list[SubjobStatus] = []
    unsettled: set[int] = set()
    for index in range(job.n_subjobs):
        line = files.lines.get(index)
        word, code = layout.parse_status_line(line) if line is not None else ("", None)
        seen = _evidence(job, index, word, code, scheduler.get(index), files, ages or {}, now, grace, asked=asked)
        old = outcome.recorded(job, index)
        kept = outcome.merge(old, seen, own_line=word in _FINAL)
        shown = kept.as_status(index) if kept is not None else seen
        if (old is None and seen.state.finished and word == "failed" and index not in scheduler
                and (_signalled(code) or "memory" in job.parameters)):
            # Killed by a signal, or failed under a memory limit, and not yet recorded:
            # the scheduler may know why (a walltime kill, a refused allocation).
            unsettled.add(index)
        elif not shown.state.finished:
            unsettled.add(index)
        elif not asked and old is None and seen.reason is FailureReason.CANCELLED and word not in _FINAL:
            # Settled as cancelled by the age of the cancel alone: the submitter may still see it
            # alive (SchedulerState.cancelling), and the poll asks it before anything is recorded.
            unsettled.add(index)
        subjobs.append(shown)
    labels = tuple(outcome.subjob_label(job, i) for i in range(job.n_subjobs))
    return JobStatus(jobid=job.jobid, subjobs=tuple(subjobs), missing=not files.exists, labels=labels,
                     unsettled=frozenset(unsettled))


_FINAL = ("succeeded", "failed")


def _evidence(
    job: JobSpec,
    index: int,
    word: str,
    code: int | None,
    said: SchedulerState | None,
    files: RemoteFiles,
    ages: Mapping[int, float],
    now: float,
    grace: float,
    *,
    asked: bool = False,
) -> SubjobStatus:
    """What this poll saw of one subjob, before the record is consulted.

    ``asked``: the scheduler was asked about this job (its silence on a
    subjob then means it has nothing to say about it).
    """
    if job.status == outcome.SUBMISSION_FAILED:  # final whatever is on the resource (records from before outcomes)
        return outcome.submission_failure(index, str(job.extra.get("error") or "")).as_status(index)
    cancelled = outcome.stopped_by_cancel(job, index) or files.cancelled
    finished_said = said is not None and said.known and said.state.finished
    usage = said.usage if finished_said and said is not None else None
    if word == "succeeded":
        return SubjobStatus(index=index, state=State.SUCCEEDED, exit_code=code or 0, usage=usage)
    if word == "failed":
        if finished_said and said is not None and said.reason is not None and said.reason.specific:
            if said.reason is FailureReason.CANCELLED:
                return _cancelled(job, index, said.detail, usage, cancelled)
            return SubjobStatus(index=index, state=State.FAILED, exit_code=code, reason=said.reason,
                                detail=said.detail, usage=usage)
        if (_signalled(code) and said is not None and said.known and said.state is State.RUNNING
                and not job.parameters.get("launcher")):
            # Killed, and the scheduler is still ending it: its verdict (walltime,
            # cancelled, out of memory) comes with the next poll.
            return SubjobStatus(index=index, state=State.RUNNING, detail=f"ending (exit code {code})")
        since = job.unaccounted.get(str(index))
        unexplained = said is not None and (not said.known or said.state is State.RUNNING or (
            said.state is State.SUCCEEDED and said.exit_code is None))
        if (unexplained and "memory" in job.parameters and not job.parameters.get("launcher")
                and (since is None or now - since < grace)):
            # Failed under a memory limit, and the scheduler has not accounted for it
            # yet (still ending, or Grid Engine's accounting flush): the cause (a
            # refused allocation) may be in that record. Waited for at most the
            # grace period (poll stamps the start).
            return SubjobStatus(index=index, state=State.RUNNING, detail=f"ending (exit code {code}; {AWAITING})")
        if cancelled and _signalled(code):
            return _cancelled(job, index, "", usage, cancelled)
        return SubjobStatus(index=index, state=State.FAILED, exit_code=code, reason=FailureReason.EXIT_CODE,
                            usage=usage)
    if finished_said and said is not None and said.state is State.FAILED:
        reason = said.reason or FailureReason.EXIT_CODE
        if reason is FailureReason.CANCELLED or (cancelled and not reason.specific):
            return _cancelled(job, index, said.detail if reason is FailureReason.CANCELLED else "", usage,
                              cancelled)
        # Killed by the scheduler (walltime, memory, node) before the command could end:
        # the scheduler's code is its own bookkeeping (Slurm's TIMEOUT is 0:0), not the command's.
        code = said.exit_code if not reason.specific else None
        detail = said.detail
        if reason is FailureReason.LOST and not word:
            detail = f"{NEVER_STARTED}; {detail}" if detail else NEVER_STARTED
        return SubjobStatus(index=index, state=State.FAILED, exit_code=code, reason=reason,
                            detail=detail, usage=usage)
    if not files.exists and job.status != "registered":
        # Its directory (status files and all) is gone: whatever the scheduler
        # says, how the command ended cannot be known; never "pending" again.
        # Unless the user cancelled it (the local submitter cannot see its marker there any more).
        if cancelled:
            return _cancelled(job, index, "", usage, cancelled)
        return SubjobStatus(index=index, state=State.UNKNOWN, detail=f"{GONE_DETAIL}; {_scheduler_words(said)}")
    if said is not None and (not said.known or said.state is State.SUCCEEDED):
        # The scheduler is done with it, yet it wrote nothing final: wait a
        # grace period (a shared filesystem may show the file late), then say so.
        since = job.unaccounted.get(str(index), now)
        age = max(now - since, ages.get(index, 0.0) if not said.known else 0.0)
        if age >= grace:
            if cancelled:
                return _cancelled(job, index, "", None, cancelled)
            if not word:
                why = (f"{NEVER_STARTED}, yet the scheduler says it completed" if said.known
                       else f"{NEVER_STARTED}, and the scheduler no longer knows it")
            else:
                why = ("the scheduler says it completed, but it wrote no final status" if said.known
                       else "the scheduler no longer knows it, and it wrote no final status")
            if not said.known and said.detail != SchedulerState.forgotten().detail:
                why += f" ({said.detail})"  # why it cannot say more (its accounting failing)
            return SubjobStatus(index=index, state=State.FAILED, reason=FailureReason.LOST, detail=why)
    if files.completed:
        # The launcher finished, yet this subjob never wrote a final line.
        if cancelled:
            return _cancelled(job, index, "", None, cancelled)
        return SubjobStatus(index=index, state=State.FAILED, reason=FailureReason.LOST,
                            detail=(f"{NEVER_STARTED}, and its launcher has finished" if not word
                                    else "its launcher finished without it writing a final status"))
    if cancelled and word not in _FINAL and _cancel_settled(job, said, asked, now, grace):
        # Cancelled, and nobody says it still runs (or the cancel is older than the grace period):
        # a submitter that cannot see its subjobs must not keep them "running" forever.
        return SubjobStatus(index=index, state=State.FAILED, reason=FailureReason.CANCELLED, detail=CANCEL_DETAIL)
    if said is not None and said.known and said.state is State.PENDING and word != "running":
        return SubjobStatus(index=index, state=State.PENDING, detail=said.detail, blocked=said.blocked)
    if word == "running" or (said is not None and said.known and said.state is State.RUNNING):
        detail = said.detail if said is not None and said.known and said.state is State.RUNNING else ""
        return SubjobStatus(index=index, state=State.RUNNING, detail=detail)
    if files.exists or job.status == "submitted":
        return SubjobStatus(index=index, state=State.PENDING)
    return SubjobStatus(index=index, state=State.UNKNOWN)


CANCEL_DETAIL = outcome.CANCEL_DETAIL
#: How a lost subjob that has no status file at all is described: the runscript never reached it.
NEVER_STARTED = "it never started"
#: A subjob whose job directory vanished from the resource.
GONE_DETAIL = "its job directory is gone"


#: A failed subjob shown "ending" while the scheduler's accounting of it is awaited.
AWAITING = "waiting for the scheduler's accounting"


def _scheduler_words(said: SchedulerState | None) -> str:
    """``the scheduler says succeeded, exit code 0``: its last word on a subjob, for messages."""
    if said is None:
        return "the scheduler was not asked"
    if not said.known:
        return "the scheduler no longer knows it"
    words = [said.state.value] + ([f"exit code {said.exit_code}"] if said.exit_code is not None else [])
    words += [said.detail] if said.detail else []
    return "the scheduler says " + ", ".join(words)


def gone_message(job: JobSpec, status: JobStatus) -> tuple[str, str]:
    """One line (and the hint) for a job whose directory vanished from its resource.

    Says what the scheduler said last and what to do: the outputs the
    command wrote are in its working directory, which ReproMan did not
    remove; the record can be forgotten with ``--delete``.
    """
    words = sorted({s.detail.split("; ", 1)[1] for s in status.subjobs
                    if s.state is State.UNKNOWN and s.detail.startswith(GONE_DETAIL + "; ")})
    message = (f"its directory {job.job_dir} is gone from resource {job.resource_name!r}, so how its subjobs "
               f"ended cannot be known ({status.summary()}" + (f"; {'; '.join(words)}" if words else "") + ")")
    hint = (f"What the command wrote is in its working directory {job.working_directory} on the resource; "
            f"'reproman jobs --delete {job.jobid}' forgets the job and leaves that directory as it is.")
    return message, hint

#: A subjob the scheduler says was cancelled that ``reproman jobs --cancel`` did not stop.
OUTSIDE_DETAIL = outcome.OUTSIDE_DETAIL


def _cancelled(job: JobSpec, index: int, words: str, usage: Any, ours: bool) -> SubjobStatus:
    """A cancelled subjob, labelled by who stopped it; no exit code (a cancelled process's code says nothing).

    ``ours``: ``reproman jobs --cancel`` stopped it; otherwise the
    scheduler's ``words`` (``CANCELLED``) say someone else did.
    """
    if ours:
        # The scheduler's words may add how (Grid Engine: "... (qdel)", "... before it started").
        detail = words if words.startswith(CANCEL_DETAIL) else CANCEL_DETAIL
    else:
        detail = f"{OUTSIDE_DETAIL}: {words}" if words else OUTSIDE_DETAIL
    return SubjobStatus(index=index, state=State.FAILED, reason=FailureReason.CANCELLED, detail=detail,
                        usage=usage)


def _cancel_settled(job: JobSpec, said: SchedulerState | None, asked: bool, now: float, grace: float) -> bool:
    """A cancelled subjob without a final line counts as cancelled now.

    When the scheduler, asked, has nothing to say about it; or, whatever it
    says, once the cancel is older than ``grace`` (a scheduler may take a
    moment to end what it was told to, not forever). Never while the
    submitter says it sees the subjob's processes still alive
    (:attr:`SchedulerState.cancelling`): what is still writing into the
    working directory is not finished, and a fetch would take half-written files.
    """
    if said is not None and said.known and said.cancelling:
        return False
    if asked and said is None:
        return True
    if job.cancelled:
        import datetime

        try:
            since = datetime.datetime.fromisoformat(job.cancelled).timestamp()
        except ValueError:
            return False
        return now - since >= grace
    return False


def _signalled(code: int | None) -> bool:
    return code is not None and code > 128


def lost_after_seconds() -> float:
    """``[jobs] lost_after``: seconds of silence before a subjob the scheduler is done with counts as lost."""
    from reproman.config import config_number, get_config

    return config_number(get_config().get("jobs", "lost_after"), "[jobs] lost_after", default=LOST_AFTER, seconds=True)


def read_files(session: Session, jobs: Sequence[JobSpec]) -> dict[str, RemoteFiles]:
    """One remote command: the status files of all ``jobs`` (keyed by jobid)."""
    if not jobs:
        return {}
    result = session.execute_command(status_command([j.job_dir for j in jobs]))
    by_dir = parse_status_output(result.stdout)
    return {j.jobid: by_dir.get(j.job_dir, RemoteFiles()) for j in jobs}


def status_from_files(session: Session, job: JobSpec) -> JobStatus:
    """Each subjob's state as its status file (and the job's recorded outcomes) say, in one remote read.

    No scheduler is asked: for an orchestrator that records a finished
    job's outcome with its results (core fetches only finished jobs).
    """
    return interpret(job, read_files(session, [job])[job.jobid])


def silence(session: Session, suspects: Sequence[tuple[JobSpec, Sequence[int]]]) -> dict[str, dict[int, float]]:
    """Seconds since each suspect subjob's status file (or, without one, its job directory) last changed.

    One remote command for all of them, ages measured on the resource's own
    clock. GNU ``stat -c`` first, BSD ``stat -f`` as the fallback; a
    resource with neither gives no ages (the grace period then runs from
    the first poll that saw the subjob unaccounted).
    """
    paths: list[str] = []
    for job, indices in suspects:
        paths.append(job.job_dir)
        paths.extend(layout.status_file(job.job_dir, i) for i in indices)
    quoted = " ".join(shlex.quote(p) for p in paths)
    result = session.execute_command(
        f"date +%s; stat -c '%Y %n' -- {quoted} 2>/dev/null || stat -f '%m %N' -- {quoted} 2>/dev/null; true"
    )
    lines = result.stdout.splitlines()
    if not lines or not lines[0].strip().isdigit():
        return {}
    remote_now = int(lines[0].strip())
    mtimes: dict[str, int] = {}
    for line in lines[1:]:
        stamp, _, path = line.partition(" ")
        if stamp.isdigit():
            mtimes[path] = int(stamp)
    ages: dict[str, dict[int, float]] = {}
    for job, indices in suspects:
        for i in indices:
            mtime = mtimes.get(layout.status_file(job.job_dir, i), mtimes.get(job.job_dir))
            if mtime is not None:
                ages.setdefault(job.jobid, {})[i] = float(max(0, remote_now - mtime))
    return ages


def poll(
    session: Session,
    submitter: Submitter,
    jobs: Sequence[JobSpec],
    *,
    changed: set[str] | None = None,
    now: float | None = None,
    usage: bool = True,
) -> dict[str, JobStatus]:
    """Status of every subjob of ``jobs`` on one resource; finished subjobs recorded in the jobs.

    Costs one status read, plus, only for jobs with unsettled subjobs, one
    :meth:`Submitter.scheduler_states` call, plus (with ``usage``) one
    :meth:`Submitter.usage` call for jobs that finished without their usage
    recorded. When the
    scheduler says a subjob ended (or forgot it) while its file says nothing
    final, the files of those jobs are read once more (it may have just
    finished), and the silence of forgotten ones is measured (one command).

    Finished subjobs are recorded in each :class:`JobSpec` (``outcome``);
    the ``jobid`` of every job whose record changed is added to ``changed``,
    for the caller to save.
    """
    now = time.time() if now is None else now
    grace = lost_after_seconds()
    files = read_files(session, jobs)
    first = {j.jobid: interpret(j, files[j.jobid], now=now, lost_after=grace) for j in jobs}
    # A job whose directory vanished is asked about too: the scheduler's word is all that is left.
    open_jobs = [j for j in jobs if first[j.jobid].unsettled and (files[j.jobid].exists or j.submission_id)]
    said: Mapping[str, Mapping[int, SchedulerState]] = {}
    ages: dict[str, dict[int, float]] = {}
    asked: set[str] = set()
    if open_jobs:
        try:
            said = submitter.scheduler_states(open_jobs, {j.jobid: first[j.jobid].unsettled for j in open_jobs})
            asked = {j.jobid for j in open_jobs}
        except ResourceGoneError:
            raise  # the resource itself is gone: no later poll will be answered
        except ReproManError as exc:
            # A scheduler that does not answer this time (controller restarting,
            # network hiccup) must not end a follow: status files still count,
            # and the next poll asks again.
            lgr.warning("could not ask the scheduler about %d job(s), will retry: %s", len(open_jobs), exc)
        done = [j for j in open_jobs if _ended_silently(files[j.jobid], said.get(j.jobid, {}))]
        if done:
            files = {**files, **read_files(session, done)}
        suspects: dict[str, tuple[JobSpec, list[int]]] = {}
        for job in done:
            for index in _ended_silently(files[job.jobid], said.get(job.jobid, {}), unaccounted_only=True):
                key = str(index)
                if key not in job.unaccounted:
                    job.unaccounted[key] = now
                    if changed is not None:
                        changed.add(job.jobid)
                if not said[job.jobid][index].known and now - job.unaccounted[key] < grace:
                    suspects.setdefault(job.jobid, (job, []))[1].append(index)
        if suspects:
            ages = silence(session, list(suspects.values()))
    statuses = {
        j.jobid: interpret(j, files[j.jobid], said.get(j.jobid, {}) if j.jobid in asked else None,
                           ages=ages.get(j.jobid), now=now, lost_after=grace)
        for j in jobs
    }
    for job in jobs:
        if outcome.record(job, statuses[job.jobid]) and changed is not None:
            changed.add(job.jobid)
        if outcome.note_directory(job, gone=statuses[job.jobid].missing and job.status != "registered") \
                and changed is not None:
            changed.add(job.jobid)
        for sub in statuses[job.jobid].subjobs:
            if sub.state is State.RUNNING and sub.detail.endswith(f"{AWAITING})") and str(sub.index) not in job.unaccounted:
                job.unaccounted[str(sub.index)] = now  # bounds the wait to the grace period
                if changed is not None:
                    changed.add(job.jobid)
    wanting = [j for j in jobs if usage and statuses[j.jobid].finished and j.usage_available is not False
               and outcome.missing_usage(j)]
    if wanting and collect_usage(submitter, wanting, changed):
        statuses.update({j.jobid: interpret(j, files[j.jobid], now=now, lost_after=grace) for j in wanting})
    return statuses


def collect_usage(submitter: Submitter, jobs: Sequence[JobSpec], changed: set[str] | None = None) -> bool:
    """Ask the accounting once for the finished subjobs of ``jobs`` lacking usage; True if any was recorded."""
    try:
        got = submitter.usage(jobs)
    except ReproManError as exc:
        lgr.warning("could not read resource usage of %d job(s): %s", len(jobs), exc)
        return False
    recorded_any = False
    for job in jobs:
        available = got is not None
        touched = job.usage_available is not available
        job.usage_available = available
        if got is not None and outcome.record_usage(job, got.get(job.jobid, {})):
            touched = recorded_any = True
        if touched and changed is not None:
            changed.add(job.jobid)
    return recorded_any


def _ended_silently(
    files: RemoteFiles, said: Mapping[int, SchedulerState], *, unaccounted_only: bool = False
) -> list[int]:
    """Subjobs the scheduler is done with (or forgot) that wrote no final status line.

    With ``unaccounted_only``, only those the scheduler cannot explain:
    forgotten, or "completed" without the line that completion writes.
    """
    result = []
    for index, state in said.items():
        line = files.lines.get(index)
        if line is not None and layout.parse_status_line(line)[0] in _FINAL:
            continue
        if not state.known or state.state is State.SUCCEEDED or (state.state.finished and not unaccounted_only):
            result.append(index)
    return result


def stderr_path(job: JobSpec, index: int, local: bool) -> str:
    """Where subjob ``index``'s stderr is: fetched copy (``local``) or on the resource."""
    if local:
        import os

        return os.path.join(local_log_dir(job), f"stderr.{index}")
    return layout.stderr_file(job.job_dir, index)


def local_log_dir(job: JobSpec) -> str:
    """``<local_directory>/.reproman/jobs/<resource>/<jobid>``: logs and spec kept with the results."""
    import os

    return os.path.join(job.local_directory, *layout.JOBS_SUBDIR.split("/"), job.resource_name, job.jobid)
