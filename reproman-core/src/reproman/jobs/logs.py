"""``reproman jobs --log JOB [SUBJOB]``: the tail of one subjob's stdout and stderr.

While the job runs (or before it is fetched) the logs are read on the
resource, both streams in one remote command; once fetched, from the copy
kept with the results. A subjob is named by its index or by its batch
parameters (``i=2``, several ``KEY=VALUE`` words for several keys); without
one, a single-subjob job's only subjob, else the first failed one.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shlex
from collections.abc import Sequence
from typing import Any

from reproman.errors import JobNotFoundError, UsageError
from reproman.jobs import layout, outcome
from reproman.jobs.contracts import FailureReason, State
from reproman.jobs.registry import Registry
from reproman.jobs.spec import JobSpec
from reproman.jobs.status import local_log_dir

lgr = logging.getLogger(__name__)

STREAMS = ("stdout", "stderr")
_MARK = "==reproman-log== "


def subjob_log(registry: Registry, queries: Sequence[str], lines: int) -> dict[str, Any]:
    """The last ``lines`` lines of both streams of the subjob ``queries`` name."""
    if not queries:
        raise UsageError("--log needs a job", hint="Usage: reproman jobs --log JOB [SUBJOB], e.g. --log 4b76c6 i=2")
    if lines < 1:
        raise UsageError(f"--lines must be at least 1, got {lines}")
    (entry,) = registry.find(queries[:1])
    if not isinstance(entry, JobSpec):
        raise JobNotFoundError(f"job record {entry.jobid} is malformed: {entry.error}")
    job = entry
    index = select_subjob(job, queries[1:])
    row: dict[str, Any] = {"jobid": job.jobid, "index": index, "subjob": outcome.subjob_label(job, index)}
    submitter = _submitter_class(job)
    log_name = submitter.scheduler_log if submitter is not None else ""
    local = {s: os.path.join(local_log_dir(job), f"{s}.{index}") for s in STREAMS}
    released = job.was_fetched and bool(job.extra.get("remote_released"))
    if (job.was_fetched and all(os.path.exists(p) for p in local.values())) or released:
        # Once the resource was freed, the fetched copy is all there is: a subjob without
        # logs there never started (cancelled first), and has nothing to show anywhere.
        row["source"] = "local"
        for stream, path in local.items():
            there = os.path.exists(path)
            row[stream] = _tail_file(path, lines) if there else ""
            row[f"{stream}_path"] = path if there else None
        if log_name:
            path = os.path.join(local_log_dir(job), log_name)
            text = _tail_file(path, SCHEDULER_LOG_LINES) if os.path.exists(path) else None
            _scheduler_words(row, submitter, index, text, path, lines)
        _recorded_words(row, job, index)
        return row
    from reproman.jobs.connection import Connection

    with Connection.for_job(job) as connection:
        if outcome.recorded(job, index) is None:
            _poll_once(connection, job, registry)
        remote = {"stdout": layout.stdout_file(job.job_dir, index), "stderr": layout.stderr_file(job.job_dir, index)}
        script = "; ".join(
            f"printf '{_MARK}%s\\n' {stream}; tail -n {int(lines)} {shlex.quote(path)} 2>/dev/null"
            for stream, path in remote.items()
        )
        if log_name:
            log_path = posixpath.join(job.job_dir, log_name)
            script += (f"; [ -e {shlex.quote(log_path)} ] && printf '{_MARK}scheduler\\n' && "
                       f"tail -n {SCHEDULER_LOG_LINES} {shlex.quote(log_path)} 2>/dev/null")
        result = connection.session.execute_command(script + "; true")
    row["source"] = "resource"
    parts = _split(result.stdout)
    row.update({s: parts[s] for s in STREAMS})
    for stream, path in remote.items():
        row[f"{stream}_path"] = path
    if log_name:
        _scheduler_words(row, submitter, index, parts.get("scheduler"), log_path, lines)
    _recorded_words(row, job, index)
    return row


def _poll_once(connection: Any, job: JobSpec, registry: Registry) -> None:
    """Ask how the job's subjobs stand (one poll), so a subjob the scheduler killed a moment ago has its
    reason recorded before its log is shown; a failed poll only leaves the record as it was."""
    from reproman.errors import ReproManError
    from reproman.jobs.status import poll

    changed: set[str] = set()
    try:
        poll(connection.session, connection.submitter(job.submitter), [job], changed=changed, usage=False)
    except ReproManError as exc:
        lgr.debug("no poll before reading the log of job %s: %s", job.jobid, exc)
        return
    if changed:
        registry.save(job)


def _recorded_words(row: dict[str, Any], job: JobSpec, index: int) -> None:
    """Where the scheduler wrote nothing about the subjob, what it told when asked, as kept in the record.

    Grid Engine writes nothing into the job's output when it kills a task
    at its walltime (``h_rt``): its reason is in its accounting (``qacct``:
    "failed 37 : qmaster enforced h_rt ..."), which the poll recorded; the
    batch schedulers without a log of their own likewise. A subjob that
    failed by its own exit code has no scheduler's words.
    """
    if row.get("scheduler"):
        return
    found = outcome.recorded(job, index)
    if found is None or found.state is not State.FAILED or found.reason in (None, FailureReason.EXIT_CODE):
        return
    assert found.reason is not None
    if found.reason is FailureReason.LOST:  # "lost: <how>", as the other views say it
        row["scheduler"] = outcome.failure_words(found.reason.value, None, found.detail) + "\n"
    else:
        row["scheduler"] = f"{found.reason.value}" + (f": {found.detail}" if found.detail else "") + "\n"
    row["scheduler_path"] = None  # not a file: the job record, from the scheduler's answer


#: How much of a scheduler's log (shared by all subjobs) is searched for one subjob's lines.
SCHEDULER_LOG_LINES = 5000


def _submitter_class(job: JobSpec) -> Any:
    """The job's submitter class (for its scheduler log's name), or None when it is not installed."""
    from reproman.errors import ReproManError
    from reproman.plugins.manager import get_plugin_manager

    try:
        return get_plugin_manager().submitter(job.submitter).load()
    except (ReproManError, ImportError):
        return None


def _scheduler_words(row: dict[str, Any], submitter: Any, index: int, text: str | None, path: str,
                     lines: int) -> None:
    """Add the scheduler's own lines about the subjob (``scheduler``) and where they are (``scheduler_path``)."""
    if text is None:
        return
    row["scheduler_path"] = path
    row["scheduler"] = "".join(f"{line}\n" for line in submitter.scheduler_log_lines(text, index)[-lines:])


