"""Slurm: a batch is one ``sbatch --array`` job; one ``squeue`` per poll.

Tested against a real single-node Slurm 22.05 (``tools/ci/slurm.sh``).

* The submission script (``submit`` in the job directory) carries every
  directive as ``#SBATCH`` lines; only what differs between the pieces of a
  split array (``--array``, ``--dependency``) and the subjob offset (the
  script's first argument) are given on the ``sbatch`` command line.
* ``sbatch --parsable`` prints ``JOBID[;CLUSTER]``; nothing else is trusted.
* State: ``squeue -h -r -t all -j ID,ID -o '%F|%K|%T|%r'`` shows queued,
  running and recently finished tasks (finished ones stay for the
  controller's ``MinJobAge``, 300 s by default) for every followed job at
  once. Only when ids have left the controller is ``sacct`` asked, and only
  if accounting is configured; otherwise the status files decide.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from reproman.errors import SubmissionError
from reproman.jobs.contracts import FailureReason, SchedulerState, State
from reproman_submitters.common import (
    OPTION_DIRECTIVE,
    BatchSubmitter,
    check_directive_values,
    chunks,
    directive_lines,
    failed,
    hms,
    index_map,
    launcher_body,
    memory_mb,
    pending,
    put_state,
    quote_option,
    running,
    runscript_path,
    split_ids,
    walltime_seconds,
)
from reproman_submitters.hooks import SLURM

lgr = logging.getLogger(__name__)

SLURM_PARAMETERS = SLURM

_PARSABLE_RE = re.compile(r"^(\d+)(?:;[\w.-]+)?$")

# Slurm job states (squeue %T / sacct State) -> what ReproMan shows.
_PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "STOPPED"}
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "SUSPENDED", "SPECIAL_EXIT"}
_FAILED: dict[str, FailureReason] = {
    "FAILED": FailureReason.EXIT_CODE,
    "TIMEOUT": FailureReason.WALLTIME,
    "DEADLINE": FailureReason.WALLTIME,
    "OUT_OF_MEMORY": FailureReason.OUT_OF_MEMORY,
    "NODE_FAIL": FailureReason.NODE_FAILURE,
    "BOOT_FAIL": FailureReason.NODE_FAILURE,
    "LAUNCH_FAILED": FailureReason.NODE_FAILURE,
    "CANCELLED": FailureReason.CANCELLED,
    "REVOKED": FailureReason.CANCELLED,
    "PREEMPTED": FailureReason.PREEMPTED,
}


def slurm_state(state: str, reason: str = "", exit_code: str = "") -> SchedulerState | None:
    """Normalise a Slurm state (``CANCELLED by 0`` as sacct prints it is fine) and reason.

    ``COMPLETED`` gives ``None``: the scheduler has nothing to add to the
    status file the subjob wrote.
    """
    word = state.split()[0].rstrip("+").upper() if state.strip() else ""
    reason = "" if reason in ("None", "(null)") else reason
    detail = ", ".join(x for x in (state.strip() if word not in _PENDING | _RUNNING else "", reason) if x)
    if word in _PENDING:
        return pending(reason)
    if word in _RUNNING:
        return running(reason if word == "RUNNING" else ", ".join(x for x in (word.lower(), reason) if x))
    if word in _FAILED:
        if exit_code and exit_code not in ("0:0", ""):
            detail = ", ".join(x for x in (detail, f"exit code {exit_code}") if x)
        return failed(_FAILED[word], detail)
    if word == "COMPLETED" or not word:
        return None
    # A state this Slurm version invented: say so rather than guess.
    return SchedulerState(state=State.UNKNOWN, detail=state.strip())


class SlurmSubmitter(BatchSubmitter):
    """Submit to Slurm with ``sbatch``; follow with ``squeue``; cancel with ``scancel``."""

    name: ClassVar[str] = "slurm"
    script_name: ClassVar[str] = "submit.slurm"
    supported: ClassVar[frozenset[str]] = frozenset(SLURM_PARAMETERS)
    probe: ClassVar[str] = "sbatch"

    _sacct_available: bool | None = None
    _max_array_size: int | None = None

    # -- script ----------------------------------------------------------------------
    def directives(self, job: Any, params: Mapping[str, Any]) -> list[str]:
        """``#SBATCH`` options, in the order a person would write them."""
        check_directive_values(self.name, {**params, "job directory": job.job_dir}, directive_form=OPTION_DIRECTIVE)
        jobdir = str(job.job_dir).rstrip("/")
        launcher = bool(params.get("launcher"))
        opts = [
            quote_option("--job-name", f"reproman-{job.jobid}"),
            quote_option("--chdir", jobdir),
            # The runscript writes stdout.INDEX/stderr.INDEX itself; this log only
            # catches Slurm's own words (time limit, cancellation, node failure),
            # which name the task. One file for all tasks, appended to, rather than
            # one per task: 500 near-empty files would only slow fetching.
            quote_option("--output", f"{jobdir}/slurm.log"),
            "--open-mode=append",
        ]
        if "queue" in params:
            opts.append(quote_option("--partition", params["queue"]))
        if "account" in params:
            opts.append(quote_option("--account", params["account"]))
        if "qos" in params:
            opts.append(quote_option("--qos", params["qos"]))
        if "num_nodes" in params:
            opts.append(f"--nodes={int(params['num_nodes'])}")
        if launcher:
            concurrency = self.launcher_concurrency(job, params)
            opts.append(f"--ntasks={concurrency}")
        else:
            opts.append("--ntasks=1")
        if "num_processes" in params:
            opts.append(f"--cpus-per-task={int(params['num_processes'])}")
        if "memory" in params:
            mb = memory_mb(params["memory"])
            # In launcher mode memory is per subjob, i.e. per task's CPUs.
            if launcher:
                opts.append(f"--mem-per-cpu={-(-mb // int(params.get('num_processes', 1)))}M")
            else:
                opts.append(f"--mem={mb}M")
        if "walltime" in params:
            opts.append(f"--time={hms(walltime_seconds(params['walltime']))}")
        if "gpus" in params:
            opts.append(f"--gres=gpu:{int(params['gpus'])}")
        opts.extend(str(d) for d in params.get("directives", []))
        return opts

    def submission_script(self, job: Any) -> str:
        params = self.parameters(job)
        n = self.n_subjobs(job)
        runscript = runscript_path(job)
        head = (
            "#!/bin/sh\n"
            f"# ReproMan job {job.jobid}: {n} subjob(s) on Slurm.\n"
        )
        if params.get("launcher"):
            head += "# Launcher mode: one allocation runs every subjob (no array).\n"
            body = directive_lines("#SBATCH", self.directives(job, params))
            runner = "srun --nodes=1 --ntasks=1 --exact" if int(params.get("num_nodes", 1)) > 1 else ""
            return head + body + launcher_body(runscript, n, self.launcher_concurrency(job, params), runner)
        head += (
            "# Submitted as an array: sbatch --array=0-(COUNT-1) submit.slurm OFFSET\n"
            "# (OFFSET > 0 only when a large batch was split into several arrays).\n"
        )
        body = directive_lines("#SBATCH", self.directives(job, params))
        return (
            head
            + body
            + 'offset="${1:-0}"\n'
            + 'index=$((offset + ${SLURM_ARRAY_TASK_ID:-0}))\n'
            + f'exec sh {shlex.quote(runscript)} "$index"\n'
        )

    # -- submit ------------------------------------------------------------------------
    def site_max_array_size(self) -> int | None:
        """``MaxArraySize`` of the cluster (task ids must stay below it); asked once per instance."""
        if self._max_array_size is None:
            result = self.session.execute_command(["scontrol", "show", "config"])
            match = re.search(r"^MaxArraySize\s*=\s*(\d+)", result.stdout, re.MULTILINE)
            self._max_array_size = int(match.group(1)) if match else 0
        return self._max_array_size or None

    def submit(self, job: Any, script_path: str) -> str:
        params = self.parameters(job)
        n = self.n_subjobs(job)
        jobdir = str(job.job_dir).rstrip("/") or None
        if params.get("launcher"):
            return self._sbatch([script_path], jobdir, job)
        limit = params.get("max_array_size")
        if limit is None and n > 1000:
            # Slurm rejects task ids >= MaxArraySize (default 1001): split for the site.
            limit = self.site_max_array_size()
        pieces = chunks(n, int(limit) if limit else None)
        throttle = params.get("throttle")
        ids: list[str] = []
        try:
            for offset, count in pieces:
                args: list[str] = []
                if n > 1:
                    args.append(f"--array=0-{count - 1}" + (f"%{int(throttle)}" if throttle else ""))
                if throttle and ids:
                    # Several arrays under one throttle: run them one after the other.
                    args.append(f"--dependency=afterany:{ids[-1]}")
                ids.append(self._sbatch([*args, script_path, str(offset)], jobdir, job))
        except SubmissionError:
            if ids:
                self.session.execute_command(["scancel", *ids])
            raise
        return ",".join(ids)

    def _sbatch(self, args: Sequence[str], cwd: str | None, job: Any) -> str:
        argv = ["sbatch", "--parsable", *args]
        result = self.run(argv, f"sbatch for job {job.jobid}", cwd=cwd)
        return parse_sbatch_parsable(result.stdout)

    # -- follow --------------------------------------------------------------------------
    def scheduler_states(self, jobs: Sequence[Any]) -> Mapping[str, Mapping[int, SchedulerState]]:
        """One ``squeue`` for every subjob of every job; ``sacct`` only for ids the controller forgot."""
        ids = index_map(jobs, self.n_subjobs)
        if not ids:
            return {}
        launchers = {job.jobid: self.n_subjobs(job) for job in jobs if self._is_launcher(job)}
        result = self.session.execute_command(
            ["squeue", "-h", "-r", "-t", "all", "-j", ",".join(ids), "-o", "%F|%K|%T|%r"]
        )
        if result.returncode != 0 and "invalid job id" not in (result.stderr + result.stdout).lower():
            raise self.command_failed(result, "squeue")
        states: dict[str, dict[int, SchedulerState]] = {}
        seen: set[str] = set()
        for line in result.stdout.splitlines() if result.returncode == 0 else []:
            fields = line.strip().split("|")
            if len(fields) != 4:
                continue
            array_id, task, state, reason = fields
            seen.add(array_id)
            self._record(states, ids, launchers, array_id, task, slurm_state(state, reason))
        missing = [sid for sid in ids if sid not in seen]
        if missing:
            self._from_sacct(states, ids, launchers, missing)
        return states

    def _is_launcher(self, job: Any) -> bool:
        try:
            return bool(self.parameters(job).get("launcher"))
        except Exception:  # a job submitted under another configuration
            return bool((job.parameters or {}).get("launcher"))

    @staticmethod
    def _record(
        states: dict[str, dict[int, SchedulerState]],
        ids: Mapping[str, tuple[str, int]],
        launchers: Mapping[str, int],
        array_id: str,
        task: str,
        state: SchedulerState | None,
    ) -> None:
        if array_id not in ids:
            return
        jobid, offset = ids[array_id]
        if jobid in launchers:
            # One allocation stands for all subjobs; their status files say more.
            for index in range(launchers[jobid]):
                put_state(states, jobid, index, state)
        elif task.isdigit():
            put_state(states, jobid, offset + int(task), state)
        else:  # "N/A": not an array (a single subjob)
            put_state(states, jobid, offset, state)

    def _from_sacct(
        self,
        states: dict[str, dict[int, SchedulerState]],
        ids: Mapping[str, tuple[str, int]],
        launchers: Mapping[str, int],
        missing: Sequence[str],
    ) -> None:
        """Ask accounting about ids that left the controller, if there is accounting."""
        if self._sacct_available is False:
            return
        result = self.session.execute_command(
            ["sacct", "-n", "-P", "-X", "-j", ",".join(missing), "-o", "JobID,State,ExitCode,Reason"]
        )
        text = (result.stderr + result.stdout).lower()
        if result.returncode != 0 or "accounting storage is disabled" in text or "not configured" in text:
            if type(self)._sacct_available is None:
                lgr.info("sacct unavailable (%s); relying on status files for finished jobs",
                         result.stderr.strip() or f"exit {result.returncode}")
            # Remember for this process: every later poll would get the same answer.
            type(self)._sacct_available = False
            return
        type(self)._sacct_available = True
        for line in result.stdout.splitlines():
            fields = line.strip().split("|")
            if len(fields) < 3:
                continue
            jobid_field, state, exit_code = fields[0], fields[1], fields[2]
            reason = fields[3] if len(fields) > 3 else ""
            array_id, _, task = jobid_field.partition("_")
            self._record(states, ids, launchers, array_id, task or "N/A", slurm_state(state, reason, exit_code))

    # -- cancel -----------------------------------------------------------------------------
    def cancel(self, job: Any) -> None:
        self.cancel_all(job, ["scancel"], ignore=("already completing or completed", "invalid job id"))


def parse_sbatch_parsable(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` output (``123`` or ``123;cluster``), strictly."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    if len(lines) != 1 or not _PARSABLE_RE.match(lines[0]):
        raise SubmissionError(f"cannot read a job id from sbatch --parsable output: {stdout.strip()!r}")
    match = _PARSABLE_RE.match(lines[0])
    assert match is not None
    return match.group(1)


__all__ = ["SLURM_PARAMETERS", "SlurmSubmitter", "parse_sbatch_parsable", "slurm_state", "split_ids"]
