"""Final subjob outcomes: recorded the first time they are seen, refined, never regressed.

A scheduler forgets a finished job within minutes (Slurm's ``MinJobAge``,
Torque's ``keep_completed``, LSF's ``CLEAN_PERIOD``), and a subjob killed by
the scheduler never writes its final status line. What was learned while the
scheduler still knew must therefore be kept in the job record: the first
time a subjob is seen finished, its state, exit code and reason are stored
(``Subjob.outcome``), and later polls may only add to them:

* a subjob killed by a signal (exit code over 128) recorded as "non-zero
  exit", or one recorded "lost", may get the scheduler's explanation
  (walltime, out of memory, cancelled by someone, node failure...) when its
  accounting arrives late; never ``reproman jobs --cancel``'s: a cancel
  after the fact stopped nothing of it, so it does not relabel it;
* the subjob's own final status line replaces a "lost" verdict, which was
  only an inference from silence;
* usage figures are added when accounting has them.

Anything else stays as first recorded: a succeeded subjob stays succeeded,
a failed one keeps its exit code and reason.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from reproman.jobs.contracts import FailureReason, State, SubjobStatus, Usage

if TYPE_CHECKING:
    from reproman.jobs.spec import JobSpec

#: How a subjob cancelled by someone else (scancel, qdel) is described; a cancel of ours replaces it.
OUTSIDE_DETAIL = "cancelled outside ReproMan"


@attrs.frozen(kw_only=True)
class Outcome:
    """How a subjob ended, as stored in its ``outcome`` in the job record."""

    state: State
    exit_code: int | None = None
    reason: FailureReason | None = None
    detail: str = ""
    usage: Usage | None = None
    #: When it was first seen finished (local ISO time).
    seen: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "state": self.state.value, "exit_code": self.exit_code,
            "reason": self.reason.value if self.reason else None, "detail": self.detail or None,
            "seen": self.seen,
        }
        if self.usage is not None:
            data["usage"] = self.usage.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome | None:
        """The stored outcome, or None when it is not one (a hand-edited record)."""
        try:
            state = State(data["state"])
            reason = FailureReason(data["reason"]) if data.get("reason") else None
        except (KeyError, ValueError, TypeError):
            return None
        if not state.finished:
            return None
        usage = data.get("usage")
        return cls(state=state, exit_code=data.get("exit_code"), reason=reason, detail=str(data.get("detail") or ""),
                   usage=Usage.from_dict(usage) if isinstance(usage, Mapping) else None, seen=str(data.get("seen") or ""))

    @classmethod
    def from_status(cls, status: SubjobStatus, seen: str | None = None) -> Outcome:
        return cls(state=status.state, exit_code=status.exit_code, reason=status.reason, detail=status.detail,
                   usage=status.usage, seen=seen or now_iso())

    def as_status(self, index: int) -> SubjobStatus:
        return SubjobStatus(index=index, state=self.state, exit_code=self.exit_code, reason=self.reason,
                            detail=self.detail, usage=self.usage)


#: ``JobSpec.status`` of a job the scheduler refused: final, nothing ran.
SUBMISSION_FAILED = "submission failed"


def now_iso() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def merge(recorded: Outcome | None, seen: SubjobStatus, *, own_line: bool = False) -> Outcome | None:
    """What to keep, given the recorded outcome and what this poll saw.

    ``own_line`` says ``seen`` comes from the subjob's final status line.
    Returns None while nothing final is known.
    """
    if recorded is None:
        return Outcome.from_status(seen) if seen.state.finished else None
    if not seen.state.finished:
        return recorded
    if recorded.reason is FailureReason.LOST and own_line:
        return attrs.evolve(Outcome.from_status(seen, recorded.seen), usage=seen.usage or recorded.usage)
    result = recorded
    if _explains(recorded, seen):
        result = attrs.evolve(result, reason=seen.reason, detail=seen.detail or result.detail,
                              exit_code=result.exit_code if result.exit_code is not None else seen.exit_code)
    if seen.usage is not None:
        result = attrs.evolve(result, usage=_fill(result.usage, seen.usage))
    return result


def _explains(recorded: Outcome, seen: SubjobStatus) -> bool:
    """``seen`` names the cause of a failure recorded without one: a signal kill, or silence."""
    if recorded.state is not State.FAILED or seen.state is not State.FAILED or seen.reason is None:
        return False
    if not seen.reason.specific:
        return False
    if seen.reason is FailureReason.CANCELLED and seen.detail == CANCEL_DETAIL:
        return False  # our own cancel came after the fact: it stopped nothing of this subjob
    if recorded.reason is FailureReason.LOST:
        return True  # the scheduler's late word explains the silence
    return recorded.reason is FailureReason.EXIT_CODE and (recorded.exit_code or 0) > 128


#: How a subjob stopped by ``reproman jobs --cancel`` is labelled.
CANCEL_DETAIL = "cancelled with 'reproman jobs --cancel'"


def stopped_by_cancel(job: JobSpec, index: int) -> bool:
    """``reproman jobs --cancel`` stopped this subjob (it was not finished when the cancel came)."""
    if not job.cancelled:
        return False
    return job.cancelled_subjobs is None or index in job.cancelled_subjobs


def adopt_cancel(job: JobSpec, cancelled: str | None, cancelled_subjobs: Sequence[int] | None) -> bool:
    """Take into ``job`` a ``reproman jobs --cancel`` another process recorded; True if ``job`` changed.

    A follower (or a second ``--cancel``) that polled just after the
    scheduler carried out the cancel, but before the canceller wrote its
    record, saw a cancel it did not know of and recorded "cancelled outside
    ReproMan"; since a recorded outcome is never rewritten by a later poll,
    that label would stay for good. The record of our cancel wins: it is
    merged in (the earliest time, the subjobs either cancel stopped), and
    the outcomes of the subjobs it stopped are relabelled as ours.
    """
    changed = False
    if cancelled and not job.cancelled:
        job.cancelled = cancelled
        job.cancelled_subjobs = None if cancelled_subjobs is None else sorted(set(cancelled_subjobs))
        changed = True
    elif cancelled and job.cancelled:
        if cancelled < job.cancelled:
            job.cancelled = cancelled
            changed = True
        if job.cancelled_subjobs is not None:
            merged = None if cancelled_subjobs is None else sorted({*job.cancelled_subjobs, *cancelled_subjobs})
            if merged != job.cancelled_subjobs:
                job.cancelled_subjobs = merged
                changed = True
    if not job.cancelled:
        return changed
    for index in range(job.n_subjobs):
        old = recorded(job, index)
        if (old is not None and old.reason is FailureReason.CANCELLED and old.detail.startswith(OUTSIDE_DETAIL)
                and stopped_by_cancel(job, index)):
            job.subjobs[index].outcome = attrs.evolve(old, detail=CANCEL_DETAIL).to_dict()
            changed = True
    return changed


def relabel_cancelled(job: JobSpec, subjobs: Sequence[SubjobStatus]) -> tuple[SubjobStatus, ...]:
    """``subjobs`` as read by a poll, with "cancelled outside ReproMan" made ours where ``job`` now says
    ``reproman jobs --cancel`` stopped them (a save took in a concurrent cancel, see :func:`adopt_cancel`)."""
    return tuple(
        attrs.evolve(sub, detail=CANCEL_DETAIL)
        if (sub.reason is FailureReason.CANCELLED and sub.detail.startswith(OUTSIDE_DETAIL)
            and stopped_by_cancel(job, sub.index))
        else sub
        for sub in subjobs
    )


def _fill(old: Usage | None, new: Usage) -> Usage:
    """Usage figures: what was recorded, completed by what accounting knows now (records arrive in parts)."""
    if old is None:
        return new
    return Usage(elapsed=old.elapsed if old.elapsed is not None else new.elapsed,
                 cpu_time=old.cpu_time if old.cpu_time is not None else new.cpu_time,
                 max_rss=old.max_rss if old.max_rss is not None else new.max_rss,
                 node=old.node or new.node)


def recorded(job: JobSpec, index: int) -> Outcome | None:
    data = job.subjobs[index].outcome if index < job.n_subjobs else None
    return Outcome.from_dict(data) if isinstance(data, Mapping) else None


class Observed(Protocol):
    """What :func:`record` reads of a poll's answer: a :class:`reproman.jobs.status.JobStatus`."""

    @property
    def subjobs(self) -> Sequence[SubjobStatus]: ...


