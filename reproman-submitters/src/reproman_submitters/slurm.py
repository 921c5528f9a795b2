"""Slurm: a batch is one ``sbatch --array`` job; one ``squeue`` per poll, ``sacct`` for what left it.

Tested against a real single-node Slurm 22.05 with accounting (slurmdbd and
MariaDB, ``tools/ci/slurm.sh``).

* The submission script (``submit`` in the job directory) carries every
  directive as ``#SBATCH`` lines; only what differs between the pieces of a
  split array (``--array``, ``--dependency``) and the subjob offset (the
  script's first argument) are given on the ``sbatch`` command line.
* ``sbatch --parsable`` prints ``JOBID[;CLUSTER]``; nothing else is trusted.
* State: ``squeue -h -r -t all -j ID,ID -o '%F|%K|%T|%r'`` shows queued,
  running and recently finished tasks (finished ones stay for the
  controller's ``MinJobAge``, 300 s by default), with the pending reason,
  for every followed job at once. ``sacct`` (the history, when accounting is
  configured) is asked, in one query, about tasks that left ``squeue`` and
  about tasks that ended badly (for the exit code and the evidence of an
  out-of-memory kill); tasks neither knows are reported forgotten.
* Usage (elapsed, CPU time, MaxRSS, node) comes from one ``sacct`` query for
  all jobs that finished (:meth:`SlurmSubmitter.usage`).
* Out of memory: with cgroups Slurm says ``OUT_OF_MEMORY``. Without them
  (``JobAcctGatherParams=OverMemoryKill``) a task over its ``--mem`` is
  killed with signal 9 and shows ``FAILED 0:9`` (the step ``CANCELLED``),
  like any task killed with SIGKILL; it is reported as out of memory only
  when ``sacct`` also shows a step whose MaxRSS reached the memory the job
  was allocated (``AllocTRES mem=``), the same evidence Slurm's own kill
  used. A SIGKILL without that evidence stays "non-zero exit" with the signal
  in the detail.
* A pending reason that means the request can never start as submitted
  (:data:`NEVER_STARTS`) marks the subjob blocked, so followers stop waiting.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from reproman.plugins import FailureReason, JobSpec, SchedulerState, State, SubmissionError, Usage
from reproman_submitters.common import (
    OPTION_DIRECTIVE,
    BatchSubmitter,
    check_directive_values,
    chunk_offsets,
    chunks,
    directive_lines,
    ended,
    exit_status,
    failed,
    for_launcher,
    forget_missing,
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
from reproman_submitters.lookup import bounded, no_answer, query_timeout, timed_out

if TYPE_CHECKING:
    from reproman.plugins import CommandResult, Resource, Session

lgr = logging.getLogger("reproman.submitters.slurm")

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


#: Pending reasons (``squeue %r``) after which Slurm will not start the job as
#: submitted until someone changes the request or the partition.
NEVER_STARTS = frozenset({
    "PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints", "InvalidAccount",
    "InvalidQOS", "DependencyNeverSatisfied", "AccountNotAllowed", "QOSNotAllowed",
})

#: Start of the line each array task writes to slurm.log, naming the job id Slurm gave it.
TASK_MARK = "reproman: subjob"

#: How long after its end a task that ended badly is shown as "ending" while
#: ``sacct`` has no complete record of it yet (records arrive about a second
#: later; a step's MaxRSS, the out-of-memory evidence, a little after that).
#: Measured from the end time Slurm reports, on the resource's own clock, so
#: it holds across separate ``reproman jobs`` calls.
SETTLE_SECONDS = 10.0

SACCT_FIELDS = "JobID,State,ExitCode,Reason,Elapsed,TotalCPU,MaxRSS,AllocTRES,NodeList,End"


def slurm_state(state: str, reason: str = "", exit_code: str = "", usage: Usage | None = None) -> SchedulerState | None:
    """Normalise a Slurm state (``CANCELLED by 0`` as sacct prints it is fine), reason and ``CODE:SIGNAL``."""
    word = state.split()[0].rstrip("+").upper() if state.strip() else ""
    reason = "" if reason in ("None", "(null)") else reason
    if word in _PENDING:
        return pending(reason, blocked=reason.split(",")[0].strip() in NEVER_STARTS)
    if word in _RUNNING:
        return running(reason if word == "RUNNING" else ", ".join(x for x in (word.lower(), reason) if x))
    code, signal = parse_exit_code(exit_code)
    if word == "COMPLETED":
        return ended(exit_code=code if code is not None else 0, usage=usage)
    if word in _FAILED:
        # "CANCELLED by 0" names the uid that cancelled, not a cause: the word is enough.
        shown = word if _FAILED[word] is FailureReason.CANCELLED else state.strip()
        if _FAILED[word] is FailureReason.EXIT_CODE and launch_failed(code, signal, reason):
            # Nothing ran, so there is no exit code and no signal to show; the
            # reason sacct keeps is the one it waited for (JobArrayTaskLimit), stale.
            return failed(FailureReason.EXIT_CODE, f"launch failed: Slurm could not start it ({shown} {exit_code.strip()})",
                          exit_code=None, usage=usage)
        detail = ", ".join(x for x in (shown, reason) if x)
        if signal:
            detail += f", killed by signal {signal}"
        elif code:
            detail += f", exit code {code}"
        return failed(_FAILED[word], detail, exit_code=exit_status(code, signal), usage=usage)
    if not word:
        return None
    # A state this Slurm version invented: say so rather than guess.
    return SchedulerState(state=State.UNKNOWN, detail=state.strip())


def launch_failed(code: int | None, signal: int | None, reason: str = "") -> bool:
    """Whether a FAILED task never started: Slurm says so, or its ``0:S`` has no real signal in it.

    When slurmd cannot launch the batch script (its output file's directory
    is gone, the working directory cannot be entered, ...) Slurm records
    ``FAILED 0:53`` (squeue's reason ``JobLaunchFailure``): the "signal" is
    Slurm's own failure mark, not one any process got. A task killed by a
    signal shows one of the classic signals (1-31).
    """
    if reason.split(",")[0].strip() == "JobLaunchFailure":
        return True
    return code == 0 and signal is not None and signal >= 32


def parse_exit_code(text: str) -> tuple[int | None, int | None]:
    """``"1:0"`` -> (1, 0), ``"0:9"`` -> (0, 9); anything else -> (None, None)."""
    code, sep, signal = text.strip().partition(":")
    if not sep or not code.isdigit() or not signal.isdigit():
        return None, None
    return int(code), int(signal)


def duration_seconds(text: str) -> float | None:
    """``[D-]HH:MM:SS``, ``MM:SS.mmm`` (sacct's TotalCPU) or ``SS`` -> seconds."""
    text = text.strip()
    if not text or text in ("INVALID", "UNLIMITED", "Partition_Limit"):
        return None
    days = 0
    if "-" in text:
        day_text, _, text = text.partition("-")
        if not day_text.isdigit():
            return None
        days = int(day_text)
    seconds = 0.0
    try:
        for part in text.split(":"):
            seconds = seconds * 60 + float(part)
    except ValueError:
        return None
    return days * 86400 + seconds


_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)$", re.IGNORECASE)


def size_bytes(text: str) -> int | None:
    """Slurm's sizes (``322072K``, ``100M``, ``1.5G``; a bare number is bytes for MaxRSS) -> bytes."""
    match = _SIZE_RE.match(text.strip())
    if not match:
        return None
    number, unit = match.groups()
    return int(float(number) * 1024 ** " KMGTP".index(unit.upper() or " "))


def tres_memory(text: str) -> int | None:
    """The ``mem=`` of an ``AllocTRES`` value (``billing=1,cpu=1,mem=100M,node=1``), in bytes."""
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key == "mem":
            return size_bytes(value)
    return None


def out_of_memory(state: SchedulerState | None, signal: int | None, max_rss: int | None,
                  allocated: int | None) -> SchedulerState | None:
    """``state`` as out of memory when a SIGKILL comes with a MaxRSS at the allocated memory."""
    if state is None or state.state is not State.FAILED or state.reason is FailureReason.OUT_OF_MEMORY:
        return state
    if signal == 9 and max_rss is not None and allocated and max_rss >= allocated:
        # Slurm's own words ("FAILED, killed by signal 9") would only say the signal again.
        detail = (f"killed by signal 9 with MaxRSS {max_rss // 2**20} MiB, at or over the "
                  f"{allocated // 2**20} MiB allocated (Slurm: {state.detail.split(',')[0]})")
        return failed(FailureReason.OUT_OF_MEMORY, detail, exit_code=state.exit_code, usage=state.usage)
    return state


def parse_sacct(text: str) -> dict[str, dict[str, Any]]:
    """``sacct -P -n -o SACCT_FIELDS`` rows grouped per task (``123_4`` or ``123``), steps folded in.

    Each task gets its allocation row's state, exit code, reason, elapsed,
    CPU time, node list and allocated memory, and the largest MaxRSS of its
    steps (the batch step is where the command ran).
    """
    tasks: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 10:
            continue
        jobid, state, exit_code, reason, elapsed, total_cpu, max_rss, alloc_tres, nodes, end = fields[:10]
        base, _, step = jobid.partition(".")
        task = tasks.setdefault(base, {"max_rss": None})
        rss = size_bytes(max_rss) if max_rss else None
        if rss is not None and (task["max_rss"] is None or rss > task["max_rss"]):
            task["max_rss"] = rss
        if step:
            task.setdefault("step_cpu", 0.0)
            task["step_cpu"] += duration_seconds(total_cpu) or 0.0
            continue
        task.update(state=state, exit_code=exit_code, reason=reason, elapsed=duration_seconds(elapsed),
                    cpu=duration_seconds(total_cpu), allocated=tres_memory(alloc_tres), node=nodes,
                    end=int(end) if end.isdigit() else None)
    expanded: dict[str, dict[str, Any]] = {}
    for name, task in tasks.items():
        if "state" not in task:
            continue
        for one in task_names(name):
            expanded[one] = task
    return expanded


_RANGE_RE = re.compile(r"^(\d+)_\[([^\]]+)\]$")


def task_names(name: str) -> list[str]:
    """``123_[2-3,7%2]`` (tasks that never started, as sacct groups them) -> ``123_2``, ``123_3``, ``123_7``."""
    match = _RANGE_RE.match(name)
    if not match:
        return [name]
    names = []
    for part in match.group(2).split("%")[0].split(","):
        first, _, last = part.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            names += [f"{match.group(1)}_{i}" for i in range(int(first), int(last or first) + 1)]
    return names


def sacct_verdict(task: Mapping[str, Any]) -> SchedulerState | None:
    """The scheduler state, with usage and the out-of-memory evidence, of one :func:`parse_sacct` task."""
    usage = Usage(elapsed=task.get("elapsed"), cpu_time=task.get("cpu") or task.get("step_cpu"),
                  max_rss=task.get("max_rss"), node=task.get("node") or "")
    reason = task.get("reason", "")
    if task["state"].upper().startswith("CANCELLED") and (task.get("elapsed") or 0) > 0:
        # It ran before the cancel: sacct keeps the reason it last waited for
        # (JobArrayTaskLimit, Resources), which says nothing of how it ended.
        reason = ""
    state = slurm_state(task["state"], reason, task.get("exit_code", ""), usage)
    _code, signal = parse_exit_code(task.get("exit_code", ""))
    return out_of_memory(state, signal, task.get("max_rss"), task.get("allocated"))


class SlurmSubmitter(BatchSubmitter):
    """Submit to Slurm with ``sbatch``; follow with ``squeue``; cancel with ``scancel``."""

    name: ClassVar[str] = "slurm"
    script_name: ClassVar[str] = "submit.slurm"
    scheduler_log: ClassVar[str] = "slurm.log"

    @classmethod
    def scheduler_log_lines(cls, text: str, index: int) -> list[str]:
        """Slurm's lines about subjob ``index``: those naming the job id its task ran as (see :data:`TASK_MARK`)."""
        lines = text.splitlines()
        ids = {m.group(1) for line in lines if (m := re.match(rf"^{TASK_MARK} {index} is Slurm job (\d+)\s*$", line))}
        if not ids:
            return []
        pattern = re.compile(r"\b(?:" + "|".join(sorted(ids)) + r")\b")
        return [line for line in lines if not line.startswith(TASK_MARK) and pattern.search(line)]
    supported: ClassVar[frozenset[str]] = frozenset(SLURM_PARAMETERS)
    probe: ClassVar[str] = "sbatch"

    _max_array_size: int | None = None

    def __init__(self, session: Session, resource: Resource | None = None) -> None:
        super().__init__(session, resource)
        #: Whether sacct answers here (None: not asked yet); asked once per instance.
        self._sacct_available: bool | None = None
        #: The last failure of sacct, for what it leaves unknown.
        self._sacct_error = ""
        #: Partition -> the most CPUs one of its nodes has (launcher width).
        self._node_cpus: dict[str, int] = {}

    # -- script ----------------------------------------------------------------------
    def directives(self, job: JobSpec, params: Mapping[str, Any]) -> list[str]:
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

    def submission_script(self, job: JobSpec) -> str:
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
            # Slurm's own words in slurm.log name the task's job id: say which subjob that is.
            + f'echo "{TASK_MARK} $index is Slurm job ${{SLURM_JOB_ID:-}}"\n'
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

    def pieces(self, job: JobSpec) -> list[tuple[int, int]]:
        """The ``(offset, count)`` arrays ``job`` is submitted as: one ``sbatch`` each (one for a launcher)."""
        params = self.parameters(job)
        n = self.n_subjobs(job)
        if params.get("launcher"):
            return [(0, n)]
        limit = params.get("max_array_size")
        if limit is None and n > 1000:
            # Slurm rejects task ids >= MaxArraySize (default 1001): split for the site.
            limit = self.site_max_array_size()
        return chunks(n, int(limit) if limit else None)

    def submit(self, job: JobSpec, script_path: str) -> str:
        params = self.parameters(job)
        n = self.n_subjobs(job)
        jobdir = str(job.job_dir).rstrip("/") or None
        if params.get("launcher"):
            return self._sbatch([script_path], jobdir, job)
        pieces = self.pieces(job)
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

    def _sbatch(self, args: Sequence[str], cwd: str | None, job: JobSpec) -> str:
        argv = ["sbatch", "--parsable", *args]
        result = self.run(argv, f"sbatch for job {job.jobid}", cwd=cwd)
        return parse_sbatch_parsable(result.stdout)

    # -- launcher width --------------------------------------------------------------------
    def launcher_width(self, job: JobSpec, params: Mapping[str, Any]) -> int:
        """Without a throttle: the CPUs of the partition's largest node (per node asked), per subjob's CPUs.

        The launcher starts subjobs on the batch host unless ``num_nodes``
        spreads them with ``srun``, so one node's CPUs is what it can use.
        """
        partition = str(params.get("queue") or "")
        cpus = self.node_cpus(partition)
        per = int(params.get("num_processes", 1))
        return max(1, cpus // per) * max(1, int(params.get("num_nodes", 1)))

    def node_cpus(self, partition: str) -> int:
        """The most CPUs a node of ``partition`` ('' for the default partition) has, from one ``sinfo``."""
        if partition not in self._node_cpus:
            result = self.run(["sinfo", "-h", "-N", "-o", "%P|%c"], "sinfo (to size the launcher)")
            best: dict[str, int] = {}
            default = ""
            for line in result.stdout.splitlines():
                name, _, cpus = line.strip().partition("|")
                if name.endswith("*"):
                    name = default = name[:-1]
                if cpus.strip().rstrip("+").isdigit():
                    best[name] = max(best.get(name, 0), int(cpus.strip().rstrip("+")))
            wanted = partition or default
            if not best.get(wanted):
                raise SubmissionError(
                    f"cannot tell how many CPUs partition {wanted or '(default)'!r} offers a launcher "
                    f"(sinfo lists {', '.join(sorted(best)) or 'no partitions'})",
                    hint="Give throttle=N: how many subjobs run at once in the one allocation.",
                )
            self._node_cpus[partition] = best[wanted]
        return self._node_cpus[partition]

    # -- follow --------------------------------------------------------------------------
    def scheduler_states(
        self, jobs: Sequence[JobSpec], wanted: Mapping[str, Collection[int]] | None = None
    ) -> Mapping[str, Mapping[int, SchedulerState]]:
        """One ``squeue`` for every subjob of every job; one ``sacct`` for tasks it forgot or that ended badly."""
        ids = index_map(jobs, self.n_subjobs)
        if not ids:
            return {}
        launchers = {job.jobid: self.n_subjobs(job) for job in jobs if self.is_launcher(job)}
        now, result, out = self._timed(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(ids), "-o",
                                        "%F|%K|%T|%r|%e"])
        if result.returncode != 0 and "invalid job id" not in (result.stderr + out).lower():
            raise self.command_failed(result, "squeue")
        states: dict[str, dict[int, SchedulerState]] = {}
        history: set[str] = set()
        listed: set[str] = set()
        for line in out.splitlines() if result.returncode == 0 else []:
            fields = line.strip().split("|")
            if len(fields) != 5:
                continue
            array_id, task, state_text, reason, end = fields
            listed.add(array_id)
            state = slurm_state(state_text, reason)
            if (state is not None and state.state is State.FAILED and state.reason is not FailureReason.CANCELLED
                    and self._sacct_available is not False):
                # Ended badly: sacct has the exit code (and any out-of-memory
                # evidence); until it does, for SETTLE_SECONDS, it is ending.
                # A cancel needs neither: it reads as cancelled at once.
                history.add(array_id)
                if _settling(now, end):
                    state = running(f"ending ({state.detail})")
            self._record(states, ids, launchers, array_id, task, state)
        by_id = {job.jobid: job for job in jobs}
        missing = {sid for sid, (jobid, _offset) in ids.items()
                   if not self._all_seen(states, by_id[jobid], sid, None if wanted is None else wanted.get(jobid))}
        history |= missing
        answered = True
        if history:
            answered = self._from_sacct(states, ids, launchers, sorted(history), listed)
        if answered:
            if self._sacct_available:
                self._removed_before_start(states, jobs, listed, wanted)
            forget_missing(states, jobs, self.n_subjobs)
        else:
            self._gone_from_queue(states, jobs, missing)
        return states

    def _gone_from_queue(self, states: dict[str, dict[int, SchedulerState]], jobs: Sequence[JobSpec],
                         gone: Collection[str]) -> None:
        """Tasks of the ids ``gone`` from squeue, while sacct fails: no longer known, with sacct's error.

        squeue answered and lists every pending or running task, so these
        ended; how, only accounting could say. Left unsaid, core would go
        by the status files alone and show a task killed before writing its
        final line as "running" for as long as sacct keeps failing; as
        forgotten, core waits its grace period for a final line, then calls
        it lost, naming sacct's failure.
        """
        why = f"gone from squeue, and {self._sacct_error or 'sacct failed'}"
        for job in jobs:
            pieces = split_ids(job.submission_id)
            known = states.setdefault(job.jobid, {})
            for sid, (offset, count) in zip(pieces, chunk_offsets(self.n_subjobs(job), len(pieces))):
                if sid in gone:
                    for index in range(offset, offset + count):
                        known.setdefault(index, SchedulerState(state=State.UNKNOWN, known=False, detail=why))

    def _removed_before_start(self, states: dict[str, dict[int, SchedulerState]], jobs: Sequence[JobSpec],
                              listed: Collection[str], wanted: Mapping[str, Collection[int]] | None) -> None:
        """Array tasks that neither squeue nor sacct knows, while they know others of the same array: cancelled.

        A task scancelled while pending leaves squeue at once and never
        reaches accounting (sacct records tasks that started, and the ranges
        of those cancelled with their whole array). A task that started is
        in one of the two (squeue keeps it MinJobAge after its end), so one
        missing from both, beside siblings they list, was removed before it
        started.
        """
        for job in jobs:
            if self.is_launcher(job):
                continue
            pieces = split_ids(job.submission_id)
            want = None if wanted is None else wanted.get(job.jobid)
            known = states.setdefault(job.jobid, {})
            for sid, (offset, count) in zip(pieces, chunk_offsets(self.n_subjobs(job), len(pieces))):
                if sid not in listed:
                    continue
                for index in range(offset, offset + count):
                    if index not in known and (want is None or index in want):
                        known[index] = failed(FailureReason.CANCELLED, "removed from the queue before it started")

    def _all_seen(self, states: Mapping[str, Mapping[int, SchedulerState]], job: JobSpec, sid: str,
                  wanted: Collection[int] | None) -> bool:
        """Every wanted subjob of the piece ``sid`` of ``job`` was in squeue's answer."""
        pieces = split_ids(job.submission_id)
        offset, count = chunk_offsets(self.n_subjobs(job), len(pieces))[pieces.index(sid)]
        known = states.get(job.jobid, {})
        return all(i in known for i in range(offset, offset + count) if wanted is None or i in wanted)

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
                put_state(states, jobid, index, for_launcher(state))
        elif task.isdigit():
            put_state(states, jobid, offset + int(task), state)
        else:  # "N/A": not an array (a single subjob)
            put_state(states, jobid, offset, state)

    def _timed(self, argv: Sequence[str]) -> tuple[int | None, CommandResult, str]:
        """Run a Slurm client with times as epoch seconds; also the resource's clock, read just before.

        Returns that clock, the result, and the client's own output (the
        result's stdout without the clock's line). A client that does not
        answer within :func:`query_timeout` raises a :class:`SubmissionError`
        naming it, rather than hanging ``reproman jobs``.
        """
        seconds = query_timeout()
        result = self.session.execute_command(
            f"date +%s; {bounded(f'SLURM_TIME_FORMAT=%s {shlex.join(argv)}', seconds)}")
        if timed_out(result.returncode, seconds):
            raise no_answer(argv[0], seconds)
        first, _, rest = result.stdout.partition("\n")
        return (int(first) if first.strip().isdigit() else None), result, rest

    def _sacct(self, ids: Sequence[str]) -> tuple[int | None, dict[str, dict[str, Any]] | None]:
        """One ``sacct`` for ``ids`` (tasks grouped, see :func:`parse_sacct`); None without accounting."""
        if self._sacct_available is False:
            return None, None
        now, result, out = self._timed(["sacct", "-n", "-P", "-j", ",".join(ids), "-o", SACCT_FIELDS])
        text = (result.stderr + out).lower()
        if "accounting storage is disabled" in text or "not configured" in text or result.returncode == 127:
            if self._sacct_available is None:
                lgr.info("sacct unavailable (%s); relying on status files for finished jobs",
                         result.stderr.strip() or f"exit {result.returncode}")
            self._sacct_available = False
            return now, None
        if result.returncode != 0:
            raise self.command_failed(result, "sacct")
        self._sacct_available = True
        return now, parse_sacct(out)

    def _from_sacct(
        self,
        states: dict[str, dict[int, SchedulerState]],
        ids: Mapping[str, tuple[str, int]],
        launchers: Mapping[str, int],
        wanted: Sequence[str],
        listed: set[str] | None = None,
    ) -> bool:
        """Fill in from accounting the tasks of ``wanted`` ids; False when accounting did not answer.

        The ids accounting has rows of are added to ``listed``.
        """
        try:
            now, tasks = self._sacct(wanted)
        except SubmissionError as exc:
            lgr.warning("sacct failed, will retry: %s", exc)
            self._sacct_error = str(exc)
            return False
        if tasks is None:
            return True  # no accounting: what squeue does not know is gone
        for name, task in tasks.items():
            array_id, _, index = name.partition("_")
            if listed is not None:
                listed.add(array_id)
            task_id = index or "N/A"
            state = sacct_verdict(task)
            if state is None:
                continue
            if not state.state.finished:
                # Accounting lags behind squeue: squeue's word stands where it has one.
                if array_id in ids and not self._has(states, ids, launchers, array_id, task_id):
                    self._record(states, ids, launchers, array_id, task_id, state)
                continue
            _code, signal = parse_exit_code(task.get("exit_code", ""))
            if (state.state is State.FAILED and signal == 9 and task.get("max_rss") is None
                    and _settling(now, str(task.get("end") or ""))):
                # A SIGKILL whose step record (MaxRSS) is not in yet: it may be the
                # out-of-memory kill; wait a few seconds for the evidence.
                self._record(states, ids, launchers, array_id, task_id, running(f"ending ({state.detail})"))
                continue
            self._record(states, ids, launchers, array_id, task_id, state)
        return True

    @staticmethod
    def _has(states: Mapping[str, Mapping[int, SchedulerState]], ids: Mapping[str, tuple[str, int]],
             launchers: Mapping[str, int], array_id: str, task: str) -> bool:
        jobid, offset = ids[array_id]
        index = offset if jobid in launchers or not task.isdigit() else offset + int(task)
        return index in states.get(jobid, {})

    def usage(self, jobs: Sequence[JobSpec]) -> Mapping[str, Mapping[int, Usage]] | None:
        """Elapsed, CPU time, MaxRSS and node of the finished tasks of ``jobs``, from one ``sacct``."""
        ids = index_map(jobs, self.n_subjobs)
        if not ids:
            return {}
        _now, tasks = self._sacct(sorted(ids))
        if tasks is None:
            return None
        launchers = {job.jobid: self.n_subjobs(job) for job in jobs if self.is_launcher(job)}
        found: dict[str, dict[int, Usage]] = {}
        for name, task in tasks.items():
            array_id, _, index = name.partition("_")
            state = sacct_verdict(task)
            if array_id not in ids or state is None or not state.state.finished or state.usage is None:
                continue
            jobid, offset = ids[array_id]
            if jobid in launchers:
                # One allocation for all: only where they ran is theirs to report.
                for i in range(launchers[jobid]):
                    found.setdefault(jobid, {})[i] = Usage(node=state.usage.node)
            elif index.isdigit() or not index:
                found.setdefault(jobid, {})[offset + (int(index) if index else 0)] = state.usage
        return found

    # -- cancel -----------------------------------------------------------------------------
    def cancel(self, job: JobSpec) -> None:
        self.cancel_all(job, ["scancel"], ignore=("already completing or completed", "invalid job id"))

    # -- an interrupted submission ------------------------------------------------------------
    def find_submitted(self, job: JobSpec) -> str | None:
        """The Slurm ids of the jobs named ``reproman-<jobid>``, from ``squeue`` and ``sacct`` in one command.

        squeue lists what is queued or running (and, for ``MinJobAge``, what
        just ended); sacct, asked from the day before the job was registered,
        what already left the queue. Only this user's jobs count. Without
        accounting, a job squeue does not list may have run already: None.

        Several ids are the pieces of a split array: adopted when there are
        as many as :meth:`submit` makes. Fewer means the submission stopped
        between two ``sbatch`` calls: the pieces Slurm took are cancelled,
        as :meth:`submit` does when a piece fails, and the job is not
        adopted (a SubmissionError says so). More cannot be told apart: None.
        """
        name = shlex.quote(f"reproman-{job.jobid}")
        since = _day_before(job.created)
        seconds = query_timeout()
        result = self.session.execute_command(bounded(
            f'squeue -h -t all -u "$(id -un)" -n {name} -o %F; echo "{_LOOKUP_MARK} $?"; '
            f'sacct -n -X -P -u "$(id -un)" --name={name} -S {since} -o JobID 2>&1; echo "{_LOOKUP_MARK} $?"',
            seconds))
        if timed_out(result.returncode, seconds):
            raise no_answer("squeue or sacct", seconds)
        queue_text, _, rest = result.stdout.partition(_LOOKUP_MARK)
        queue_rc, _, history_text = rest.partition("\n")
        history_text, _, history_rc = history_text.partition(_LOOKUP_MARK)
        if queue_rc.strip() != "0":
            raise SubmissionError(f"squeue failed (exit {queue_rc.strip() or '?'}): "
                                  f"{(result.stderr.strip() or 'no output').splitlines()[-1]}")
        ids = {line.strip() for line in queue_text.splitlines() if line.strip().isdigit()}
        if history_rc.strip() == "0":
            ids |= {line.strip().split("_")[0] for line in history_text.splitlines()
                    if line.strip().split("_")[0].isdigit()}
        elif not ids:
            lgr.info("job %s: squeue does not list it and sacct cannot say whether it ran: %s", job.jobid,
                     history_text.strip() or f"exit {history_rc.strip()}")
            return None
        found = sorted(ids, key=int)  # Slurm ids grow: submission order
        expected = len(self.pieces(job))
        if len(found) == expected:
            return ",".join(found)
        if not found:
            return ""
        if len(found) > expected:
            lgr.warning("job %s: Slurm holds %d jobs named reproman-%s (%s), %d expected; not adopting any",
                        job.jobid, len(found), job.jobid, ", ".join(found), expected)
            return None
        self.session.execute_command(["scancel", *found])
        raise SubmissionError(
            f"only {len(found)} of the {expected} arrays of the job reached Slurm ({', '.join(found)}); "
            "they were cancelled")


#: Separates (and follows, with the exit code) the two answers of :meth:`SlurmSubmitter.find_submitted`.
_LOOKUP_MARK = "--reproman-lookup-exit"


def _day_before(created: str) -> str:
    """``YYYY-MM-DD`` of the day before ``created`` (an ISO time): sacct's start, with room for clocks and zones."""
    import datetime

    try:
        day = datetime.datetime.fromisoformat(created).date()
    except (TypeError, ValueError):
        return "now-7days"
    return (day - datetime.timedelta(days=1)).isoformat()


def _settling(now: int | None, end: str) -> bool:
    """Ended less than SETTLE_SECONDS ago (by the resource's clock and Slurm's end time)."""
    return now is not None and end.strip().isdigit() and now - int(end) < SETTLE_SECONDS


def parse_sbatch_parsable(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` output (``123`` or ``123;cluster``), strictly."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    if len(lines) != 1 or not _PARSABLE_RE.match(lines[0]):
        raise SubmissionError(f"cannot read a job id from sbatch --parsable output: {stdout.strip()!r}")
    match = _PARSABLE_RE.match(lines[0])
    assert match is not None
    return match.group(1)


__all__ = ["SLURM_PARAMETERS", "SlurmSubmitter", "parse_sbatch_parsable", "slurm_state", "split_ids"]