def select_subjob(job: JobSpec, words: Sequence[str]) -> int:
    """The subjob ``words`` name: an index (``3``, ``#3``) or ``KEY=VALUE`` words matching its parameters."""
    if not words:
        if job.n_subjobs == 1:
            return 0
        for index, found in enumerate(outcome.outcomes(job)):
            if found is not None and found.state is State.FAILED:
                return index
        raise UsageError(f"job {job.jobid} has {job.n_subjobs} subjobs; say which",
                         hint=f"E.g. 'reproman jobs --log {job.jobid} {_example(job)}'.")
    if len(words) == 1 and words[0].lstrip("#").isdigit():
        index = int(words[0].lstrip("#"))
        if index >= job.n_subjobs:
            raise UsageError(f"job {job.jobid} has no subjob {index} (it has {job.n_subjobs}, counted from 0)")
        return index
    wanted: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise UsageError(f"cannot read subjob {word!r}: give an index or KEY=VALUE",
                             hint=f"E.g. {_example(job)}.")
        wanted[key] = value
    matches = [i for i, s in enumerate(job.subjobs)
               if all(k in s.p and str(s.p[k]) == v for k, v in wanted.items())]
    if len(matches) == 1:
        return matches[0]
    named = " ".join(words)
    if not matches:
        raise UsageError(f"no subjob of job {job.jobid} has {named}", hint=f"E.g. {_example(job)}.")
    indices = ", ".join(str(i) for i in matches[:5]) + (", ..." if len(matches) > 5 else "")
    keys = {k for i in matches for k in job.subjobs[i].p}
    if set(wanted) >= keys:
        # Every key is given: those subjobs have the same parameters (a batch from before repeated
        # values were refused), and only the index tells them apart.
        raise UsageError(f"{named} names {len(matches)} subjobs of job {job.jobid}, with the same parameters",
                         hint=f"Give the index of one instead: {indices}.")
    shown = ", ".join(outcome.subjob_label(job, i) for i in matches[:5])
    raise UsageError(f"{named} matches {len(matches)} subjobs of job {job.jobid} ({shown}"
                     + (", ...)" if len(matches) > 5 else ")"),
                     hint=f"Give more KEY=VALUE words ({', '.join(sorted(keys - set(wanted)))}), "
                          f"or the index of one: {indices}.")


def _example(job: JobSpec) -> str:
    """A subjob name to suggest: the first subjob's ``KEY=VALUE`` words when they can be typed as shown,
    else its index (a value with control characters or bytes that are not UTF-8 is shown escaped,
    and the escaped text names nothing)."""
    words = [f"{k}={v}" for k, v in job.subjobs[0].p.items()] if job.n_subjobs else []
    if not words or not all(w.isprintable() for w in words):
        return "0"
    return " ".join(shlex.quote(w) for w in words)


def _tail_file(path: str, lines: int) -> str:
    """The last ``lines`` lines of a local file, read from the end (logs can be large)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        block = 65536
        data = b""
        while size > 0 and data.count(b"\n") <= lines:
            step = min(block, size)
            size -= step
            handle.seek(size)
            data = handle.read(step) + data
    text = data.decode("utf-8", errors="replace")
    kept = text.splitlines(keepends=True)[-lines:]
    return "".join(kept)


def _split(text: str) -> dict[str, str]:
    parts: dict[str, list[str]] = {s: [] for s in (*STREAMS, "scheduler")}
    current: list[str] | None = None
    for line in text.splitlines(keepends=True):
        if line.startswith(_MARK):
            current = parts.get(line[len(_MARK):].strip())
            continue
        if current is not None:
            current.append(line)
    return {s: "".join(v) for s, v in parts.items()}
