"""``reproman rerun JOB``: submit a recorded job again, on the same resource or another.

The new job runs the original's rendered subjob commands verbatim (not
re-rendered from the template, so quoting cannot drift), with the same
inputs, outputs, batch parameters, job parameters, submitter and
orchestrator, from the original's local directory (where its inputs are).
Its record names the original (``rerun_of``); ``--failed`` resubmits only
the subjobs that failed, as one batch whose subjob K is the original's
``rerun_of["subjobs"][K]``.

A rerun never replaces the results it may be compared against: an existing
local output that differs from the rerun's is kept, and the rerun's
version lands under ``.reproman/jobs/<resource>/<jobid>/fetched/`` (the
usual rule for files that changed after submission, applied to every
existing file). The fetch says so in those words, not as a file "changed
after the job was submitted" (nobody changed it). ``reproman jobs --fetch
--overwrite NEWJOB`` would put the new versions in place, replacing the
original's. What a failed subjob left where no file was is no result to
compare against: unchanged since, the rerun's version replaces it (see
:mod:`reproman.jobs.failure_files`).

``--verify`` needs the original's output checksums, recorded when it was
fetched: an original not fetched yet, or one without outputs, is refused
before anything is submitted.

Secret-looking ``env`` values were never stored, so they are taken from the
current environment (an unset one is an error naming it) unless given again
with ``--jp env=NAME=VALUE``. ``--jp`` changes job parameters for the rerun;
``env`` is merged variable by variable over the original's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from reproman.errors import JobError, ReproManError, UsageError
from reproman.jobs.commands import FOLLOW_ACTIONS, RunResult, act_on_resource
from reproman.jobs.compare import JobDiff
from reproman.jobs.connection import Connection
from reproman.jobs.follow import ProgressCallback
from reproman.jobs.registry import Registry
from reproman.jobs.secrets import REDACTED
from reproman.jobs.spec import JobSpec, Subjob

if TYPE_CHECKING:
    from reproman.resources.base import Resource

lgr = logging.getLogger(__name__)


@attrs.define(kw_only=True)
class RerunResult(RunResult):
    """What ``rerun`` did; with ``verify``, the comparison with the original."""

    original: JobSpec
    comparison: JobDiff | None = None

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["rerun_of"] = self.original.jobid
        data["comparison"] = self.comparison.to_dict() if self.comparison is not None else None
        return data


def kept_originals(job: JobSpec) -> list[dict[str, str]]:
    """The original's outputs a fetch of rerun ``job`` left in place: ``{"local": ..., "fetched": ...}``.

    Not those kept because a subjob of the rerun did not succeed: the fetch named them itself.
    """
    return [k for k in job.extra.get("kept") or [] if not k.get("subjob")]


def load_job(query: str, registry: Registry | None = None) -> JobSpec:
    """The one registered job ``query`` names (full ID or unique part)."""
    registry = registry or Registry()
    (entry,) = registry.find([query])
    if not isinstance(entry, JobSpec):
        raise JobError(f"the record of job {entry.jobid} is unreadable: {entry.error}",
                       hint=f"Inspect or delete {entry.path}.")
    return entry


def _recorded_states(job: JobSpec) -> dict[int, str] | None:
    subjobs = job.environment.get("subjobs") if job.environment else None
    if not subjobs or any("state" not in s for s in subjobs):
        return None
    return {int(s["index"]): str(s["state"]) for s in subjobs}


def _local_states(job: JobSpec) -> dict[int, str] | None:
    """Final states from the status files fetched with the job's logs."""
    from reproman.jobs.layout import parse_status_line
    from reproman.jobs.status import local_log_dir

    logs = local_log_dir(job)
    if not os.path.isdir(logs):
        return None
    states: dict[int, str] = {}
    for index in range(job.n_subjobs):
        try:
            with open(os.path.join(logs, f"status.{index}"), encoding="utf-8", errors="replace") as handle:
                states[index] = parse_status_line(handle.read())[0]
        except OSError:
            states[index] = "failed"  # the job finished (it was fetched) without this subjob reporting
    return states


def failed_subjobs(job: JobSpec) -> list[int]:
    """Indices of the subjobs of a finished ``job`` that failed (or never reported)."""
    states = _recorded_states(job)
    if states is None and job.status == "fetched":
        states = _local_states(job)
    if states is None:
        from reproman.jobs.status import poll

        with Connection.for_job(job) as connection:
            status = poll(connection.session, connection.submitter(job.submitter), [job])[job.jobid]
        if status.missing:
            raise JobError(f"job {job.jobid}: its states are neither recorded nor on resource {job.resource_name!r}",
                           hint="Rerun it whole, without --failed.")
        if not status.finished:
            raise JobError(f"job {job.jobid} has not finished ({status.summary()})",
                           hint="Wait for it ('reproman jobs --status'), then rerun its failed subjobs.")
        states = {s.index: s.state.value for s in status.subjobs}
    return sorted(i for i, state in states.items() if state != "succeeded")


