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
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from reproman.errors import ReproManError
from reproman.jobs import layout
from reproman.jobs.contracts import FailureReason, SchedulerState, SubjobStatus, Submitter
from reproman.jobs.spec import JobSpec
from reproman.resources.session import Session

lgr = logging.getLogger(__name__)

_HEADER = "== "


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

    @property
    def finished(self) -> bool:
        return bool(self.subjobs) and all(s.state.finished for s in self.subjobs)

    @property
    def failed(self) -> list[SubjobStatus]:
        return [s for s in self.subjobs if s.state.value == "failed"]

    @property
    def ok(self) -> bool:
        return self.finished and not self.failed

    def counts(self) -> dict[str, int]:
        counts = {"pending": 0, "running": 0, "succeeded": 0, "failed": 0, "unknown": 0}
        for s in self.subjobs:
            counts[s.state.value] += 1
        return counts

    def summary(self) -> str:
        """``"3 running, 97 succeeded"``: non-zero counts only."""
        parts = [f"{n} {state}" for state, n in self.counts().items() if n]
        return ", ".join(parts) or "no subjobs"

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobid": self.jobid,
            "finished": self.finished,
            "counts": self.counts(),
            "subjobs": [
                {
                    "index": s.index,
                    "state": s.state.value,
                    "exit_code": s.exit_code,
                    "reason": s.reason.value if s.reason else None,
                    "detail": s.detail or None,
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
    job: JobSpec, files: RemoteFiles, scheduler: Mapping[int, SchedulerState] | None = None
) -> JobStatus:
    """Combine status files, completion marker and the scheduler's view into subjob states."""
    from reproman.jobs.contracts import State

    scheduler = scheduler or {}
    subjobs: list[SubjobStatus] = []
    for index in range(job.n_subjobs):
        line = files.lines.get(index)
        word, code = layout.parse_status_line(line) if line is not None else ("", None)
        if word == "succeeded":
            subjobs.append(SubjobStatus(index=index, state=State.SUCCEEDED, exit_code=code or 0))
            continue
        said = scheduler.get(index)
        if word == "failed":
            # A subjob killed by a signal (walltime, scancel, OOM killer) exits
            # 128+N; the scheduler knows why, so its reason wins over "exit 143".
            if _signalled(code) and said is not None and said.state is State.FAILED and said.reason is not None:
                subjobs.append(SubjobStatus(index=index, state=State.FAILED, exit_code=code,
                                            reason=said.reason, detail=said.detail))
            else:
                subjobs.append(SubjobStatus(index=index, state=State.FAILED, exit_code=code,
                                            reason=FailureReason.EXIT_CODE))
            continue
        if said is not None and (said.state.finished or word != "running"):
            subjobs.append(SubjobStatus(index=index, state=said.state, reason=said.reason, detail=said.detail))
        elif files.cancelled and files.completed:
            subjobs.append(SubjobStatus(index=index, state=State.FAILED, reason=FailureReason.CANCELLED))
        elif files.completed:
            # The launcher finished, yet this subjob never wrote a final line.
            subjobs.append(SubjobStatus(index=index, state=State.FAILED, reason=FailureReason.LOST))
        elif word == "running":
            subjobs.append(SubjobStatus(index=index, state=State.RUNNING))
        elif files.exists or job.status == "submitted":
            subjobs.append(SubjobStatus(index=index, state=State.PENDING))
        else:
            subjobs.append(SubjobStatus(index=index, state=State.UNKNOWN))
    return JobStatus(jobid=job.jobid, subjobs=tuple(subjobs), missing=not files.exists)


def _signalled(code: int | None) -> bool:
    return code is not None and code > 128


def read_files(session: Session, jobs: Sequence[JobSpec]) -> dict[str, RemoteFiles]:
    """One remote command: the status files of all ``jobs`` (keyed by jobid)."""
    if not jobs:
        return {}
    result = session.execute_command(status_command([j.job_dir for j in jobs]))
    by_dir = parse_status_output(result.stdout)
    return {j.jobid: by_dir.get(j.job_dir, RemoteFiles()) for j in jobs}


def poll(session: Session, submitter: Submitter, jobs: Sequence[JobSpec]) -> dict[str, JobStatus]:
    """Status of every subjob of ``jobs`` on one resource: one read, at most one scheduler query.

    The scheduler is asked only about jobs with subjobs that have no final
    status line; when its answer finishes a subjob, the status files are
    read once more so that a subjob which finished meanwhile is reported
    from its own file rather than from the scheduler.
    """
    files = read_files(session, jobs)
    first = {j.jobid: interpret(j, files[j.jobid]) for j in jobs}
    open_jobs = [
        j for j in jobs
        if files[j.jobid].exists
        and (not first[j.jobid].finished or any(_signalled(s.exit_code) for s in first[j.jobid].failed))
    ]
    if not open_jobs:
        return first
    try:
        said = submitter.scheduler_states(open_jobs)
    except ReproManError as exc:
        # A scheduler that does not answer this time (controller restarting,
        # network hiccup) must not end a follow: status files still count,
        # and the next poll asks again.
        lgr.warning("could not ask the scheduler about %d job(s), will retry: %s", len(open_jobs), exc)
        said = {}
    if not any(s.state.finished for states in said.values() for s in states.values()):
        return {j.jobid: interpret(j, files[j.jobid], said.get(j.jobid)) for j in jobs}
    files = {**files, **read_files(session, open_jobs)}
    return {j.jobid: interpret(j, files[j.jobid], said.get(j.jobid)) for j in jobs}


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
