"""HTCondor: one cluster of N procs (``queue N``) via ``condor_submit -terse``.

NOT run against a live HTCondor pool here (Debian 12 has no HTCondor
daemons; the PyPI wheel holds bindings only): tested against the documented
command-line behaviour and output formats with fake ``condor_submit``,
``condor_q``, ``condor_history`` and ``condor_rm`` executables
(:mod:`reproman.testing.fakesched`).

* The submission "script" is a submit description file (``submit.condor``)
  running ``/bin/sh runscript $(Process)`` in the vanilla universe on a
  shared filesystem (ReproMan's orchestrator has already staged the data).
* ``condor_submit -terse`` prints ``CLUSTER.FIRST - CLUSTER.LAST``.
* One ``condor_q -json`` per poll for all clusters. Jobs that completed or
  were removed (``condor_rm``) leave the queue for the history: procs the
  queue does not list are looked up with one ``condor_history -json`` for
  their clusters (exit code or signal, ``RemoveReason``, usage); procs
  neither knows are reported forgotten. Held jobs stay in the queue, and are
  reported failed when the hold says a limit was exceeded, else pending
  with the hold reason; idle ones carry ``LastRejMatchReason`` when the
  negotiator gave one.
* ``throttle`` is ``max_materialize`` (late materialization), ``walltime`` is
  ``allowed_execute_duration``, ``account`` is ``accounting_group``.
  HTCondor has no queues, node counts or maximum array size, and its schedd
  is built for many small jobs, so ``queue``, ``num_nodes``,
  ``max_array_size`` and ``launcher`` are rejected rather than faked.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from reproman.plugins import FailureReason, JobSpec, SchedulerState, State, SubmissionError, Usage
from reproman_submitters.common import (
    BatchSubmitter,
    check_directive_values,
    ended,
    exit_status,
    failed,
    forget_missing,
    memory_mb,
    pending,
    put_state,
    running,
    runscript_path,
    split_ids,
    walltime_seconds,
)
from reproman_submitters.hooks import CONDOR
from reproman_submitters.lookup import Lookup, decide, started

#: A pass-through line of a submit description: ``name = value`` (``+Attr``, ``My.Attr`` too), never ``queue``.
CONDOR_DIRECTIVE = (
    re.compile(r"\+?[A-Za-z_][A-Za-z0-9_.]*\s*=", re.ASCII),
    "a submit command such as 'requirements = (OpSys == \"LINUX\")'",
)

#: The ClassAd attribute naming the ReproMan job on every proc of its cluster (``+Name`` sets a custom one).
JOB_ATTRIBUTE = "+ReproManJob"
_JOBID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

_TERSE_RE = re.compile(r"^(\d+)\.(\d+) - (\d+)\.(\d+)$")

#: HoldReasonCode values that mean the job overran a limit (it will not succeed if released).
_HOLD_FAILURES: dict[int, FailureReason] = {
    34: FailureReason.OUT_OF_MEMORY,  # JobOutOfResources (memory over the cgroup limit)
    46: FailureReason.WALLTIME,  # JobDurationExceeded (allowed_job_duration)
    47: FailureReason.WALLTIME,  # JobExecuteExceeded (allowed_execute_duration)
}


def condor_arg(text: str) -> str:
    """One argument in the "new" ``arguments`` syntax: single-quoted, quotes doubled."""
    return "'" + text.replace("'", "''").replace('"', '""') + "'"


#: ClassAd attributes read from ``condor_q`` and ``condor_history``.
ATTRIBUTES = ("ClusterId,ProcId,JobStatus,HoldReason,HoldReasonCode,RemoveReason,ExitBySignal,ExitSignal,"
              "ExitCode,LastRejMatchReason,RemoteWallClockTime,RemoteUserCpu,RemoteSysCpu,ResidentSetSize,"
              "LastRemoteHost")


def condor_state(ad: Mapping[str, Any]) -> SchedulerState | None:
    """Normalise one job ClassAd from ``condor_q -json`` or ``condor_history -json``."""
    status = int(ad.get("JobStatus", 0) or 0)
    if status == 1:
        return pending(str(ad.get("LastRejMatchReason") or "idle"))
    if status in (2, 6):
        return running("" if status == 2 else "transferring output")
    if status == 7:
        return running("suspended")
    usage = condor_usage(ad)
    if status == 3:
        return failed(FailureReason.CANCELLED, str(ad.get("RemoveReason", "") or "removed"), usage=usage)
    if status == 5:
        code = int(ad.get("HoldReasonCode", 0) or 0)
        reason = str(ad.get("HoldReason", "") or "held")
        if code in _HOLD_FAILURES:
            return failed(_HOLD_FAILURES[code], reason)
        if re.search(r"memory", reason, re.IGNORECASE) and re.search(r"exceed|over", reason, re.IGNORECASE):
            return failed(FailureReason.OUT_OF_MEMORY, reason)
        # Held for another reason (condor_hold, a missing file...): it may be released.
        return pending(f"held: {reason}")
    if status == 4:
        if ad.get("ExitBySignal"):
            signal = int(ad.get("ExitSignal", 0) or 0)
            return failed(FailureReason.EXIT_CODE, f"killed by signal {signal}", exit_status(None, signal), usage)
        code = int(ad.get("ExitCode", 0) or 0)
        if code:
            return failed(FailureReason.EXIT_CODE, f"exit code {code}", code, usage)
        return ended(exit_code=0, usage=usage)
    return SchedulerState(state=State.UNKNOWN, detail=f"JobStatus {status}")


def condor_usage(ad: Mapping[str, Any]) -> Usage | None:
    """Usage from a finished job's ad (``ResidentSetSize`` is in KiB)."""
    wall = ad.get("RemoteWallClockTime")
    cpu = [ad.get("RemoteUserCpu"), ad.get("RemoteSysCpu")]
    rss = ad.get("ResidentSetSize")
    host = str(ad.get("LastRemoteHost") or "").rpartition("@")[2]
    if wall is None and all(c is None for c in cpu) and rss is None and not host:
        return None
    return Usage(elapsed=float(wall) if wall is not None else None,
                 cpu_time=sum(float(c) for c in cpu if c is not None) if any(c is not None for c in cpu) else None,
                 max_rss=int(rss) * 1024 if rss is not None else None, node=host)


