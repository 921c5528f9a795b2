"""One job at a time in a working directory the user named (``--jp working_directory=DIR``).

Why: two jobs running in one directory write each other's outputs, and the
first job's fetch then records the second job's content as its own (trial O,
finding 4). The default working directory is fresh per job and needs no
hold; the DataLad orchestrators hold their shared clone themselves
(``.git/reproman/active``).

The truth lives on the resource, where another machine or user submitting
into the same directory sees it: a file :data:`HOLDER` in the directory,
naming the holding job and its job directory. It is created exclusively (a
hard link, which fails if the name exists) by the same remote command that
creates the working directory, before any input is staged, and removed
when the job's files are freed or the job is deleted (:func:`release`).

A hold is stale, and taken over with a log line, when the holding job's
job directory is gone from the resource (the job was deleted or fetched and
freed), or when this machine's registry says that job was fetched whole or
never ran.
"""

from __future__ import annotations

import logging
import posixpath
import shlex
from typing import TYPE_CHECKING

from reproman.errors import OrchestratorError
from reproman.resources.landing import WORKDIR_HOLD_NAME

if TYPE_CHECKING:
    from reproman.jobs.registry import Registry
    from reproman.jobs.spec import JobSpec
    from reproman.resources.session import Session

lgr = logging.getLogger(__name__)

#: The hold, relative to the working directory. Inside ``.reproman``, which a fetch never writes
#: locally and checksums leave out, so ``-o .`` neither brings it back nor records it.
HOLDER = f".reproman/{WORKDIR_HOLD_NAME}"


class WorkingDirectoryInUseError(OrchestratorError):
    """Another unfinished or unfetched job holds the working directory the user named."""


def _holder_path(job: JobSpec) -> str:
    return posixpath.join(job.working_directory, HOLDER)


def _record(job: JobSpec) -> str:
    """What the hold says: the job, its job directory (which tells whether it still exists), its resource."""
    return "".join(f"{line}\n" for line in (job.jobid, job.job_dir, job.resource_name))


def claim_script(job: JobSpec) -> str:
    """Shell text that creates the working directory and claims it for ``job``, in one remote command.

    Its output: nothing when the hold was free, ``TAKEN <jobid>`` when it
    took over a hold whose job directory is gone, ``HELD <jobid>`` (and no
    claim) when another job holds it. The claiming job's directory is
    created in the same command, before the hold, so a submission racing
    this one never reads the fresh hold as stale.
    """
    q = shlex.quote
    holder = _holder_path(job)
    # The job directory exists before the hold naming it does: a racing submission that reads the hold
    # between the two would otherwise find no job directory and take the hold over as stale (trial R, 2).
    return (
        f"set -e\nm={q(holder)}; t={q(holder)}.$$\n"
        f"mkdir -p {q(posixpath.dirname(holder))} {q(posixpath.dirname(job.job_dir))}\n"
        f"made=; mkdir -m 700 {q(job.job_dir)} 2>/dev/null && made=1 || [ -d {q(job.job_dir)} ]\n"
        f"printf %s {q(_record(job))} > \"$t\"\n"
        'if ln "$t" "$m" 2>/dev/null; then rm -f "$t"\n'
        "else\n"
        '  h=$(sed -n 1p "$m" 2>/dev/null || :); d=$(sed -n 2p "$m" 2>/dev/null || :)\n'
        f'  if [ "$h" = {q(job.jobid)} ]; then rm -f "$t"\n'
        '  elif [ -n "$d" ] && [ -d "$d" ]; then rm -f "$t"\n'
        f'    if [ -n "$made" ]; then rmdir {q(job.job_dir)} 2>/dev/null || :; fi\n'
        '    printf \'HELD %s\\n\' "$h"; exit 0\n'
        '  else mv -f "$t" "$m"; printf \'TAKEN %s\\n\' "$h"; fi\n'
        "fi\n"
    )


def take_over_script(job: JobSpec, stale: str) -> str:
    """Shell text that replaces the hold of ``stale`` by ``job``'s, only if ``stale`` still holds it."""
    q = shlex.quote
    return (
        f"set -e\nm={q(_holder_path(job))}; t=\"$m.$$\"\n"
        f"[ \"$(sed -n 1p \"$m\" 2>/dev/null || :)\" = {q(stale)} ] || {{ echo LOST; exit 0; }}\n"
        f"printf %s {q(_record(job))} > \"$t\"; mv -f \"$t\" \"$m\"\n"
        f"mkdir -p {q(posixpath.dirname(job.job_dir))}\n"
        f"mkdir -m 700 {q(job.job_dir)} 2>/dev/null || [ -d {q(job.job_dir)} ]\n"
    )


def release_script(job: JobSpec) -> str:
    """Shell text that removes ``job``'s hold, and only its own (a later job may have taken it over)."""
    q = shlex.quote
    holder = _holder_path(job)
    return (
        f"m={q(holder)}\n"
        f"if [ \"$(sed -n 1p \"$m\" 2>/dev/null)\" = {q(job.jobid)} ]; then rm -f \"$m\"; "
        f"rmdir {q(posixpath.dirname(holder))} 2>/dev/null; fi; exit 0\n"
    )


