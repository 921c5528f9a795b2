"""``run`` and ``jobs``: what :func:`reproman.api.run` and :func:`reproman.api.jobs` do.

Both return data and raise :class:`reproman.errors.ReproManError` subclasses;
printing, progress bars and exit codes belong to the CLI handlers. The
optional ``progress`` callback (not part of the public API signature) lets
the CLI draw a progress display from each status poll.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from reproman.errors import JobError, ReproManError, UsageError
from reproman.jobs.connection import Connection
from reproman.jobs.fetch import failures, fetch_job, release_remote
from reproman.jobs.follow import ProgressCallback
from reproman.jobs.follow import follow as follow_job
from reproman.jobs.registry import BrokenRecord, Registry
from reproman.jobs.spec import JobSpec
from reproman.jobs.status import JobStatus, poll

lgr = logging.getLogger(__name__)

DEFAULT_SUBMITTER = "local"
DEFAULT_ORCHESTRATOR = "plain"
FOLLOW_ACTIONS = ("stop", "stop-if-success", "delete", "delete-if-success")
JOB_ACTIONS = ("auto", "list", "show", "delete", "fetch", "cancel")


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
        """Failed subjobs with the path of their stderr (empty until followed)."""
        if self.status is None:
            return []
        return failures(self.job, self.status, fetched=bool(self.fetched))

    @property
    def ok(self) -> bool:
        return self.status is None or self.status.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobid": self.job.jobid,
            "job": self.job.to_dict(),
            "status": self.status.to_dict() if self.status else None,
            "failed": self.failed,
            "fetched": list(self.fetched),
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
    resref: Any = None,
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

    Returns the catalogue dict for ``list_``, else a :class:`RunResult`.
    Subjob failures are data (``result.failed``), not exceptions: their
    outputs and logs have been fetched and the caller decides what a
    failure means.
    """
    from reproman.plugins.manager import get_plugin_manager

    if list_ is not None:
        from reproman.jobs.catalogue import catalogue

        return catalogue(list_)
    if not command:
        raise UsageError("no command given", hint="Example: reproman run --follow -o out.txt sh -c 'date > out.txt'")
    follow = _check_follow(follow)
    manager = get_plugin_manager()
    submitter_type = manager.submitter(submitter or DEFAULT_SUBMITTER)
    orchestrator_type = manager.orchestrator(orchestrator or DEFAULT_ORCHESTRATOR)

    from reproman.jobs.batch import batch_records
    from reproman.jobs.options import resolve_job_parameters
    from reproman.jobs.submit import build_job, submit_job

    cwd = os.getcwd()
    parameters = resolve_job_parameters(_as_list(job_specs), job_parameters, submitter_type)
    records = batch_records(batch_spec, batch_parameters, cwd)
    registry = Registry()
    with Connection.open(resref, resref_type) as connection:
        job = build_job(
            connection,
            command=command,
            message=message,
            submitter=submitter_type.name,
            orchestrator=orchestrator_type.name,
            records=records,
            inputs=_as_list(inputs),
            outputs=_as_list(outputs),
            parameters=parameters,
            local_directory=cwd,
            trace=trace,
        )
        submit_job(connection, job, registry)
        result = RunResult(job=job)
        if not follow:
            return result
        result.status = follow_job(connection, job, progress)
        result.fetched = fetch_job(connection, job, result.status, registry, keep_remote=keep_remote)
    if isinstance(follow, str):
        result.resource_action = _act_on_resource(job, follow, result.status.ok)
    return result


def _act_on_resource(job: JobSpec, action: str, ok: bool) -> str:
    """Stop or delete the resource after a followed job, as ``--follow ACTION`` asked."""
    from reproman import api

    verb, _, condition = action.partition("-if-")
    if condition and not ok:
        return f"not {verb}ped: some subjobs failed" if verb == "stop" else f"not {verb}d: some subjobs failed"
    try:
        if verb == "stop":
            api.stop(job.resource_name)
            return "stopped"
        api.delete(job.resource_name, skip_confirmation=True)
        return "deleted"
    except ReproManError as exc:
        # The results are safe locally; a resource that cannot be stopped is a warning.
        lgr.warning("job %s finished, but resource %r was not %s: %s", job.jobid, job.resource_name, verb, exc)
        return f"{verb} failed: {exc}"


