"""Turn a decided job into a running one: directories, staging, registration, submission.

The order is what makes a job impossible to lose:

1. the record is written to the local registry (status ``registered``),
   naming the job directory on the resource;
2. the orchestrator stages inputs (one batched transfer);
3. the job directory (spec, runscript, submission script) is written in one
   batched transfer;
4. the submitter submits; the record is rewritten with ``submitted`` and the
   submission id.

A process killed before 4 returned leaves a ``registered`` record naming
it; the next ``reproman jobs`` finds the process gone and makes the job's
end final (:mod:`reproman.jobs.interrupted`). A failure before anything could run
removes the record again.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reproman.errors import LocalFileError, ReproManError
from reproman.jobs import layout
from reproman.jobs.batch import command_text, expand
from reproman.jobs.connection import Connection
from reproman.jobs.registry import Registry, dump_record
from reproman.jobs.spec import JobSpec, Subjob, new_jobid
from reproman.resources.manage import check_job_directory_name

lgr = logging.getLogger(__name__)

def resolve_remote(path: str, home: str) -> str:
    """``~`` and relative paths made absolute against the resource's home directory."""
    if path == "~" or path.startswith("~/"):
        return posixpath.normpath(home + path[1:])
    if not posixpath.isabs(path):
        return posixpath.normpath(posixpath.join(home, path))
    return posixpath.normpath(path)


def build_job(
    connection: Connection,
    *,
    command: Sequence[str] | str,
    message: str | None,
    submitter: str,
    orchestrator: str,
    records: Sequence[Mapping[str, Any]],
    inputs: Sequence[str],
    outputs: Sequence[str],
    parameters: Mapping[str, Any],
    local_directory: str,
    trace: bool = False,
    subjobs: Sequence[Subjob] | None = None,
) -> JobSpec:
    """The job record, with its directories on the resource decided.

    ``subjobs`` (a rerun) replaces the expansion of ``command`` over
    ``records``; ``trace`` asks for the strace-based trace of every subjob.
    """
    from reproman.jobs import provenance
    from reproman.jobs.plain import check_job_paths
    from reproman.resources.landing import stamp

    subjobs = list(subjobs) if subjobs is not None else expand(command, records, inputs, outputs)
    from reproman.plugins.manager import get_plugin_manager

    unlocks = bool(getattr(get_plugin_manager().orchestrator(orchestrator).load(), "unlocks_annexed_outputs", False))
    check_job_paths([i for s in subjobs for i in s.inputs], [o for s in subjobs for o in s.outputs], local_directory,
                    annexed_ok=unlocks)
    jobid = new_jobid()
    resource = connection.resource
    check_job_directory_name(resource.name)
    root_param = parameters.get("root_directory") or resource.default_root_directory()
    wd_param = parameters.get("working_directory")
    needs_home = not posixpath.isabs(root_param) or (wd_param and not posixpath.isabs(wd_param))
    home = connection.session.home() if needs_home else "/"
    root = resolve_remote(root_param, home)
    job = JobSpec(
        jobid=jobid,
        command=command_text(command),
        message=message,
        resource_name=resource.name,
        resource_type=resource.type,
        resource_id=resource.id,
        submitter=submitter,
        orchestrator=orchestrator,
        parameters=dict(parameters),
        subjobs=subjobs,
        inputs=list(dict.fromkeys(i for s in subjobs for i in s.inputs)),
        outputs=list(dict.fromkeys(o for s in subjobs for o in s.outputs)),
        local_directory=local_directory,
        local_stamp=stamp(local_directory),
        root_directory=root,
        job_dir=layout.job_dir(root, resource.name, jobid),
    )
    job.working_directory = (
        resolve_remote(wd_param, home) if wd_param else connection.orchestrator(job).default_working_directory()
    )
    from reproman.jobs import inputstate

    job.input_state = inputstate.snapshot(job.inputs, local_directory)
    facts = resource.provenance()
    if facts:
        job.extra["resource"] = facts
    provenance.prepare(job, trace=trace)
    return job