def _run(session: Session, script: str, what: str, job: JobSpec) -> str:
    result = session.execute_command("exec /bin/sh -s", stdin=script.encode("utf-8", "surrogateescape"))
    if result.returncode != 0:
        raise OrchestratorError(
            f"cannot {what} working directory {job.working_directory} on resource {job.resource_name!r}: "
            f"{(result.stderr or '').strip() or f'exit {result.returncode}'}",
            hint="Check that the directory can be created and written there, or give another working_directory.",
        )
    return str(result.stdout)


def claim(session: Session, job: JobSpec, registry: Registry | None = None) -> None:
    """Create ``job``'s working directory on the resource and hold it, or refuse in one line.

    One remote command when the directory is free (the usual case); a
    second one only to take over a hold this machine's registry shows to be
    stale.
    """
    answer = _run(session, claim_script(job), "create", job).split()
    if answer[:1] == ["TAKEN"] and len(answer) > 1:
        lgr.warning("working directory %s was held by job %s, whose job directory is gone from resource %r; "
                    "job %s takes it over", job.working_directory, answer[1], job.resource_name, job.jobid)
        return
    if answer[:1] != ["HELD"] or len(answer) < 2:
        return
    other = answer[1]
    from reproman.jobs.registry import Registry

    registry = registry or Registry()
    holder = _known(registry, other)
    if holder is not None and _done_with(holder):
        if _run(session, take_over_script(job, other), "hold", job).strip() != "LOST":
            lgr.warning("working directory %s was held by job %s, which %s; job %s takes it over",
                        job.working_directory, other, "was fetched" if holder.was_fetched else "never ran",
                        job.jobid)
            _hand_over(registry, holder, job)
            return
    raise _in_use(job, other, holder)


def _hand_over(registry: Registry, holder: JobSpec, job: JobSpec) -> None:
    """The holder's files there are now ``job``'s to overwrite: its record must never fetch them as its own.

    A holder fetched with ``--keep-remote`` could otherwise be fetched again
    later and bring back the new job's files under its name (trial P, 1).
    """
    if holder.extra.get("remote_released"):
        return
    try:
        with registry.hold(holder.jobid):
            current = registry.load(holder.jobid)
            current.extra["remote_released"] = True
            current.extra["working_directory_taken_by"] = job.jobid
            registry.save(current)
    except Exception as exc:  # never in the way of the new job; the refusal to re-fetch is then missing
        lgr.warning("job %s: could not record that job %s took over its working directory: %s",
                    holder.jobid, job.jobid, exc)


def _known(registry: Registry, jobid: str) -> JobSpec | None:
    """The holder's record on this machine, if this machine submitted it (and it reads)."""
    from reproman.jobs.spec import JobSpec

    if not registry.path(jobid).exists():
        return None
    try:
        entry = registry.load(jobid)
    except Exception:  # a malformed record is shown by 'reproman jobs'; here it is just not known
        return None
    return entry if isinstance(entry, JobSpec) else None


def _done_with(holder: JobSpec) -> bool:
    """The holder needs its working directory no more: fetched with nothing left behind on purpose, or never ran."""
    from reproman.jobs import outcome

    if holder.status == outcome.SUBMISSION_FAILED:
        return True
    if not holder.was_fetched:
        return False
    mismatched = (holder.extra.get("verified") or {}).get("mismatched")
    # Outputs missing or fetched altered: the files there may be the only good copy.
    return not mismatched and not holder.extra.get(outcome.MISSING_OUTPUTS)


def _in_use(job: JobSpec, other: str, holder: JobSpec | None) -> WorkingDirectoryInUseError:
    wd = job.working_directory
    if holder is None:
        return WorkingDirectoryInUseError(
            f"working directory {wd} is in use by job {other}, which was not submitted from here (or was deleted "
            f"here with its files kept)",
            hint=f"Wait until that job is fetched, or give another working_directory; if job {other} is gone, "
                 f"remove {posixpath.join(wd, HOLDER)} on resource {job.resource_name!r}.",
        )
    state = "not fetched yet" if holder.was_fetched is False else "fetched, but its files stay on the resource"
    return WorkingDirectoryInUseError(
        f"working directory {wd} is in use by job {other} ({state}); two jobs there would overwrite each "
        f"other's outputs",
        hint=f"Wait for it and fetch it ('reproman jobs {other}'), or free it with 'reproman jobs --delete {other}'"
             f", or give another working_directory.",
    )


def release(session: Session, job: JobSpec) -> None:
    """Remove ``job``'s hold on its working directory; best effort (the resource may be gone)."""
    try:
        result = session.execute_command("exec /bin/sh -s",
                                         stdin=release_script(job).encode("utf-8", "surrogateescape"))
    except Exception as exc:
        lgr.warning("job %s: could not release its hold on %s: %s", job.jobid, job.working_directory, exc)
        return
    if result.returncode != 0:
        lgr.warning("job %s: could not release its hold on %s: %s", job.jobid, job.working_directory,
                    (result.stderr or "").strip() or f"exit {result.returncode}")
