"""Bring a finished job's results back and record that it happened.

The orchestrator moves the files; this module keeps the bookkeeping in one
place: the job record kept with the results is rewritten with what is known
now (submission id, each subjob's outcome), and the registry entry is marked
``fetched`` (with the time) but kept, so the job can still be shown, fetched
again or deleted, and still says how it ended.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from reproman.errors import JobError, OutputConflictError
from reproman.jobs import failure_files, layout, outcome, space
from reproman.jobs.connection import Connection
from reproman.jobs.contracts import Orchestrator, SubjobStatus
from reproman.jobs.failure_files import LeftByFailures
from reproman.jobs.provenance import fetch_outputs
from reproman.jobs.registry import Registry, dump_record
from reproman.jobs.spec import JobSpec
from reproman.jobs.status import JobStatus, local_log_dir, stderr_path
from reproman.resources.landing import KeptFile, LandingReport

lgr = logging.getLogger(__name__)


def fetch_job(
    connection: Connection,
    job: JobSpec,
    status: JobStatus,
    registry: Registry | None = None,
    *,
    overwrite: bool = False,
    keep_remote: bool = False,
) -> list[str]:
    """Fetch outputs and logs of ``job``; return the local paths written (not those kept).

    Outputs land under the orchestrator's landing rules (merge, never
    delete, keep local files changed since submission unless ``overwrite``);
    files kept that way are listed in ``job.extra["kept"]`` as
    ``{"local": ..., "fetched": ...}``. After a successful fetch the
    orchestrator frees what the job staged on the resource, unless
    ``keep_remote`` or the job was submitted with it (``job.keep_remote``).
    """
    registry = registry or Registry()
    registered = registry.path(job.jobid).exists()
    with registry.hold(job.jobid):
        if registered and not _caught_up(job, registry):
            return []
        return _fetch_held(connection, job, status, registry, overwrite=overwrite, keep_remote=keep_remote)


def _caught_up(job: JobSpec, registry: Registry) -> bool:
    """Take in what another ReproMan process recorded while this one waited; ``False``: nothing left to fetch.

    A fetch and a ``--delete`` (or two fetches) of one job take turns (see
    :meth:`Registry.hold`); the second must start from the first one's
    record, or it would fetch from a freed resource, or bring back a
    record that was just deleted.
    """
    import attrs

    if not registry.path(job.jobid).exists():
        raise JobError(f"job {job.jobid} was deleted by another ReproMan process; nothing was fetched")
    current = registry.load(job.jobid)
    if current.was_fetched and current.extra.get("remote_released"):
        lgr.info("job %s was fetched by another ReproMan process meanwhile", job.jobid)
        for field in attrs.fields(JobSpec):
            setattr(job, field.name, getattr(current, field.name))
        return False
    return True


def _fetch_held(
    connection: Connection,
    job: JobSpec,
    status: JobStatus,
    registry: Registry,
    *,
    overwrite: bool,
    keep_remote: bool,
) -> list[str]:
    orchestrator = connection.orchestrator(job)
    orchestrator.overwrite = overwrite
    orchestrator.releases_remote = not (keep_remote or job.keep_remote)
    owners = unsucceeded_owners(job, status)
    orchestrator.guarded_outputs = frozenset(owners)
    left_files = LeftByFailures(job.local_directory)
    orchestrator.left_by_failure = left_files if left_files else None
    outcome.record(job, status)
    space.warn_if_full(connection, job, status)
    fetched_at = outcome.now_iso()
    if orchestrator.records_job:
        # The orchestrator writes (commits) the record itself: give it the final one.
        job.status = "fetched"
        job.fetched = fetched_at
        job.extra["result"] = status.summary()
    try:
        paths = fetch_outputs(connection, job, orchestrator, status)
    except OutputConflictError as exc:
        raise OutputConflictError(
            f"job {job.jobid} finished but was not fetched: {exc.args[0] if exc.args else exc}",
            hint=f"Nothing was changed. Move the local path away (or rename it), then 'reproman jobs {job.jobid}'.",
        ) from None
    report = orchestrator.landing_report
    if report is not None:
        _note_failures(job, report, owners, left_files, orchestrator.records_job)
    job.extra.pop("kept", None)
    if report is not None and report.kept:
        writers = output_owners(job)
        job.extra["kept"] = [_kept_entry(job, status, owners, writers, k) for k in report.kept]
        _warn_guarded(job, job.extra["kept"])
        # A kept file was not fetched: the caller lists it as kept (job.extra["kept"]), never among the paths.
        left = {os.path.normpath(k.local) for k in report.kept}
        paths = [p for p in paths if os.path.normpath(p) not in left]
    job.status = "fetched"
    job.fetched = fetched_at
    job.extra["result"] = status.summary()
    missing = unexplained_missing(job, status, orchestrator.missing_outputs)
    for path in missing:
        lgr.warning("job %s: output %s was not produced on the resource", job.jobid, path)
    if len(orchestrator.missing_outputs) > len(missing):
        lgr.info("job %s: %d output(s) of subjobs that did not succeed were not produced", job.jobid,
                 len(orchestrator.missing_outputs) - len(missing))
    job.extra.pop(outcome.MISSING_OUTPUTS, None)
    if missing:
        job.extra[outcome.MISSING_OUTPUTS] = missing
    unverified = _checksums_lost(job, orchestrator)
    if unverified:
        # The checksum step wrote nothing (a full disk there): nothing fetched could be checked.
        from reproman.jobs.provenance import CHECKSUMMED

        job.extra[CHECKSUMMED] = False
    save_record(job, registry, orchestrator.records_job)
    keep_remote = keep_remote or job.keep_remote
    if unverified and not keep_remote:
        lgr.warning("job %s: the output checksums could not be computed on the resource (is its disk full?), so "
                    "%s and the other fetched files are unverified; the job's files stay on the resource (%s): "
                    "free space there, then 'reproman jobs --fetch %s' checks them", job.jobid, unverified,
                    job.working_directory, job.jobid)
        keep_remote = True
    mismatched = (job.extra.get("verified") or {}).get("mismatched") or []
    if mismatched and not keep_remote:
        # The copy on the resource may be the only good one: never free it on a doubt.
        lgr.warning("job %s: its files stay on the resource, since %d fetched file(s) differ from them",
                    job.jobid, len(mismatched))
        keep_remote = True
    if missing and not keep_remote:
        # A misspelt -o: what the job did write is only in its working directory there.
        lgr.warning("job %s: its files stay on the resource (%s), since %s: look there, then free them with "
                    "'reproman jobs --delete %s'", job.jobid, job.working_directory,
                    f"output {missing[0]} was not produced" if len(missing) == 1
                    else f"{len(missing)} outputs were not produced", job.jobid)
        keep_remote = True
    if not keep_remote:
        # Only now, with the results, logs and record safe locally.
        release_remote(orchestrator)
        remove_job_dir(connection, job)
        job.extra["remote_released"] = True
        registry.save(job)
    return paths


def _note_failures(job: JobSpec, report: LandingReport, owners: dict[str, list[int]], left: LeftByFailures,
                   records_job: bool) -> None:
    """List what subjobs that did not succeed left where nothing was; say which such files a result replaced.

    See :mod:`reproman.jobs.failure_files`. An orchestrator that keeps its own
    record (a DataLad dataset) is not written into after it saved it.
    """
    if report.from_failures and not records_job:
        labels = [(path, ", ".join(outcome.subjob_label(job, i) for i in _owed_by(str(path), owners)))
                  for path in report.from_failures]
        failure_files.record(job.local_directory, job.resource_name, job.jobid, labels)
    for path in report.replaced_failures:
        was = left.matched.get(os.path.normpath(os.path.abspath(path)))
        by = "a subjob that did not succeed"
        if was is not None:
            by = f"subjob {was.subjob} of job {was.jobid}" if was.subjob else f"job {was.jobid}"
        lgr.info("job %s: replaced %s, which %s had left there (unchanged since)", job.jobid,
                 _shown(str(path), job.local_directory), by)


def output_owners(job: JobSpec) -> dict[str, list[int]]:
    """Each local output path (absolute, normalised) with the indices of all the subjobs that write it."""
    from reproman.jobs.plain import relative_path

    base = os.path.abspath(job.local_directory)
    owners: dict[str, list[int]] = {}
    for index, subjob in enumerate(job.subjobs):
        for output in subjob.outputs:
            path = os.path.normpath(os.path.join(base, relative_path(output, job.local_directory)))
            owners.setdefault(path, []).append(index)
    return owners


def unsucceeded_owners(job: JobSpec, status: JobStatus) -> dict[str, list[int]]:
    """Each local output path (absolute, normalised) owed by subjobs that did not succeed, with their indices.

    A fetch never lets these replace a local file (:attr:`Landing.guarded`):
    a failed, cancelled or lost subjob may leave an empty or half-written
    file, and the user's earlier result is worth more. A subjob without a
    known status counts as not succeeded; a directory output shared with
    subjobs that succeeded is guarded all the same (what lands in it cannot
    be told apart by subjob).
    """
    from reproman.jobs.contracts import State

    succeeded = {s.index for s in status.subjobs if s.state is State.SUCCEEDED}
    owners = {path: [i for i in indices if i not in succeeded] for path, indices in output_owners(job).items()}
    return {path: indices for path, indices in owners.items() if indices}


def _owed_by(path: str, owners: dict[str, list[int]]) -> list[int]:
    """The subjobs that did not succeed and owe ``path`` (it is, or is under, one of their outputs)."""
    found: set[int] = set()
    current = os.path.normpath(os.path.abspath(path))
    while True:
        found.update(owners.get(current, ()))
        parent = os.path.dirname(current)
        if parent == current:
            return sorted(found)
        current = parent


def _ended(status: SubjobStatus) -> str:
    """How a subjob ended, for a kept file: ``lost`` said as such (its state is ``failed``, its reason says lost)."""
    from reproman.jobs.contracts import FailureReason

    return "lost" if status.reason is FailureReason.LOST else outcome.category(status)


def _kept_entry(job: JobSpec, status: JobStatus, owners: dict[str, list[int]], writers: dict[str, list[int]],
                kept: KeptFile) -> dict[str, Any]:
    """``job.extra["kept"]`` item; one kept for a subjob that did not succeed names it (``subjob``) and how it ended.

    ``subjob`` is why the file was kept: the first subjob that did not
    succeed and owes an output the file is (in). When that output is shared
    (a directory several subjobs write into), which subjob left the file
    cannot be told: ``shared_by`` then says how many subjobs write there
    (an output of theirs is, or holds, the file; ``output`` is the guarded
    one, as named), so that no one reads the file as that subjob's.
    """
    entry: dict[str, Any] = {"local": str(kept.local), "fetched": str(kept.fetched)}
    if kept.guarded:
        indices = _owed_by(str(kept.local), owners)
        if indices:
            ended = {s.index: _ended(s) for s in status.subjobs}
            entry["subjob"] = outcome.subjob_label(job, indices[0])
            entry["subjob_ended"] = ended.get(indices[0], "unknown")
            entry["subjobs_not_succeeded"] = len(indices)
            sharing = _owed_by(str(kept.local), writers)
            if len(sharing) > 1:
                entry["shared_by"] = len(sharing)
                entry["output"] = _shown(_nearest_output(str(kept.local), owners), job.local_directory)
    return entry


def _nearest_output(path: str, owners: dict[str, list[int]]) -> str:
    """The output ``path`` is, or is nearest under, among ``owners``' (``path`` itself if none)."""
    current = os.path.normpath(os.path.abspath(path))
    while current not in owners:
        parent = os.path.dirname(current)
        if parent == current:
            return path
        current = parent
    return current