def record(job: JobSpec, status: Observed) -> bool:
    """Store every finished subjob of ``status`` in ``job``; True when the record changed."""
    changed = False
    for sub in status.subjobs:
        if not sub.state.finished or sub.index >= job.n_subjobs:
            continue
        old = recorded(job, sub.index)
        # ``status`` was computed with the recorded outcome already merged in
        # (see status.interpret): keep it as shown, with the first sighting's time.
        new = Outcome.from_status(sub, seen=old.seen if old is not None else None)
        if new != old:
            job.subjobs[sub.index].outcome = new.to_dict()
            changed = True
        if job.unaccounted.pop(str(sub.index), None) is not None:
            changed = True
    return changed


def record_submission_failure(job: JobSpec, error: str) -> None:
    """Mark ``job`` as refused by the scheduler: every subjob failed (reason "submission failed"), for good.

    Nothing was queued, so nothing will ever change: the job is finished, can
    be deleted, and polls never ask the scheduler about it.
    """
    job.status = SUBMISSION_FAILED
    job.extra["error"] = error
    for index in range(job.n_subjobs):
        job.subjobs[index].outcome = submission_failure(index, error).to_dict()


def submission_failure(index: int, error: str) -> Outcome:
    return Outcome(state=State.FAILED, reason=FailureReason.SUBMISSION, detail=error, seen=now_iso())


