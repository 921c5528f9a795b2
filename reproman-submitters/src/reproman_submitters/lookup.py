"""Finding a job whose submission was interrupted, by its name: what the schedulers share.

A ``reproman run`` killed while :meth:`Submitter.submit` ran never learnt the
scheduler's ids (see :meth:`reproman.jobs.contracts.Submitter.find_submitted`).
Each scheduler is asked in its own words, but the shape is the same:

* ONE remote command asks the queue and the scheduler's memory of finished
  jobs (and whatever else the answer depends on); :class:`Lookup` builds it
  from named sections and reads each section's output and exit status back;
* it also looks whether any subjob wrote its status file (the runscript's
  first act, :data:`STARTED`): a job that started is never "never queued",
  whatever a scheduler that forgot it says;
* :func:`decide` turns the ids found into the contract's answer: the ids
  when there are as many as :meth:`submit` makes, "" when there are none and
  the scheduler would list the job had it taken it, None when it cannot
  tell, and for fewer (the submission stopped between two pieces of a split
  array) the pieces taken are cancelled and an error says so, unless the
  scheduler may have forgotten the others (then None: they may have run).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Sequence

import attrs

from reproman.plugins import JobFiles, JobSpec, SubmissionError

lgr = logging.getLogger("reproman.submitters.lookup")

#: Ends each section of a lookup's output: ``MARK NAME EXIT-STATUS``.
MARK = "--reproman-lookup-end"
#: The section that prints a line when a subjob of the job has started (wrote its status file).
STARTED = "started"


@attrs.frozen
class Answer:
    """What one section of a lookup printed (stdout and stderr together) and its exit status."""

    text: str
    status: int | None

    @property
    def ok(self) -> bool:
        return self.status == 0

    def last_line(self) -> str:
        lines = [ln.strip() for ln in self.text.splitlines() if ln.strip()]
        return lines[-1] if lines else f"no output, exit {self.status}"


@attrs.define
class Lookup:
    """A one-command script of named sections; :meth:`read` gives each section's :class:`Answer`."""

    sections: list[tuple[str, str]] = attrs.field(factory=list)

    def add(self, name: str, command: str) -> Lookup:
        """Add a shell ``command`` (already quoted) whose output, with its stderr, is read back as ``name``."""
        self.sections.append((name, command))
        return self

    def add_started(self, job: JobSpec) -> Lookup:
        """Add the :data:`STARTED` section: one line if any ``status.INDEX`` of ``job`` exists."""
        pattern = shlex.quote(JobFiles.path(str(job.job_dir), "status.")) + "*"
        return self.add(STARTED, f'for f in {pattern}; do [ -e "$f" ] && echo yes; break; done; true')

    def script(self) -> str:
        return "; ".join(
            f"{{ {command}\n}} 2>&1; printf '\\n%s %s %s\\n' {MARK} {shlex.quote(name)} \"$?\""
            for name, command in self.sections
        )

    def read(self, stdout: str) -> dict[str, Answer]:
        answers: dict[str, Answer] = {}
        lines: list[str] = []
        for line in stdout.splitlines():
            words = line.split(" ")
            if len(words) == 3 and words[0] == MARK:
                status = int(words[2]) if words[2].isdigit() else None
                answers[words[1]] = Answer("\n".join(lines), status)
                lines = []
            else:
                lines.append(line)
        return answers


def started(answers: dict[str, Answer]) -> bool:
    """Whether the :data:`STARTED` section saw a status file (a missing section counts as started)."""
    answer = answers.get(STARTED)
    return answer is None or "yes" in answer.text.split()