#: How many kept files of subjobs that did not succeed are named one by one.
_NAMED_LIMIT = 20


def _warn_guarded(job: JobSpec, kept: list[dict[str, Any]]) -> None:
    """One warning line per local file a subjob that did not succeed would have replaced (the first 20)."""
    guarded = [k for k in kept if k.get("subjob")]
    for item in guarded[:_NAMED_LIMIT]:
        ended = {"failed": "failed", "cancelled": "was cancelled", "lost": "was lost"}.get(
            item["subjob_ended"], "did not succeed")
        others = item["subjobs_not_succeeded"] - 1
        alone = job.n_subjobs == 1 and not job.subjobs[0].p
        who = ("its command" if alone else f"subjob {item['subjob']}") + (
            f" (and {others} more that did not succeed)" if others else "")
        local = _shown(item["local"], job.local_directory)
        if item.get("shared_by"):
            # Not "what it left": any of the subjobs writing that directory may have left this file.
            lgr.warning("job %s: kept your %s unchanged: it is in output %s, where %d subjobs write, and %s %s; "
                        "the job's version (from any of them) is in %s", job.jobid, local, item["output"],
                        item["shared_by"], who, ended, item["fetched"])
            continue
        lgr.warning("job %s: kept your %s unchanged: %s %s, and what it left there is in %s", job.jobid,
                    local, who, ended, item["fetched"])
    if len(guarded) > _NAMED_LIMIT:
        lgr.warning("job %s: and %d more local files kept the same way ('reproman jobs --show %s' lists them "
                    "under 'kept')", job.jobid, len(guarded) - _NAMED_LIMIT, job.jobid)