def runscript_for(job: JobSpec) -> dict[str, str]:
    """The runscript and, for a large batch, the ``commands.K`` files it sources: file name -> text."""
    from reproman.jobs import provenance

    container = job.parameters.get("container")
    wrapper = f"singularity exec {shlex.quote(str(container))}" if container else None
    blocks = provenance.runscript_blocks(job)
    commands = [s.command for s in job.subjobs]
    chunked = len(commands) > layout.CHUNK
    files = {layout.RUNSCRIPT: layout.render_runscript(
        jobid=job.jobid,
        jobdir=job.job_dir,
        working_directory=job.working_directory,
        commands=commands,
        wrapper=wrapper,
        env=provenance.exported_env(job) or None,
        provenance=blocks,
        chunked=chunked,
    )}
    if chunked:
        files.update(layout.command_chunks(job.jobid, commands, wrapper, blocks))
    return files


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8, readable by the owner only.

    Command words and values that came from the command line as bytes that
    are not UTF-8 arrive as lone surrogates (Python's ``surrogateescape``);
    they are written back as the very bytes the user typed.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)


def _abandon(orchestrator: Any) -> None:
    """Let the orchestrator release what it staged; never mask the original error."""
    try:
        orchestrator.abandon()
    except Exception as exc:
        lgr.warning("could not clean up after job %s: %s", orchestrator.job.jobid, exc)


def _free_unsubmitted(connection: Connection, orchestrator: Any) -> None:
    """Remove the per-job directories of a job that never reached the submitter (best effort)."""
    from reproman.jobs.fetch import release_remote, remove_job_dir

    release_remote(orchestrator)
    remove_job_dir(connection, orchestrator.job)


def _unsubmitted(exc: LocalFileError) -> LocalFileError:
    """A record that could not be written before submission (a full disk): say that nothing runs."""
    said = str(exc).rstrip(".")
    return LocalFileError(f"{said}. Nothing was submitted", hint="Free some space (or fix the permissions) "
                          "where ReproMan keeps its job records and run it again.")


def submit_job(connection: Connection, job: JobSpec, registry: Registry | None = None) -> JobSpec:
    """Register, stage and submit ``job``; return it with its submission id."""
    from reproman.jobs import interrupted, outcome, provenance

    registry = registry or Registry()
    submitter = connection.submitter(job.submitter)
    orchestrator = connection.orchestrator(job)
    # Rendered before anything exists: a parameter the scheduler cannot honour
    # is refused here, leaving no record and no directory behind.
    submission_script = submitter.submission_script(job)
    # Names this process, so a kill -9 from here on leaves a record the next
    # 'reproman jobs' can settle (see reproman.jobs.interrupted).
    interrupted.mark(job, interrupted.STAGING)
    try:
        registry.save(job)
    except LocalFileError as exc:
        raise _unsubmitted(exc) from None
    try:
        orchestrator.prepare_remote()
        with tempfile.TemporaryDirectory(prefix="reproman-job-") as tmp:
            # Private on the resource too (the transfer keeps modes): the
            # spec and the runscript hold the job's env values.
            staging = Path(tmp) / job.jobid
            staging.mkdir(mode=0o700)
            staging.chmod(0o700)
            for name, text in (
                (layout.SPEC_FILE, dump_record(interrupted.without_mark(job))),
                *runscript_for(job).items(),
                (submitter.script_name, submission_script),
            ):
                _write_private(staging / name, text)
            extra = provenance.stage(connection.session, job, staging)
            connection.session.put_many([(staging, job.job_dir), *extra])
            provenance.staged(job, extra)
        interrupted.mark(job, interrupted.SUBMITTING)
        registry.save(job)
    except BaseException as exc:
        # Nothing can be running yet: forget the job rather than list a ghost,
        # and leave no empty directories behind on the resource.
        _abandon(orchestrator)
        _free_unsubmitted(connection, orchestrator)
        registry.delete(job.jobid)
        if isinstance(exc, LocalFileError):
            raise _unsubmitted(exc) from None
        raise
    try:
        job.submission_id = submitter.submit(job, posixpath.join(job.job_dir, submitter.script_name))
    except ReproManError as exc:
        # Final: nothing was queued, so every subjob failed, for good.
        interrupted.done(job)
        outcome.record_submission_failure(job, str(exc))
        registry.save(job)
        _abandon(orchestrator)
        raise
    job.status = "submitted"
    interrupted.done(job)
    registry.save(job)
    orchestrator.post_submit()
    lgr.info("submitted job %s (%d subjobs) as %s", job.jobid, job.n_subjobs, job.submission_id)
    return job