def record_usage(job: JobSpec, usage: Mapping[int, Usage]) -> bool:
    changed = False
    for index, figures in usage.items():
        old = recorded(job, index)
        if old is not None:
            filled = _fill(old.usage, figures)
            if filled != old.usage:
                job.subjobs[index].outcome = attrs.evolve(old, usage=filled).to_dict()
                changed = True
    return changed


def missing_usage(job: JobSpec) -> list[int]:
    """Finished subjobs whose usage is not recorded yet (no figures at all, or no elapsed time)."""
    result = []
    for index in range(job.n_subjobs):
        old = recorded(job, index)
        if old is not None and (old.usage is None or (old.usage.elapsed is None and not old.usage.node)):
            result.append(index)
    return result


# -- naming and summarising ------------------------------------------------------------------------

def subjob_label(job: JobSpec, index: int) -> str:
    """A subjob named by its batch parameters (``i=2``), as the user wrote them; ``#0`` without any."""
    if 0 <= index < job.n_subjobs and job.subjobs[index].p:
        return " ".join(f"{k}={v}" for k, v in job.subjobs[index].p.items())
    return f"#{index}"


def failure_words(reason: str | None, exit_code: int | None, detail: str | None) -> str:
    """How a failed subjob ended, in the words every view uses (the fetch, ``jobs --status``, ``jobs --log``).

    The reason first (a signal's exit code says little), then the exit code,
    then the details: ``walltime exceeded``, ``killed by SIGTERM, exit code
    143``, ``lost: its launcher finished without it writing a final status``.
    A detail that restates the reason stands for it (``cancelled with
    'reproman jobs --cancel'``, not ``cancelled, cancelled with ...``).
    """
    reason = reason or ""
    detail = detail or ""
    words = []
    if reason == FailureReason.LOST.value:
        # The stored reason explains itself in brackets; a detail says more precisely how: "lost: <how>".
        words.append(f"lost: {detail}" if detail else reason)
        detail = ""
    elif reason and reason != FailureReason.EXIT_CODE.value and not detail.startswith(reason):
        words.append(reason)
    signal = signal_name(exit_code) if reason in ("", FailureReason.EXIT_CODE.value) else ""
    if signal:
        words.append(f"killed by {signal}")
    if exit_code is not None:
        words.append(f"exit code {exit_code}")
    if detail:
        words.append(detail)
    return ", ".join(words) or reason


def signal_name(exit_code: int | None) -> str:
    """``SIGTERM`` for exit code 143 (a shell reports a command killed by signal N as 128 + N); else ``""``."""
    import signal

    if not isinstance(exit_code, int) or not 128 < exit_code < 128 + signal.NSIG:
        return ""
    try:
        return signal.Signals(exit_code - 128).name
    except ValueError:
        return ""


def outcomes(job: JobSpec) -> list[Outcome | None]:
    return [recorded(job, i) for i in range(job.n_subjobs)]


#: What a job's subjobs are counted as, in the order summaries show them.
CATEGORIES = ("pending", "running", "succeeded", "failed", "cancelled", "unknown")


def category(status: SubjobStatus) -> str:
    """``cancelled`` for a cancelled failure (nobody's fault), else the state's word."""
    if status.state is State.FAILED and status.reason is FailureReason.CANCELLED:
        return "cancelled"
    return status.state.value


def tally(subjobs: Iterable[SubjobStatus]) -> dict[str, int]:
    """How many subjobs are in each of :data:`CATEGORIES`."""
    counts = dict.fromkeys(CATEGORIES, 0)
    for sub in subjobs:
        counts[category(sub)] += 1
    return counts