def jobs(
    queries: Sequence[str] | str | None = None,
    action: str = "auto",
    all_: bool = False,
    status: bool = False,
    *,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
    keep_remote: bool = False,
) -> list[dict[str, Any]]:
    """List, show, fetch, cancel or delete registered jobs; one dict per job.

    ``auto`` fetches the named jobs (or, with ``all_``, every finished job
    not fetched yet) and otherwise lists. Unreadable registry records appear
    as rows with ``status: malformed`` and an ``error``; they are never
    removed except by an explicit ``delete``.
    """
    queries = _as_list(queries)
    if action not in JOB_ACTIONS:
        raise UsageError(f"unknown action {action!r}; choose one of {', '.join(JOB_ACTIONS)}")
    registry = Registry()
    if action == "auto":
        action = "fetch" if (queries or all_) else "list"
        auto = True
    else:
        auto = False
    if action in ("list", "show"):
        entries = registry.find(queries, all_) if (queries or all_) else registry.entries()
        statuses = _statuses([e for e in entries if isinstance(e, JobSpec)]) if status else {}
        return [_describe(e, statuses.get(e.jobid), full=action == "show") for e in entries]
    if not queries and not all_:
        raise UsageError(f"'{action}' needs job IDs (or substrings) or --all", hint="See 'reproman jobs'.")
    entries = registry.find(queries, all_)
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
        skipped = [j for j in specs if j.status == "fetched"]
        specs = [j for j in specs if j.status != "fetched"]
        rows += [{"jobid": j.jobid, "fetched": False, "reason": "already fetched (use --fetch to fetch again)"}
                 for j in skipped]

    def fetch_one(connection: Connection, job: JobSpec, registry: Registry) -> dict[str, Any]:
        return _fetch(connection, job, registry, overwrite=overwrite, keep_remote=keep_remote)

    return rows + _for_each_resource(specs, fetch_one, registry)


def _group(specs: Sequence[JobSpec]) -> dict[str, list[JobSpec]]:
    groups: dict[str, list[JobSpec]] = {}
    for job in specs:
        groups.setdefault(job.resource_name, []).append(job)
    return groups


def _statuses(specs: Sequence[JobSpec]) -> dict[str, JobStatus | str]:
    """Subjob status per job, one poll per resource (or the error that prevented it)."""
    result: dict[str, JobStatus | str] = {}
    for resource_name, group in _group(specs).items():
        try:
            with Connection.open(resource_name) as connection:
                by_submitter: dict[str, list[JobSpec]] = {}
                for job in group:
                    by_submitter.setdefault(job.submitter, []).append(job)
                for name, jobs_ in by_submitter.items():
                    result.update(poll(connection.session, connection.submitter(name), jobs_))
        except ReproManError as exc:
            for job in group:
                result[job.jobid] = f"cannot query resource {resource_name!r}: {exc}"
    return result


def _for_each_resource(specs: Sequence[JobSpec], act: Any, registry: Registry) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for resource_name, group in _group(specs).items():
        try:
            connection = Connection.open(resource_name)
        except ReproManError as exc:
            rows += [{"jobid": j.jobid, "error": f"cannot reach resource {resource_name!r}: {exc}"} for j in group]
            continue
        with connection:
            for job in group:
                try:
                    rows.append(act(connection, job, registry))
                except ReproManError as exc:
                    rows.append({"jobid": job.jobid, "error": str(exc)})
    return rows


def _fetch(
    connection: Connection, job: JobSpec, registry: Registry, *, overwrite: bool = False, keep_remote: bool = False
) -> dict[str, Any]:
    if job.status == "fetched" and job.extra.get("remote_released"):
        if overwrite and job.extra.get("kept"):
            return _restore_kept(job, registry)
        raise JobError(
            f"job {job.jobid} was fetched to {job.local_directory} and its files on the resource were freed",
            hint="Its results and logs are there; run with --keep-remote to keep a job's files for a later fetch.",
        )
    status = poll(connection.session, connection.submitter(job.submitter), [job])[job.jobid]
    if status.missing and job.status != "fetched":
        raise JobError(f"job {job.jobid}: its directory {job.job_dir} is not on resource {job.resource_name!r}")
    if not status.finished:
        return {"jobid": job.jobid, "fetched": False, "reason": f"not finished ({status.summary()})",
                "status": status.to_dict()}
    paths = fetch_job(connection, job, status, registry, overwrite=overwrite, keep_remote=keep_remote)
    return {"jobid": job.jobid, "fetched": True, "paths": paths, "status": status.to_dict(),
            "failed": failures(job, status, fetched=True), "kept": job.extra.get("kept", [])}


