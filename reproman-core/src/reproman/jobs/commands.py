"""``run`` and ``jobs``: what :func:`reproman.api.run` and :func:`reproman.api.jobs` do.

Both return data and raise :class:`reproman.errors.ReproManError` subclasses;
printing, progress bars and exit codes belong to the CLI handlers. The
optional ``progress`` callback (not part of the public API signature) lets
the CLI draw a progress display from each status poll.

Every ``jobs`` action that looks at many jobs polls them together: one
connection per resource, one status read and at most one scheduler query
per submitter on it (see :func:`reproman.jobs.status.poll`), never one query
per job. What a poll learns about finished subjobs is saved in the job
records at once, so it outlives the scheduler's memory.
"""

from __future__ import annotations

import logging
import os
import posixpath
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from reproman.errors import JobError, ReproManError, UsageError
from reproman.jobs import outcome
from reproman.jobs.connection import Connection
from reproman.jobs.contracts import State
from reproman.jobs.fetch import failures, fetch_job, release_remote, remove_job_dir, save_record
from reproman.jobs.follow import ProgressCallback
from reproman.jobs.follow import follow as follow_job
from reproman.jobs.interrupted import settle as settle_interrupted
from reproman.jobs.registry import BrokenRecord, Registry
from reproman.jobs.spec import JobSpec
from reproman.jobs.status import JobStatus, collect_usage, poll

if TYPE_CHECKING:
    from reproman.jobs.contracts import Orchestrator
    from reproman.resources.base import Resource

lgr = logging.getLogger(__name__)

DEFAULT_SUBMITTER = "local"
DEFAULT_ORCHESTRATOR = "plain"
FOLLOW_ACTIONS = ("stop", "stop-if-success", "delete", "delete-if-success")
JOB_ACTIONS = ("auto", "list", "show", "delete", "fetch", "cancel", "log", "follow")
#: Accounting queries for a followed job's usage, USAGE_RETRY_DELAY seconds apart,
#: while the accounting has not recorded every subjob yet.
USAGE_ATTEMPTS = 2
USAGE_RETRY_DELAY = 1.0