def decide(
    job: JobSpec,
    scheduler: str,
    found: Sequence[str],
    expected: int,
    *,
    would_list: str | None,
    job_started: bool,
    cancel: Callable[[Sequence[str]], object],
) -> str | None:
    """The answer of :meth:`find_submitted` for the ``found`` ids (in submission order).

    ``would_list`` is None when the scheduler would list the job had it ever
    taken it (its queue and its history both answered, and the history
    reaches back to the job's registration); otherwise why it might not,
    for the log. ``job_started``: a status file exists, so the job ran.
    """
    if len(found) == expected:
        return ",".join(found)
    if not found:
        if would_list is not None:
            lgr.info("job %s: %s lists no job of that name, and %s; cannot tell whether it took it",
                     job.jobid, scheduler, would_list)
            return None
        if job_started:
            lgr.warning("job %s: %s lists no job of that name, yet a subjob started (it wrote its status file); "
                        "cannot tell which job ran it", job.jobid, scheduler)
            return None
        return ""
    if len(found) > expected:
        lgr.warning("job %s: %s holds %d jobs named for it (%s), %d expected; not adopting any",
                    job.jobid, scheduler, len(found), ", ".join(found), expected)
        return None
    if would_list is not None:
        # The missing pieces may have run and been forgotten while these still run: leave them be.
        lgr.warning("job %s: %s holds %d of the %d arrays of the job (%s), and %s; not adopting them",
                    job.jobid, scheduler, len(found), expected, ", ".join(found), would_list)
        return None
    cancel(list(found))
    raise SubmissionError(
        f"only {len(found)} of the {expected} arrays of the job reached {scheduler} ({', '.join(found)}); "
        "they were cancelled")


def seconds_since(created: str) -> float | None:
    """Seconds since ``created`` (the job record's ISO time), by this machine's clock; None if unreadable.

    Compared with how long a scheduler keeps finished jobs: the job was
    submitted after it was registered, so a scheduler that keeps them longer
    than this still knows it. Only a duration is compared, so the resource's
    clock need not agree with this one.
    """
    import datetime

    try:
        then = datetime.datetime.fromisoformat(created)
    except (TypeError, ValueError):
        return None
    now = datetime.datetime.now(then.tzinfo) if then.tzinfo else datetime.datetime.now()
    return (now - then).total_seconds()


#: Room, in seconds, between a job's age and a scheduler's retention before trusting that it still knows the job.
RETENTION_MARGIN = 120.0


#: Seconds a scheduler query (squeue, sacct, ...) may take before it counts as not answering.
QUERY_TIMEOUT = 60.0
#: Exit status of coreutils' ``timeout`` when the command ran out of time (137 when it had to be killed).
TIMED_OUT = (124, 137)


def query_timeout() -> float:
    """``[jobs] scheduler_timeout``: seconds a scheduler query may take (default :data:`QUERY_TIMEOUT`).

    A stuck controller or accounting database makes ``squeue``/``sacct``
    wait for ever; without a bound ``reproman jobs`` would hang with no
    word. A slow but answering scheduler fits well within a minute.
    """
    from reproman.plugins import config_number, get_config

    return config_number(get_config().get("jobs", "scheduler_timeout"), "[jobs] scheduler_timeout",
                         default=QUERY_TIMEOUT, above=True, seconds=True)


def bounded(command: str, seconds: float) -> str:
    """Shell code running ``command`` (shell code) for at most ``seconds`` where ``timeout`` exists.

    ``timeout`` (coreutils, on any Linux cluster) runs it in a shell of its
    own; TERM first, KILL 5 s later if TERM is ignored. Where there is no
    ``timeout`` the command runs unbounded, as it did before.
    """
    quoted = shlex.quote(command)
    return (f"if command -v timeout >/dev/null 2>&1; then timeout -k 5 {seconds:g} sh -c {quoted}; "
            f"else sh -c {quoted}; fi")


def timed_out(status: int | None, seconds: float) -> bool:
    """Whether an exit ``status`` of :func:`bounded` code means the time ran out (not the command's own exit)."""
    return status in TIMED_OUT and seconds > 0


def no_answer(what: str, seconds: float) -> SubmissionError:
    """The one-line error for a scheduler command that did not answer in time."""
    return SubmissionError(
        f"{what} did not answer within {seconds:g} s (the scheduler's controller or database may be stuck)",
        hint="Check the scheduler on the resource; '[jobs] scheduler_timeout' sets how long to wait.")