def _parameters(job: JobSpec, job_parameters: Sequence[str] | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The original's job parameters with ``job_parameters`` over them, secret-looking ``env`` values taken
    from this environment (unless given again)."""
    parameters = dict(job.parameters)
    if job_parameters:
        from reproman.jobs.options import merge_job_parameters, parse_job_parameters
        from reproman.plugins.manager import get_plugin_manager

        submitter = get_plugin_manager().submitter(job.submitter)
        parameters = merge_job_parameters(parameters, parse_job_parameters(job_parameters), submitter)
    env = dict(parameters.get("env") or {})
    missing = [k for k, v in env.items() if v == REDACTED and k not in os.environ]
    if missing:
        raise UsageError(
            f"job {job.jobid} set {', '.join(missing)}, whose value{'s are' if len(missing) > 1 else ' is'} "
            "never stored",
            hint=f"Export {' and '.join(missing)} here and rerun.",
        )
    if env:
        parameters["env"] = {k: os.environ[k] if v == REDACTED else v for k, v in env.items()}
    return parameters


def rerun(
    job: str,
    resref: str | Resource | None = None,
    resref_type: str = "auto",
    failed: bool = False,
    follow: bool | str = False,
    verify: bool = False,
    trace: bool = False,
    *,
    keep_remote: bool = False,
    job_parameters: Sequence[str] | Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> RerunResult:
    """Submit recorded job ``job`` again; see the module docstring.

    ``job_parameters`` (``KEY=VALUE`` strings or a mapping) change the
    original's for the rerun; ``env`` is merged variable by variable, so
    ``env=MODE=slow`` keeps the original's other variables.

    ``verify`` implies following and adds the comparison with the original
    (``result.comparison``, see :mod:`reproman.jobs.compare`).
    """
    from reproman.jobs.fetch import fetch_job
    from reproman.jobs.follow import follow as follow_job
    from reproman.jobs.submit import build_job, submit_job

    if follow not in (False, True) and follow not in FOLLOW_ACTIONS:
        raise UsageError(f"--follow takes one of {', '.join(FOLLOW_ACTIONS)}; got {follow!r}")
    registry = Registry()
    original = load_job(job, registry)
    if verify:
        from reproman.jobs.compare import require_comparable

        require_comparable(original, then=f"'reproman rerun --verify {original.jobid}'")
        if not original.outputs and not original.checksums:
            raise JobError(f"job {original.jobid} has no outputs, so a rerun would have nothing to compare with it",
                           hint=f"Rerun it without --verify ('reproman rerun --follow {original.jobid}'), or run the "
                                "command again naming its results with -o.")
    indices = failed_subjobs(original) if failed else list(range(original.n_subjobs))
    if not indices:
        raise JobError(f"job {original.jobid} has no failed subjobs: nothing to rerun",
                       hint=f"Rerun it whole with 'reproman rerun {original.jobid}'.")
    if not os.path.isdir(original.local_directory):
        raise JobError(f"job {original.jobid} ran from {original.local_directory}, which no longer exists",
                       hint="Its inputs are read from there; restore it to rerun the job.")
    subjobs = [Subjob(command=s.command, inputs=list(s.inputs), outputs=list(s.outputs), p=dict(s.p))
               for s in (original.subjobs[i] for i in indices)]
    parameters = _parameters(original, job_parameters)
    with Connection.open(resref if resref is not None else original.resource_name, resref_type) as connection:
        new = build_job(
            connection, command=original.command, message=original.message, submitter=original.submitter,
            orchestrator=original.orchestrator, records=[], inputs=[], outputs=[], parameters=parameters,
            local_directory=original.local_directory, trace=trace or original.capture == "trace", subjobs=subjobs,
        )
        new.rerun_of = {"jobid": original.jobid, "subjobs": indices if failed else None}
        # What a job spec made from the rerun's record needs to submit the same request again.
        new.command_words = original.command_words
        new.input_patterns = list(original.input_patterns)
        new.output_patterns = list(original.output_patterns)
        # Every existing local output counts as changed: one that differs is kept, not replaced.
        new.local_stamp = 0
        new.keep_remote = keep_remote
        submit_job(connection, new, registry)
        result = RerunResult(job=new, original=original)
        if not (follow or verify):
            return result
        result.status = follow_job(connection, new, progress)
        result.fetched = fetch_job(connection, new, result.status, registry, keep_remote=keep_remote)
    if verify:
        from reproman.jobs.compare import diff_jobs

        try:
            result.comparison = diff_jobs(original, new)
        except ReproManError as exc:
            raise JobError(f"rerun {new.jobid} finished, but cannot be compared with {original.jobid}: {exc}") from None
    if isinstance(follow, str):
        result.resource_action = act_on_resource(new, follow, result.status.ok)
    return result