@attrs.define(kw_only=True)
class RunResult:
    """What ``run`` did: the job record, and with ``follow`` its outcome."""

    job: JobSpec
    status: JobStatus | None = None
    fetched: list[str] = attrs.Factory(list)
    #: ``"stopped"``/``"deleted"`` when ``follow`` acted on the resource, or why it did not.
    resource_action: str | None = None

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Failed subjobs, named by their parameters, with the path of their stderr (empty until followed)."""
        if self.status is None:
            return []
        return failures(self.job, self.status, fetched=bool(self.fetched))

    @property
    def stuck(self) -> bool:
        """Followed, and stopped because the scheduler will never start what is left."""
        return self.status is not None and self.status.stuck

    @property
    def ok(self) -> bool:
        return self.status is None or self.status.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobid": self.job.jobid,
            "job": self.job.to_dict(),
            "status": self.status.to_dict() if self.status else None,
            "outcome": outcome.outcome_text(self.job),
            "failed": self.failed,
            "stuck": self.stuck,
            "fetched": list(self.fetched),
            # Local files left as they were (the job's version is beside them): named once, here, not in 'fetched'.
            "kept": list(self.job.extra.get("kept") or []),
            "resource_action": self.resource_action,
        }


def _as_list(value: Sequence[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _check_follow(follow: bool | str | None) -> bool | str:
    if follow in (None, False, True):
        return bool(follow)
    if isinstance(follow, str) and follow in FOLLOW_ACTIONS:
        return follow
    raise UsageError(f"follow must be True, False or one of {', '.join(FOLLOW_ACTIONS)}; got {follow!r}")


def run(
    command: Sequence[str] | str | None = None,
    message: str | None = None,
    resref: str | Resource | None = None,
    resref_type: str = "auto",
    list_: str | None = None,
    submitter: str | None = None,
    orchestrator: str | None = None,
    batch_spec: str | None = None,
    batch_parameters: Sequence[str] | Mapping[str, Any] | None = None,
    job_specs: Sequence[str] | str | None = None,
    job_parameters: Sequence[str] | Mapping[str, Any] | None = None,
    inputs: Sequence[str] | str | None = None,
    outputs: Sequence[str] | str | None = None,
    follow: bool | str = False,
    *,
    progress: ProgressCallback | None = None,
    keep_remote: bool = False,
    trace: bool = False,
) -> RunResult | dict[str, list[dict[str, Any]]]:
    """Submit ``command`` (N subjobs with a batch); with ``follow`` wait, fetch, act on the resource.

    Anything not given here may come from the job spec files (see
    :mod:`reproman.jobs.options`): a job can be submitted again from what
    ``reproman jobs --show`` printed. Returns the catalogue dict for
    ``list_``, else a :class:`RunResult`. Subjob failures are data
    (``result.failed``), not exceptions: their outputs and logs have been
    fetched and the caller decides what a failure means. A followed job
    whose remaining subjobs can never start is returned unfetched with
    ``result.stuck`` set (it stays queued; cancel it or fix the request).
    """
    from reproman.plugins.manager import get_plugin_manager

    if list_ is not None:
        from reproman.jobs.catalogue import catalogue

        return catalogue(list_)
    from reproman.jobs.options import load_request

    request = load_request(_as_list(job_specs))
    command = command or request.command
    if not command:
        raise UsageError("no command given", hint="Example: reproman run --follow -o out.txt sh -c 'date > out.txt'")
    follow = _check_follow(follow)
    manager = get_plugin_manager()
    submitter_type = manager.submitter(submitter or request.submitter or DEFAULT_SUBMITTER)
    orchestrator_type = manager.orchestrator(orchestrator or request.orchestrator or DEFAULT_ORCHESTRATOR)

    from reproman.jobs.batch import batch_records, command_words
    from reproman.jobs.options import resolve_job_parameters
    from reproman.jobs.submit import build_job, submit_job

    cwd = os.getcwd()
    parameters = resolve_job_parameters(request, job_parameters, submitter_type)
    if batch_spec or batch_parameters or not request.batch:
        records = batch_records(batch_spec if (batch_spec or batch_parameters) else request.batch_spec,
                                batch_parameters if (batch_spec or batch_parameters) else request.batch_parameters,
                                cwd)
    else:
        records = request.batch
    input_patterns = _as_list(inputs) or list(request.inputs or [])
    output_patterns = _as_list(outputs) or list(request.outputs or [])
    if resref is None and request.resource is not None:
        resref, resref_type = request.resource, request.resource_type
    registry = Registry()
    resource = _resource_for(resref, resref_type, follow)
    with Connection.open(resource) as connection:
        # Again, with the defaults configured for this very resource ([submitter-NAME:RESOURCE]).
        parameters = resolve_job_parameters(request, job_parameters, submitter_type, connection.resource.name)
        job = build_job(
            connection,
            command=command,
            message=message if message is not None else request.message,
            submitter=submitter_type.name,
            orchestrator=orchestrator_type.name,
            records=records,
            inputs=input_patterns,
            outputs=output_patterns,
            parameters=parameters,
            local_directory=cwd,
            trace=trace,
        )
        job.input_patterns = input_patterns
        job.output_patterns = output_patterns
        job.command_words = command_words(command)
        job.keep_remote = keep_remote
        stage = "submitting"
        try:
            submit_job(connection, job, registry)
            stage = "submitted"
            result = RunResult(job=job)
            if not follow:
                return result
            result.status = follow_job(connection, job, progress, on_change=registry.save)
            if not result.status.finished:
                return result
            stage = "fetching"
            result.fetched = fetch_job(connection, job, result.status, registry, keep_remote=keep_remote)
            stage = "fetched"
            _usage_after_fetch(connection, job, registry)
        except KeyboardInterrupt as exc:
            # For the caller's message: the job, if one was recorded, and how far it had got.
            exc.reproman_jobid = job.jobid if registry.path(job.jobid).exists() else None  # type: ignore[attr-defined]
            exc.reproman_stage = stage  # type: ignore[attr-defined]
            raise
        except (ReproManError, OSError) as exc:
            if stage == "submitting" and job.submission_id:
                stage = "submitted"  # queued, though its record could not say so (a full disk)
            if stage != "submitting":
                # The job runs on (a follow gave up, a fetch failed): scripts still get its ID on stdout.
                setattr(exc, "reproman_jobid", job.jobid)  # noqa: B010  # for the caller's message
                setattr(exc, "reproman_stage", stage)  # noqa: B010
            raise
    if isinstance(follow, str):
        result.resource_action = act_on_resource(job, follow, result.status.ok)
    return result


def _usage_after_fetch(connection: Connection, job: JobSpec, registry: Registry) -> None:
    """Read what the subjobs used, once, after the fetch: one accounting query off the path to the
    results, and the fetch gave the accounting time to record the last subjobs."""
    changed: set[str] = set()
    for attempt in range(USAGE_ATTEMPTS):
        if job.usage_available is False or not outcome.missing_usage(job):
            break
        if attempt:
            time.sleep(USAGE_RETRY_DELAY)  # the accounting records a task a moment after it ends
        collect_usage(connection.submitter(job.submitter), [job], changed)
    if changed:
        save_record(job, registry)


def _resource_for(resref: str | Resource | None, resref_type: str, follow: bool | str) -> Resource:
    """The resource to run on; a ``--follow stop``/``delete`` it can never take is refused before anything runs."""
    from reproman.resources.commands import lifecycle_refusal
    from reproman.resources.manage import get_resource

    resource = get_resource(resref, resref_type)
    verb = follow.partition("-if-")[0] if isinstance(follow, str) else ""
    refusal = lifecycle_refusal(resource, verb) if verb else None
    if refusal:
        raise UsageError(f"--follow {follow}: {refusal}",
                         hint=f"Use --follow without an action on resource {resource.name!r}.")
    return resource


def act_on_resource(job: JobSpec, action: str, ok: bool) -> str:
    """Stop or delete the resource after a followed job, as ``--follow ACTION`` asked; say what was done."""
    from reproman.resources.commands import delete, stop

    verb, _, condition = action.partition("-if-")
    done = "stopped" if verb == "stop" else "deleted"
    if condition and not ok:
        return f"not {done}: some subjobs failed"
    try:
        if verb == "stop":
            stop(job.resource_name)
            return "stopped"
        delete(job.resource_name, skip_confirmation=True)
        return "deleted"
    except ReproManError as exc:
        # The results are safe locally: not a failure of the run. Said once, by the caller
        # (the CLI's "Resource 'NAME': not stopped: ..." line), not also logged as a warning.
        lgr.debug("job %s finished; resource %r not %s: %s", job.jobid, job.resource_name, done, exc)
        return f"not {done}: {str(exc).rstrip('.')}"


def _check_combination(queries: Sequence[str], action: str, all_: bool, status: bool, *,
                       overwrite: bool = False, keep_remote: bool = False) -> None:
    """Refuse options that contradict each other, before any job is touched.

    ``--all`` with job IDs acted on every job (``jobs --delete --all JOB``
    deleted them all), ``--status``, which promises never to fetch, went
    unheeded by an action that fetches, cancels or deletes, and
    ``--overwrite`` or ``--keep-remote`` with a listing did nothing while
    the user may have meant a fetch (``jobs --overwrite`` without a job).
    """
    if all_ and queries:
        raise UsageError("give job IDs or --all, not both",
                         hint="--all acts on every job; name the jobs alone to act on them only.")
    if status and action not in ("auto", "list", "show"):
        raise UsageError(f"--status goes with listing and --show, not with {action!r}",
                         hint=f"Run 'reproman jobs --status' first, then the {action} on its own.")
    effective = ("list" if status or not (queries or all_) else "fetch") if action == "auto" else action
    fetching = "fetching (JOB, --fetch, --follow)"
    for given, option, actions, words in ((overwrite, "--overwrite", ("fetch", "follow"), fetching),
                                          (keep_remote, "--keep-remote", ("fetch", "follow", "delete"),
                                           f"{fetching} and --delete")):
        if given and effective not in actions:
            unnamed = effective == "list" and not (queries or all_)
            raise UsageError(f"{option} goes with {words}, not with --{effective}",
                             hint="Name the jobs (or --all) to fetch them." if unnamed else f"Drop {option}.")


def jobs(
    queries: Sequence[str] | str | None = None,
    action: str = "auto",
    all_: bool = False,
    status: bool = False,
    *,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
    keep_remote: bool = False,
    lines: int = 20,
) -> list[dict[str, Any]]:
    """List, show, fetch, cancel or delete registered jobs, or read a subjob's log; one dict per job.

    ``auto`` fetches the named jobs (or, with ``all_``, every job not
    fetched yet) and otherwise lists; with ``status`` it never fetches but
    shows each job's per-subjob status as the resource and scheduler see it
    now. ``log`` takes a job and optionally a subjob (``3`` or
    ``KEY=VALUE``) and returns the last ``lines`` lines of its stdout and
    stderr. Unreadable registry records appear as rows with ``status:
    malformed`` and an ``error``; they are never removed except by an
    explicit ``delete``.
    """
    queries = _as_list(queries)
    if action not in JOB_ACTIONS:
        raise UsageError(f"unknown action {action!r}; choose one of {', '.join(JOB_ACTIONS)}")
    _check_combination(queries, action, all_, status, overwrite=overwrite, keep_remote=keep_remote)
    registry = Registry()
    if action == "log":
        from reproman.jobs.logs import subjob_log

        return [subjob_log(registry, queries, lines)]
    if action == "follow":
        return [_follow(registry, queries, all_, progress, overwrite=overwrite, keep_remote=keep_remote)]
    auto = action == "auto"
    if auto:
        action = "list" if status or not (queries or all_) else "fetch"
    if action in ("list", "show"):
        entries = registry.find(queries, all_) if (queries or all_) else registry.entries()
        specs = [e for e in entries if isinstance(e, JobSpec)]
        settle_interrupted(specs, registry)
        gone: dict[str, dict[str, str]] = {}
        statuses = _statuses(specs, registry, gone) if status else {}
        # 'jobs --status JOB': every subjob's state; a plain list keeps the counts.
        full = action == "show" or bool(auto and status and queries)
        described = [_describe(e, statuses.get(e.jobid), full=full, record=action == "show") for e in entries]
        for row in described:
            if gone.get(row["jobid"]):
                row["gone_from_resource"] = gone[row["jobid"]]
        return described
    if not queries and not all_:
        raise UsageError(f"'{action}' needs job IDs (or substrings) or --all", hint="See 'reproman jobs'.")
    entries = registry.find(queries, all_)
    settle_interrupted([e for e in entries if isinstance(e, JobSpec)], registry)
    if action == "delete":
        specs = [e for e in entries if isinstance(e, JobSpec)]
        return _delete(entries, specs, registry, keep_remote)
    rows: list[dict[str, Any]] = [
        {"jobid": e.jobid, "status": "malformed", "error": e.error} for e in entries if isinstance(e, BrokenRecord)
    ]
    specs = [e for e in entries if isinstance(e, JobSpec)]
    if action == "cancel":
        return rows + _for_each_resource(specs, _cancel, registry)
    if auto and all_:
        skipped = [j for j in specs if j.was_fetched]
        refused = [j for j in specs if _refusal_reported(j)]
        specs = [j for j in specs if not j.was_fetched and not _refusal_reported(j)]
        rows += [{"jobid": j.jobid, "fetched": False, "skipped": True,
                  "reason": "already fetched (use --fetch to fetch again)"} for j in skipped]
        rows += [{"jobid": j.jobid, "fetched": False, "skipped": True, "submission_failed": True,
                  "reason": "its submission failed (reported already)"} for j in refused]
    failed_submissions = [j for j in specs if j.status == outcome.SUBMISSION_FAILED]
    if action == "fetch" and failed_submissions:
        # Nothing ran and nothing is queued: say so without asking the resource.
        rows += [_report_refusal(j, registry) for j in failed_submissions]
        specs = [j for j in specs if j.status != outcome.SUBMISSION_FAILED]

    def fetch_one(connection: Connection, job: JobSpec, registry: Registry, status: JobStatus) -> dict[str, Any]:
        return _fetch(connection, job, registry, status, overwrite=overwrite, keep_remote=keep_remote,
                      again=not auto and not all_)

    return rows + _for_each_resource(specs, fetch_one, registry)


def _follow(registry: Registry, queries: Sequence[str], all_: bool, progress: ProgressCallback | None, *,
            overwrite: bool, keep_remote: bool) -> dict[str, Any]:
    """``jobs --follow JOB``: wait for a job already submitted, then fetch it, as ``run --follow`` does.

    How to pick up a job again after Ctrl-C detached ``run --follow``
    (or one submitted without it); the row is a fetch's row, plus
    ``stuck`` when what is left can never start.
    """
    entries = registry.find(list(queries), False) if queries and not all_ else []
    specs = [e for e in entries if isinstance(e, JobSpec)]
    if len(specs) != 1 or len(entries) != 1:
        raise UsageError("--follow takes exactly one job", hint="Example: reproman jobs --follow JOB")
    job = specs[0]
    settle_interrupted([job], registry)
    if job.status == outcome.SUBMISSION_FAILED:
        return _report_refusal(job, registry)  # nothing was queued (or nothing can be known): nothing to wait for
    from reproman.jobs.follow import open_connection

    stage = "submitted"
    try:
        with open_connection(job) as connection:
            if job.was_fetched and job.extra.get("remote_released"):
                recorded = JobStatus(jobid=job.jobid, subjobs=tuple(outcome.statuses_from_record(job)))
                stage = "fetching"
                return _fetch(connection, job, registry, recorded, overwrite=overwrite, keep_remote=keep_remote)
            status = follow_job(connection, job, progress, on_change=registry.save)
            if not status.finished:
                return {"jobid": job.jobid, "fetched": False, "finished": False, "stuck": status.stuck,
                        "reason": f"it cannot start as submitted ({status.summary()})", "status": status.to_dict()}
            stage = "fetching"
            row = _fetch(connection, job, registry, status, overwrite=overwrite, keep_remote=keep_remote)
            stage = "fetched"
            _usage_after_fetch(connection, job, registry)
    except (KeyboardInterrupt, ReproManError, OSError) as exc:
        # For the caller's message: which job, and how far it had got (a full disk stops the follow, not the job).
        setattr(exc, "reproman_jobid", job.jobid)  # noqa: B010
        setattr(exc, "reproman_stage", None if stage == "submitted" else stage)  # noqa: B010
        raise
    return row


def _group(specs: Sequence[JobSpec]) -> dict[str, list[JobSpec]]:
    groups: dict[str, list[JobSpec]] = {}
    for job in specs:
        groups.setdefault(job.resource_name, []).append(job)
    return groups


def _poll_group(connection: Connection, group: Sequence[JobSpec], registry: Registry) -> dict[str, JobStatus]:
    """One poll per submitter on this resource for all of ``group``; changed records saved."""
    by_submitter: dict[str, list[JobSpec]] = {}
    for job in group:
        by_submitter.setdefault(job.submitter, []).append(job)
    result: dict[str, JobStatus] = {}
    for name, jobs_ in by_submitter.items():
        changed: set[str] = set()
        result.update(poll(connection.session, connection.submitter(name), jobs_, changed=changed))
        for job in jobs_:
            if job.jobid in changed:
                registry.save(job)
    return result


def _statuses(specs: Sequence[JobSpec], registry: Registry,
              gone: dict[str, dict[str, str]] | None = None) -> dict[str, JobStatus | str]:
    """Subjob status per job, one poll per resource and submitter (or the error that prevented it).

    Resources are asked concurrently (a bounded number at a time, see
    :mod:`reproman.resources.parallel`): four clusters take the time of one.
    A job fetched and freed is not asked about: its record holds its final
    outcome (see :func:`_final_from_record`); one fetched with its files
    kept is asked (are they still there?), but shows its recorded outcome
    when its resource cannot be queried.
    ``gone`` receives, per finished job whose files should still be on its
    resource, which of its directories were found gone (see :func:`_gone_dirs`).
    """
    from reproman.resources.parallel import map_bounded

    def ask(item: tuple[str, list[JobSpec]]) -> tuple[dict[str, JobStatus], dict[str, dict[str, str]]]:
        with Connection.open(item[0]) as connection:
            polled = _poll_group(connection, item[1], registry)
            return polled, _gone_dirs(connection, item[1], polled)

    result: dict[str, JobStatus | str] = {}
    for job in specs:
        final = _final_from_record(job) if job.extra.get("remote_released") else None
        if final is not None:
            result[job.jobid] = final
    groups = list(_group([j for j in specs if j.jobid not in result]).items())
    for (resource_name, group), answer in zip(groups, map_bounded(ask, groups)):
        if isinstance(answer, ReproManError):
            recorded = {job.jobid: final for job in group if (final := _final_from_record(job)) is not None}
            if recorded:
                # Fetched with their files kept: the outcome is known; only whether the files remain is not.
                lgr.warning("cannot query resource %r (%s): %d fetched job(s) on it show their recorded outcome; "
                            "whether their files are still there is not known", resource_name, answer, len(recorded))
            result.update({job.jobid: recorded.get(job.jobid) or f"cannot query resource {resource_name!r}: {answer}"
                           for job in group})
        else:
            result.update(answer[0])
            if gone is not None:
                gone.update(answer[1])
    return result


def _final_from_record(job: JobSpec) -> JobStatus | None:
    """The recorded outcome of a fetched job, every subjob's in the record; else None.

    A fetched job's outcome, recorded the first time each subjob was seen,
    never changes: an unreachable host must not turn it into "cannot
    query" (trial Q, 4), and one whose files were freed has nothing left
    there to ask about. A record that lacks some subjob's outcome (written
    by an older ReproMan) is asked about as before.
    """
    if not job.was_fetched:
        return None
    subjobs = tuple(outcome.statuses_from_record(job))
    if any(sub.state is State.UNKNOWN for sub in subjobs):
        return None
    labels = tuple(outcome.subjob_label(job, i) for i in range(job.n_subjobs))
    return JobStatus(jobid=job.jobid, subjobs=subjobs, labels=labels)


def _gone_dirs(connection: Connection, group: Sequence[JobSpec], statuses: Mapping[str, JobStatus]
               ) -> dict[str, dict[str, str]]:
    """``{"working directory": path, "job directory": path}`` (those found gone) per finished job not freed.

    Their recorded outcome stays true, but the user must learn that the
    files are no longer on the resource (trial N, 7). One command for the
    whole group; only finished jobs are asked about (a running job's
    directory vanishing is said by its subjobs' ``unknown`` state).
    """
    from reproman.jobs.presence import absent

    asked = [j for j in group if j.jobid in statuses and statuses[j.jobid].finished
             and not j.extra.get("remote_released")]
    if not asked:
        return {}
    workdirs = sorted({j.working_directory for j in asked if j.working_directory})
    try:
        missing = absent(connection.session, workdirs)
    except ReproManError as exc:
        lgr.warning("could not check whether %d job(s)' working directories are still on resource %s: %s",
                    len(asked), asked[0].resource_name, exc)
        missing = set()
    found: dict[str, dict[str, str]] = {}
    for job in asked:
        dirs = {"working directory": job.working_directory} if job.working_directory in missing else {}
        if statuses[job.jobid].missing:
            dirs["job directory"] = job.job_dir
        if dirs:
            found[job.jobid] = dirs
    return found


GroupAction = Callable[[Connection, JobSpec, Registry, JobStatus], dict[str, Any]]


def _for_each_resource(specs: Sequence[JobSpec], act: GroupAction, registry: Registry,
                       *, needs_status: bool = True) -> list[dict[str, Any]]:
    """Open each resource once, poll its jobs together (unless not ``needs_status``), then ``act`` on each.

    Opening and polling run concurrently across resources (bounded); the
    acts (fetching files, cancelling) run one resource after the other, so
    fetched files land in a predictable order and messages do not interleave.
    """
    from reproman.resources.parallel import map_bounded

    def open_and_poll(item: tuple[str, list[JobSpec]]) -> tuple[Connection, dict[str, JobStatus]]:
        try:
            connection = Connection.open(item[0])
        except ReproManError as exc:
            raise _Unreachable(str(exc)) from None
        try:
            return connection, _poll_group(connection, item[1], registry) if needs_status else {}
        except BaseException:
            connection.close()
            raise

    groups = list(_group(specs).items())
    rows: list[dict[str, Any]] = []
    for (resource_name, group), answer in zip(groups, map_bounded(open_and_poll, groups)):
        if isinstance(answer, _Unreachable):
            rows += [{"jobid": j.jobid, "error": f"cannot reach resource {resource_name!r}: {answer}"} for j in group]
            continue
        if isinstance(answer, ReproManError):
            rows += [{"jobid": j.jobid, "error": str(answer)} for j in group]
            continue
        connection, statuses = answer
        with connection:
            for job in group:
                try:
                    rows.append(act(connection, job, registry, statuses.get(job.jobid)))  # type: ignore[arg-type]
                except ReproManError as exc:
                    rows.append({"jobid": job.jobid, "error": str(exc)})
                except Exception as exc:  # a bug met on one job must not strand the other jobs (trial K)
                    rows.append({"jobid": job.jobid, "error": _unexpected(exc)})
    return rows


def _unexpected(exc: Exception) -> str:
    """One line for a failure no code foresaw; the traceback goes to the debug log."""
    lgr.debug("unexpected failure", exc_info=exc)
    said = (str(exc).strip().splitlines() or [""])[0]
    return (f"failed unexpectedly ({type(exc).__name__}{': ' + said if said else ''}); this is a bug in ReproMan "
            "or a plugin: run again with '-l debug' to see where, and report it")


def _refusal_reported(job: JobSpec) -> bool:
    return job.status == outcome.SUBMISSION_FAILED and bool(job.extra.get("reported"))


def _report_refusal(job: JobSpec, registry: Registry) -> dict[str, Any]:
    """A job the scheduler refused: final, nothing to fetch; ``--all`` reports it once, then skips it."""
    if not job.extra.get("reported"):
        job.extra["reported"] = outcome.now_iso()
        registry.save(job)
    error = str(job.extra.get("error") or "the scheduler refused it")
    # An interrupted submission says itself what is known (it may have been queued).
    said = error if job.extra.get("interrupted") else f"its submission failed, nothing ran: {error}"
    return {"jobid": job.jobid, "fetched": False, "finished": True, "submission_failed": True,
            "outcome": outcome.SUBMISSION_FAILED,
            "error": f"{said} (delete it with 'reproman jobs --delete {job.jobid}' and submit it again)"}


class _Unreachable(ReproManError):
    """A resource that could not be opened (as opposed to one whose poll failed)."""


def _fetch(
    connection: Connection,
    job: JobSpec,
    registry: Registry,
    status: JobStatus,
    *,
    overwrite: bool = False,
    keep_remote: bool = False,
    again: bool = False,
) -> dict[str, Any]:
    """Fetch one finished job; ``again``: the user asked for ``--fetch``, so a job that cannot be is an error."""
    if job.was_fetched and job.extra.get("remote_released"):
        if overwrite and any(not k.get("subjob") for k in job.extra.get("kept") or ()):
            return _restore_kept(job, registry)
        recorded = JobStatus(jobid=job.jobid, subjobs=tuple(outcome.statuses_from_record(job)))
        if again:
            # 'jobs --fetch' asks for the files again; saying "fetched already" with exit 0 would let a
            # script believe a result it removed was restored (trial O, 9).
            taker = job.extra.get("working_directory_taken_by")
            gone = (f"its working directory on the resource was taken over by job {taker}" if taker
                    else "its files on the resource were freed")
            return {"jobid": job.jobid, "already": True, "finished": True, "outcome": outcome.outcome_text(job),
                    "error": f"cannot fetch job {job.jobid} again: {gone} after it "
                             f"was fetched to {job.local_directory}; what is missing there now stays missing "
                             f"('reproman rerun {job.jobid}' makes the results again; fetch with --keep-remote "
                             "to keep them for a later fetch)"}
        return {"jobid": job.jobid, "fetched": False, "already": True, "finished": True,
                "outcome": outcome.outcome_text(job), "failed": failures(job, recorded, fetched=True),
                "reason": f"it was fetched to {job.local_directory} already, and its files on the resource were "
                          "freed after that (run with --keep-remote to keep them for a later fetch)"}
    if status.missing and not job.was_fetched:
        from reproman.jobs.status import gone_message

        message, hint = gone_message(job, status)
        if not job.submission_id:
            hint = (f"'reproman run' may have been killed before it submitted, so nothing ran: remove the record "
                    f"with 'reproman jobs --delete {job.jobid}'.")
        raise JobError(message, hint=hint)  # the caller names the job
    if not status.finished:
        why = "it cannot start as submitted" if status.stuck else "not finished"
        return {"jobid": job.jobid, "fetched": False, "finished": False, "stuck": status.stuck,
                "reason": f"{why} ({status.summary()})", "status": status.to_dict()}
    paths = fetch_job(connection, job, status, registry, overwrite=overwrite, keep_remote=keep_remote)
    return {"jobid": job.jobid, "fetched": True, "finished": True, "paths": paths, "status": status.to_dict(),
            "outcome": outcome.outcome_text(job), "failed": failures(job, status, fetched=True),
            "kept": job.extra.get("kept", []), "rerun_of": (job.rerun_of or {}).get("jobid"),
            "local_directory": job.local_directory}


def _delete(
    entries: Sequence[JobSpec | BrokenRecord], specs: Sequence[JobSpec], registry: Registry, keep_remote: bool
) -> list[dict[str, Any]]:
    """Free each job's side on its resource, then forget it; a still-running job is refused, not forgotten.

    A resource that cannot be reached does not stop the deletion (the user
    may be cleaning up after deleting the resource); it is reported as a warning.
    """
    import contextlib

    with contextlib.ExitStack() as held:
        # In one order, so two deletes never wait on each other; a fetch holds one job at a time.
        for jobid in sorted({e.jobid for e in entries}):
            held.enter_context(registry.hold(jobid))
        return _delete_held(entries, specs, registry, keep_remote)


def _delete_held(
    entries: Sequence[JobSpec | BrokenRecord], specs: Sequence[JobSpec], registry: Registry, keep_remote: bool
) -> list[dict[str, Any]]:
    """``_delete`` once no other ReproMan process is fetching or deleting these jobs: from their records as now."""
    gone = {e.jobid for e in entries if not registry.path(e.jobid).exists()}
    fresh: list[JobSpec] = []
    for spec in specs:
        if spec.jobid in gone:
            continue
        try:
            fresh.append(registry.load(spec.jobid))  # a fetch that finished meanwhile freed the resource
        except ReproManError:
            fresh.append(spec)
    remote = {r["jobid"]: r for r in _for_each_resource(fresh, _release(keep_remote), registry)}
    rows: list[dict[str, Any]] = []
    for entry in entries:
        if entry.jobid in gone:
            rows.append({"jobid": entry.jobid, "deleted": True, "warning": "deleted by another ReproMan process"})
            continue
        said = remote.get(entry.jobid, {})
        if said.get("refused"):
            rows.append({"jobid": entry.jobid, "deleted": False, "error": said["error"]})
            continue
        registry.delete(entry.jobid)
        row: dict[str, Any] = {"jobid": entry.jobid, "deleted": True}
        if said.get("kept_results"):
            row["kept_results"] = said["kept_results"]
            row["resource"] = said.get("resource")
        if said.get("freed"):
            row.update({k: said[k] for k in ("freed", "resource", "remote_files", "left", "why") if k in said})
        if "error" in said:
            row["warning"] = said["error"]
        job = next((s for s in fresh if s.jobid == entry.jobid), None)
        if job is not None:
            _forget_local(job, row)
        rows.append(row)
    return rows


def _forget_local(job: JobSpec, row: dict[str, Any]) -> None:
    """Let the job's orchestrator drop what the job left locally; what it keeps goes in ``row["kept_local"]``."""
    from reproman.plugins.manager import get_plugin_manager

    try:
        kept = get_plugin_manager().orchestrator(job.orchestrator).load().forget_local(job)
    except ReproManError as exc:
        if str(exc) not in str(row.get("warning", "")):  # an unknown orchestrator: maybe said by the release
            row["warning"] = "; ".join(filter(None, [row.get("warning"), str(exc)]))
        return
    if kept:
        row["kept_local"] = list(kept)


def _restore_kept(job: JobSpec, registry: Registry) -> dict[str, Any]:
    """``--overwrite`` after a fetch that kept local edits: put the job's versions (kept locally) in place.

    Files kept because a subjob that did not succeed owes them (``subjob``) stay kept: ``--overwrite``
    is about your edits, and never puts a failure's output in place of a result.
    """
    from pathlib import Path

    from reproman.jobs.layout import local_record_dir
    from reproman.resources.landing import Landing, land

    edited = [k for k in job.extra["kept"] if not k.get("subjob")]
    pairs = [(Path(k["fetched"]), Path(k["local"])) for k in edited if os.path.lexists(k["fetched"])]
    # Confined like any fetch: a git-annex file is a link into .git/annex/objects, and writing through it
    # would replace the content an earlier commit recorded.
    record = Path(local_record_dir(job.local_directory, job.resource_name, job.jobid))
    report = land(pairs, Landing(overwrite=True, keep_root=Path(os.path.abspath(job.local_directory)),
                                 exempt=(record,)))
    guarded = [k for k in job.extra["kept"] if k.get("subjob")]
    job.extra.pop("kept", None)
    if guarded:
        job.extra["kept"] = guarded
    registry.save(job)
    return {"jobid": job.jobid, "fetched": True, "paths": [str(p) for p in report.written],
            "restored": [str(p) for p in report.written], "kept": guarded}


def _release(keep_remote: bool) -> GroupAction:
    """The per-job step of ``delete``: free the resource's side before the record is forgotten."""

    def release(connection: Connection, job: JobSpec, registry: Registry, status: JobStatus) -> dict[str, Any]:
        orchestrator = connection.orchestrator(job)
        if not job.was_fetched:
            if not status.missing and not status.finished:
                # A cancelled job still running is one whose processes have not ended yet (see local.py).
                then = ("it was cancelled, but its processes have not all ended yet; delete it once "
                        f"'reproman jobs --status {job.jobid}' reads it cancelled" if job.cancelled
                        else f"cancel it first with 'reproman jobs --cancel {job.jobid}'")
                return {"jobid": job.jobid, "refused": True,
                        "error": f"not deleting job {job.jobid}: it is still running ({status.summary()}); {then}"}
            orchestrator.abandon()
            if ((status.finished or status.missing) and not keep_remote and not orchestrator.records_job
                    and not job.cancelled and job.status != outcome.SUBMISSION_FAILED):
                # Its results were never fetched: what it wrote on the resource may be their only copy
                # (a job the user cancelled, or one that never ran, is let go whole). A job whose directory
                # vanished is no different: its working directory holds what the command wrote (trial L).
                return {"jobid": job.jobid, "released": False, "kept_results": job.working_directory,
                        "resource": job.resource_name}
        if not keep_remote:
            if not job.extra.get("remote_released"):
                return _free(connection, orchestrator, job)
            release_remote(orchestrator)  # freed by its fetch: only leftovers, nothing to tell
            remove_job_dir(connection, job)
        return {"jobid": job.jobid, "released": not keep_remote}

    return release


def _free(connection: Connection, orchestrator: Orchestrator, job: JobSpec) -> dict[str, Any]:
    """Remove the job's files on the resource, and say truly what happened to them.

    ``remote_files`` is ``removed``, ``already gone`` (the user removed
    them) or ``not removed`` (with ``left`` and ``why``); ``freed`` names them.
    """
    from reproman.jobs.presence import Removal, absent, remove

    paths = [p for p in (*orchestrator.staged_paths(), job.job_dir) if p and posixpath.isabs(p) and p.strip("/")]
    row: dict[str, Any] = {"jobid": job.jobid, "released": True, "resource": job.resource_name,
                           "freed": paths[0] if paths else job.working_directory}
    try:
        there = set(paths) - absent(connection.session, paths)
    except Exception as exc:  # best effort, as the removal itself: the answer below still says what is left
        lgr.debug("job %s: could not see what is on the resource: %s", job.jobid, exc)
        there = set(paths)
    release_remote(orchestrator)
    try:
        removal = remove(connection.session, paths)
    except Exception as exc:  # a resource that stopped answering: the files stay, and the user is told
        removal = Removal(left=tuple(p for p in paths if p in there), why=str(exc))
    if removal.left:
        row.update(remote_files="not removed", left=list(removal.left), why=removal.why)
    else:
        row["remote_files"] = "removed" if there else "already gone"
    return row


def _cancel(connection: Connection, job: JobSpec, registry: Registry, status: JobStatus) -> dict[str, Any]:
    """Cancel, after the poll that recorded what had finished before: those keep their own outcome."""
    if status.finished:
        return {"jobid": job.jobid, "cancelled": False, "reason": f"already finished ({status.summary()})"}
    stopping = [s.index for s in status.subjobs if not s.state.finished]
    connection.submitter(job.submitter).cancel(job)
    # Into the record as it is now: a concurrent follower's saves stay, and ours wins over its
    # "cancelled outside ReproMan" for the subjobs this cancel stopped.
    registry.record_cancel(job, outcome.now_iso(), stopping)
    return {"jobid": job.jobid, "cancelled": True}


def _describe(entry: JobSpec | BrokenRecord, status: JobStatus | str | None, full: bool,
              record: bool = False) -> dict[str, Any]:
    if isinstance(entry, BrokenRecord):
        return {"jobid": entry.jobid, "status": "malformed", "error": entry.error, "path": str(entry.path)}
    job = entry
    row: dict[str, Any]
    if record:
        row = job.to_dict()
    else:
        row = {
            "jobid": job.jobid, "resource": job.resource_name, "submitter": job.submitter,
            "orchestrator": job.orchestrator, "status": job.status, "n_subjobs": job.n_subjobs,
            "command": job.command, "created": job.created,
        }
    row["outcome"] = outcome.outcome_text(job)
    if not record:  # a record says when, in its own 'fetched'
        row["fetched"] = job.was_fetched
    if record:
        row["failed"] = outcome.failure_rows(job, outcome.statuses_from_record(job))
        row["usage"] = outcome.usage_rows(job)
    if isinstance(status, JobStatus):
        row["subjobs_status"] = status.to_dict() if full else status.counts()
        row["summary"] = status.summary()
        row["stuck"] = status.stuck
        if full:
            row["failed"] = outcome.failure_rows(job, status.subjobs)
    elif isinstance(status, str):
        row["summary"] = status
        row["error"] = status
    return row