def _delete(
    entries: Sequence[JobSpec | BrokenRecord], specs: Sequence[JobSpec], registry: Registry, keep_remote: bool
) -> list[dict[str, Any]]:
    """Free each job's side on its resource, then forget it; a still-running job is refused, not forgotten.

    A resource that cannot be reached does not stop the deletion (the user
    may be cleaning up after deleting the resource); it is reported as a warning.
    """
    remote = {r["jobid"]: r for r in _for_each_resource(specs, _release(keep_remote), registry)}
    rows: list[dict[str, Any]] = []
    for entry in entries:
        said = remote.get(entry.jobid, {})
        if said.get("refused"):
            rows.append({"jobid": entry.jobid, "deleted": False, "error": said["error"]})
            continue
        registry.delete(entry.jobid)
        row: dict[str, Any] = {"jobid": entry.jobid, "deleted": True}
        if "error" in said:
            row["warning"] = said["error"]
        rows.append(row)
    return rows


def _restore_kept(job: JobSpec, registry: Registry) -> dict[str, Any]:
    """``--overwrite`` after a fetch that kept local edits: put the job's versions (kept locally) in place."""
    from pathlib import Path

    from reproman.resources.landing import Landing, land

    pairs = [(Path(k["fetched"]), Path(k["local"])) for k in job.extra["kept"] if os.path.lexists(k["fetched"])]
    report = land(pairs, Landing(overwrite=True))
    job.extra.pop("kept", None)
    registry.save(job)
    return {"jobid": job.jobid, "fetched": True, "paths": [str(p) for p in report.written],
            "restored": [str(p) for p in report.written], "kept": []}


def _release(keep_remote: bool) -> Any:
    """The per-job step of ``delete``: free the resource's side before the record is forgotten."""

    def release(connection: Connection, job: JobSpec, registry: Registry) -> dict[str, Any]:
        orchestrator = connection.orchestrator(job)
        if job.status != "fetched":
            status = poll(connection.session, connection.submitter(job.submitter), [job])[job.jobid]
            if not status.missing and not status.finished:
                return {"jobid": job.jobid, "refused": True,
                        "error": f"not deleting job {job.jobid}: it is still running ({status.summary()}); "
                                 f"cancel it first with 'reproman jobs --cancel {job.jobid}'"}
            orchestrator.abandon()
        if not keep_remote:
            release_remote(orchestrator)
            connection.session.execute_command(["rm", "-rf", "--", job.job_dir])
        return {"jobid": job.jobid, "released": not keep_remote}

    return release


def _cancel(connection: Connection, job: JobSpec, registry: Registry) -> dict[str, Any]:
    connection.submitter(job.submitter).cancel(job)
    job.status = "cancelled"
    registry.save(job)
    return {"jobid": job.jobid, "cancelled": True}


def _describe(entry: JobSpec | BrokenRecord, status: JobStatus | str | None, full: bool) -> dict[str, Any]:
    if isinstance(entry, BrokenRecord):
        return {"jobid": entry.jobid, "status": "malformed", "error": entry.error, "path": str(entry.path)}
    job = entry
    row: dict[str, Any]
    if full:
        row = job.to_dict()
    else:
        row = {
            "jobid": job.jobid, "resource": job.resource_name, "submitter": job.submitter,
            "orchestrator": job.orchestrator, "status": job.status, "n_subjobs": job.n_subjobs,
            "command": job.command, "created": job.created,
        }
    if isinstance(status, JobStatus):
        row["subjobs_status"] = status.to_dict() if full else status.counts()
        row["summary"] = status.summary()
    elif isinstance(status, str):
        row["summary"] = status
    return row