class CondorSubmitter(BatchSubmitter):
    """Submit with ``condor_submit``; follow with one ``condor_q -json``; cancel with ``condor_rm``."""

    name: ClassVar[str] = "condor"
    script_name: ClassVar[str] = "submit.condor"
    supported: ClassVar[frozenset[str]] = frozenset(CONDOR)
    probe: ClassVar[str] = "condor_submit"

    def submission_script(self, job: JobSpec) -> str:
        params = self.parameters(job)
        check_directive_values(self.name, {**params, "job directory": job.job_dir}, forbidden="$",
                               directive_form=CONDOR_DIRECTIVE)
        n = self.n_subjobs(job)
        jobdir = str(job.job_dir).rstrip("/")
        lines = [
            f"# ReproMan job {job.jobid}: {n} subjob(s) on HTCondor (condor_submit -terse submit.condor).",
            "# Each proc runs: /bin/sh runscript $(Process)",
            "universe = vanilla",
            "executable = /bin/sh",
            f'arguments = "{condor_arg(runscript_path(job))} $(Process)"',
            "transfer_executable = false",
            "should_transfer_files = NO",
            f"initialdir = {jobdir}",
            f"batch_name = reproman-{job.jobid}",
            # Names the job for find_submitted whatever batch_name the user's directives set.
            f'{JOB_ATTRIBUTE} = "{job.jobid}"',
            f"log = {jobdir}/condor.log",
            f"output = {jobdir}/condor.$(Process).out",
            f"error = {jobdir}/condor.$(Process).err",
        ]
        if "memory" in params:
            lines.append(f"request_memory = {memory_mb(params['memory'])}")
        if "num_processes" in params:
            lines.append(f"request_cpus = {int(params['num_processes'])}")
        if "gpus" in params:
            lines.append(f"request_gpus = {int(params['gpus'])}")
        if "walltime" in params:
            lines.append(f"allowed_execute_duration = {walltime_seconds(params['walltime'])}")
        if "account" in params:
            lines.append(f"accounting_group = {params['account']}")
        if "throttle" in params:
            lines.append(f"max_materialize = {int(params['throttle'])}")
        lines.extend(str(d) for d in params.get("directives", []))
        lines.append(f"queue {n}")
        return "\n".join(lines) + "\n"

    def submit(self, job: JobSpec, script_path: str) -> str:
        self.parameters(job)  # reject unsupported parameters before submitting
        cwd = str(job.job_dir).rstrip("/") or None
        result = self.run(["condor_submit", "-terse", script_path], f"condor_submit for job {job.jobid}", cwd=cwd)
        cluster, first, last = parse_terse(result.stdout)
        expected = self.n_subjobs(job)
        if last - first + 1 != expected:
            self.session.execute_command(["condor_rm", cluster])
            raise SubmissionError(f"condor_submit queued {last - first + 1} procs, expected {expected}")
        return cluster

    def scheduler_states(
        self, jobs: Sequence[JobSpec], wanted: Mapping[str, Collection[int]] | None = None
    ) -> Mapping[str, Mapping[int, SchedulerState]]:
        """One ``condor_q`` for all clusters; one ``condor_history`` for the clusters with procs it lacks."""
        clusters: dict[str, str] = {}
        for job in jobs:
            for cluster in split_ids(getattr(job, "submission_id", None)):
                clusters[cluster] = job.jobid
        if not clusters:
            return {}
        states: dict[str, dict[int, SchedulerState]] = {}
        self._put_ads(states, clusters, self._ads("condor_q", list(clusters)))
        # Procs the queue no longer lists, and whose status core still needs: look in the history.
        needed = {job.jobid: set(range(self.n_subjobs(job))) if wanted is None else set(wanted.get(job.jobid, ()))
                  for job in jobs}
        left = [c for c, jobid in clusters.items() if needed[jobid] - set(states.get(jobid, {}))]
        if left:
            found = self._ads("condor_history", left)
            queued = {jobid: set(known) for jobid, known in states.items()}
            for ad in found:
                jobid = clusters.get(str(ad.get("ClusterId", "")))
                if jobid is not None and int(ad.get("ProcId", 0)) not in queued.get(jobid, set()):
                    put_state(states, jobid, int(ad.get("ProcId", 0)), condor_state(ad))
        forget_missing(states, jobs, self.n_subjobs)
        return states

    def _ads(self, tool: str, clusters: Sequence[str]) -> list[dict[str, Any]]:
        result = self.session.execute_command([tool, "-json", "-attributes", ATTRIBUTES, *clusters])
        if result.returncode != 0:
            raise self.command_failed(result, tool)
        text = result.stdout.strip()
        try:
            ads = json.loads(text) if text else []
        except ValueError as exc:
            raise SubmissionError(f"cannot read {tool} -json output: {exc}") from exc
        return [ad for ad in ads if isinstance(ad, dict)]

    @staticmethod
    def _put_ads(states: dict[str, dict[int, SchedulerState]], clusters: Mapping[str, str],
                 ads: Sequence[Mapping[str, Any]]) -> None:
        for ad in ads:
            cluster = str(ad.get("ClusterId", ""))
            if cluster in clusters:
                put_state(states, clusters[cluster], int(ad.get("ProcId", 0)), condor_state(ad))

    def cancel(self, job: JobSpec) -> None:
        self.cancel_all(job, ["condor_rm"], ignore=("couldn't find", "not found", "already"))

    # -- an interrupted submission ---------------------------------------------------------------------------
    def find_submitted(self, job: JobSpec) -> str | None:
        """The cluster whose ads carry ``ReproManJob = "<jobid>"`` (:data:`JOB_ATTRIBUTE`), in ONE remote command.

        ``condor_q -constraint`` finds it while any of its procs is queued,
        running or held, ``condor_history -constraint`` once procs completed
        or were removed (the schedd's history file, on by default). Nothing
        found is "never queued" only when both answered and no subjob
        started: the history file is rotated by size, not kept for a set
        time, and a job that ran wrote its status files. A history that
        cannot be read: None. More than one cluster: None.
        """
        if not _JOBID_RE.match(job.jobid):
            return None  # not a value this submitter would have written into a ClassAd string
        constraint = shlex.quote(f'{JOB_ATTRIBUTE.lstrip("+")} == "{job.jobid}" && ProcId == 0')
        lookup = Lookup()
        lookup.add("queue", f"condor_q -constraint {constraint} -af ClusterId")
        lookup.add("history", f"condor_history -constraint {constraint} -limit 2 -af ClusterId")
        lookup.add_started(job)
        answers = lookup.read(self.session.execute_command(lookup.script()).stdout)
        queue = answers.get("queue")
        if queue is None or not queue.ok:
            raise SubmissionError(f"condor_q failed: {queue.last_line() if queue else 'no answer'}")
        clusters = {line.strip() for line in queue.text.splitlines() if line.strip().isdigit()}
        history = answers.get("history")
        would_list: str | None = None
        if history is not None and history.ok:
            clusters |= {line.strip() for line in history.text.splitlines() if line.strip().isdigit()}
        else:
            would_list = f"condor_history could not be read ({history.last_line() if history else 'no answer'})"
        return decide(job, "HTCondor", sorted(clusters, key=int), 1, would_list=would_list,
                      job_started=started(answers), cancel=lambda ids: self.session.execute_command(["condor_rm", *ids]))


def parse_terse(stdout: str) -> tuple[str, int, int]:
    """``condor_submit -terse`` -> (cluster, first proc, last proc), strictly."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    matches = [m for m in (_TERSE_RE.match(ln) for ln in lines) if m]
    if len(lines) != 1 or len(matches) != 1 or matches[0].group(1) != matches[0].group(3):
        raise SubmissionError(f"cannot read a cluster id from condor_submit -terse output: {stdout.strip()!r}")
    m = matches[0]
    return m.group(1), int(m.group(2)), int(m.group(4))