def summarise(subjobs: Iterable[SubjobStatus], *, pending_reason: str = "", unknown: str = "unknown") -> str:
    """``"3 running, 97 succeeded"``, ``"1 failed, 2 cancelled"``: THE one summary of a job.

    Listings, ``jobs --status``, ``--follow`` and messages all use it, so a
    job reads the same everywhere. Non-zero counts only; ``pending_reason``
    (the scheduler's main one) in brackets after the pending count;
    ``unknown`` names subjobs nobody has a word on (``not checked`` for a
    listing from the record alone).
    """
    parts = []
    for word, n in tally(subjobs).items():
        if not n:
            continue
        if word == "unknown":
            word = unknown
        parts.append(f"{n} {word}" + (f" ({pending_reason})" if word == "pending" and pending_reason else ""))
    return ", ".join(parts) or "no subjobs"


#: How a listing names subjobs whose outcome is not in the record yet.
NOT_CHECKED = "not checked"
#: How every view names subjobs whose end cannot be known (their job directory vanished).
UNKNOWN = "unknown"
#: Key in a record's ``extra``: when a poll last found the job directory gone from the resource.
DIRECTORY_GONE = "directory_gone"


def note_directory(job: JobSpec, *, gone: bool) -> bool:
    """Keep in the record whether the last poll found the job directory gone; True if that changed.

    So the plain list, which reads the record alone, names those subjobs
    as ``jobs --status`` did (``unknown``), not ``not checked``.
    """
    if gone == bool(job.extra.get(DIRECTORY_GONE)):
        return False
    if gone:
        job.extra[DIRECTORY_GONE] = now_iso()
    else:
        job.extra.pop(DIRECTORY_GONE, None)
    return True


def outcome_text(job: JobSpec) -> str:
    """The job's summary from its record alone (see :func:`summarise`); ``submission failed`` for one
    that never reached the scheduler.

    Subjobs without a recorded outcome are ``not checked``, unless the
    last poll found the job directory gone: then ``unknown``, the word
    ``jobs --status``, ``--follow`` and the report use for them.
    """
    if job.status == SUBMISSION_FAILED:
        return SUBMISSION_FAILED
    text = summarise(statuses_from_record(job), unknown=UNKNOWN if job.extra.get(DIRECTORY_GONE) else NOT_CHECKED)
    missing = job.extra.get(MISSING_OUTPUTS)
    if missing and isinstance(missing, list):
        # Succeeded, yet not everything asked for came back (a misspelt -o): not a plain success.
        text += f"; {len(missing)} output{'s' if len(missing) > 1 else ''} not produced"
    return text


#: ``job.extra`` key: the outputs a fetch found the job had not produced (its files then stay on the resource).
MISSING_OUTPUTS = "missing_outputs"


def failure_rows(job: JobSpec, subjobs: Iterable[SubjobStatus]) -> list[dict[str, Any]]:
    """Failed subjobs as rows: name, parameters, exit code, reason, detail."""
    return [
        {
            "index": s.index, "subjob": subjob_label(job, s.index),
            "p": dict(job.subjobs[s.index].p) if s.index < job.n_subjobs else {},
            "exit_code": s.exit_code, "reason": s.reason.value if s.reason else None, "detail": s.detail or None,
        }
        for s in subjobs
        if s.state is State.FAILED
    ]


def usage_rows(job: JobSpec) -> list[dict[str, Any]] | str:
    """Per-subjob usage from the record, or why there is none."""
    if job.usage_available is False:
        return "unavailable (the resource keeps no accounting)"
    from reproman.jobs.environment import tracing_subjobs

    tracers = tracing_subjobs(job.environment)
    rows = []
    for index, out in enumerate(outcomes(job)):
        if out is not None and out.usage is not None:
            row = {"subjob": subjob_label(job, index), **out.usage.to_dict()}
            if index in tracers:
                row["includes"] = "ReproMan's environment capture (it traced the node's packages)"
            rows.append(row)
    if rows:
        return rows
    return "not recorded yet" if job.usage_available else "unavailable (not asked: see 'reproman jobs --status')"


def statuses_from_record(job: JobSpec) -> Sequence[SubjobStatus]:
    """What the record alone says: recorded outcomes, UNKNOWN for the rest."""
    return [
        out.as_status(i) if out is not None else SubjobStatus(index=i, state=State.UNKNOWN)
        for i, out in enumerate(outcomes(job))
    ]