def _shown(path: str, base: str) -> str:
    """``path`` relative to ``base`` when inside it (shorter, as the user named the output), else as is."""
    rel = os.path.relpath(path, base)
    return path if rel == ".." or rel.startswith(".." + os.sep) else rel


def _checksums_lost(job: JobSpec, orchestrator: Orchestrator) -> str | None:
    """A fetched output file (a regular file this fetch wrote) although the resource's checksum step listed none.

    The step says it ran (``checksummed``) even when a full disk left its
    answer files empty; the fetched files then look verified and the
    resource's copies would be freed. Symbolic links are not counted
    (annexed files whose content the resource lacks are links there too),
    nor the job's logs and records under ``.reproman``.
    """
    from reproman.jobs.provenance import CHECKSUMMED

    report = orchestrator.landing_report
    if job.checksums or not job.extra.get(CHECKSUMMED) or report is None:
        return None
    base = os.path.abspath(job.local_directory)
    for path in report.written:
        rel = os.path.relpath(os.path.abspath(path), base)
        if rel.startswith((".reproman" + os.sep, ".git" + os.sep)) or rel.startswith(".."):
            continue
        if os.path.isfile(path) and not os.path.islink(path):
            return rel
    return None


def unexplained_missing(job: JobSpec, status: JobStatus, missing: list[str]) -> list[str]:
    """The missing outputs that a subjob which succeeded should have made.

    A failed or cancelled subjob's outputs are expected to be missing, and
    its outcome says so already; only an output owed by a subjob that
    succeeded (a misspelt ``-o``) keeps the job's files on the resource.
    """
    if not missing:
        return []
    from reproman.jobs.contracts import State
    from reproman.jobs.plain import relative_path

    owed: set[str] = set()
    for subjob in status.subjobs:
        if subjob.state is State.SUCCEEDED and subjob.index < job.n_subjobs:
            owed.update(relative_path(o, job.local_directory) for o in job.subjobs[subjob.index].outputs)
    return [m for m in missing if m in owed]


def release_remote(orchestrator: Orchestrator) -> None:
    """Let the orchestrator free the resource; a failure there never undoes a fetch."""
    try:
        orchestrator.cleanup()
    except Exception as exc:  # best effort by contract; the results are safe locally
        lgr.warning("job %s: could not free what it staged on the resource: %s", orchestrator.job.jobid, exc)


def remove_job_dir(connection: Connection, job: JobSpec) -> None:
    """Remove the job directory (spec, runscript, logs, status files) on the resource; best effort.

    After a fetch its content is in ``.reproman/jobs/<resource>/<jobid>/``
    beside the results and the outcomes are in the record, so nothing on
    the resource is needed any more.
    """
    try:
        result = connection.session.execute_command(["rm", "-rf", "--", job.job_dir])
    except Exception as exc:  # the results are safe locally; a resource that is gone is a warning
        lgr.warning("job %s: could not remove %s on the resource: %s", job.jobid, job.job_dir, exc)
        return
    if result.returncode != 0:
        lgr.warning("job %s: could not remove %s on the resource: %s", job.jobid, job.job_dir,
                    result.stderr.strip() or f"exit {result.returncode}")


def save_record(job: JobSpec, registry: Registry, records_job: bool | None = None) -> None:
    """The registry entry, and the copy kept with the results unless the orchestrator keeps its own."""
    from reproman.yamlio import atomic_write

    registry.save(job)
    if records_job is None:
        from reproman.plugins.manager import get_plugin_manager

        records_job = bool(get_plugin_manager().orchestrator(job.orchestrator).load().records_job)
    if job.was_fetched and not records_job:
        atomic_write(os.path.join(local_log_dir(job), layout.SPEC_FILE), dump_record(job))


def failures(job: JobSpec, status: JobStatus, fetched: bool) -> list[dict[str, Any]]:
    """Failed subjobs, named by their parameters, with the path of their stderr (local copy once fetched)."""
    return [
        {
            "index": s.index,
            "subjob": outcome.subjob_label(job, s.index),
            "p": dict(job.subjobs[s.index].p) if s.index < job.n_subjobs else {},
            "exit_code": s.exit_code,
            "reason": s.reason.value if s.reason else None,
            "detail": s.detail or None,
            "command": job.subjobs[s.index].command if s.index < job.n_subjobs else None,
            "stderr": _existing_stderr(job, s.index, fetched),
        }
        for s in status.failed
    ]


def _existing_stderr(job: JobSpec, index: int, fetched: bool) -> str | None:
    """The subjob's stderr path; ``None`` for a fetched job whose subjob never wrote one (it never started)."""
    path = stderr_path(job, index, local=fetched)
    return path if not fetched or os.path.exists(path) else None
