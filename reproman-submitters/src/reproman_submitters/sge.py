"""Son of Grid Engine (and the Sun/Oracle/Univa lineage): ``qsub -t`` arrays; one ``qstat -xml`` per poll.

Tested against a real single-node Son of Grid Engine 8.1.9 (``tools/ci/sge.sh``).

* The submission script (``submit.sge``) carries every directive as ``#$``
  lines; only what differs between the pieces of a split array (``-t``,
  ``-tc``, ``-hold_jid``) and the subjob offset (the script's first
  argument) are given on the ``qsub`` command line. Array task ids count
  from 1, so subjob ``offset + SGE_TASK_ID - 1`` runs.
* ``qsub -terse`` prints ``ID`` (``ID.1-N:1`` for an array); nothing else is
  trusted.
* State: one ``qstat -xml -u $user`` lists the user's queued and running tasks (queued
  tasks of an array come as ranges, ``3-500:1``). Grid Engine forgets a task
  the moment it ends, so only ids that left ``qstat`` entirely are looked up
  in accounting: ONE remote command runs ``qacct -j ID`` for each of them
  and checks the job directories for ReproMan's cancel marker. ``qacct``
  scans the whole accounting file, so its answers are kept per submitter.
* Cancel: the ``cancelled`` marker is written first, then ``qdel``. Queued
  tasks that ``qdel`` removed never reach accounting; the marker is how they
  read as cancelled rather than lost.

Memory requests in Grid Engine are per slot and sites name the complex
differently, hence two settings, read from the same config sections as the
job-parameter defaults::

    [submitter-sge]
    memory_complex = h_vmem          # or mem_free, m_mem_free, ...
    parallel_environment = smp       # a PE with allocation_rule $pe_slots

``num_processes`` P becomes ``-pe smp P`` and ``memory`` M becomes
``-l h_vmem=M/P`` (per slot), so a subjob gets M in all. In launcher mode the
one job asks for ``throttle * P`` slots. Jobs are submitted with ``-V`` (the
submitting environment travels with the job), as Slurm does by default.
"""

from __future__ import annotations

import datetime
import logging
import math
import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from reproman.plugins import ConfigError, FailureReason, SchedulerState, State, SubmissionError
from reproman.plugins import JobFiles as layout  # only the file names (layout.CANCELLED)
from reproman_submitters.common import (
    BatchSubmitter,
    chunk_offsets,
    chunks,
    directive_lines,
    failed,
    hms,
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
from reproman_submitters.hooks import SGE

lgr = logging.getLogger("reproman.submitters.sge")

SGE_PARAMETERS = SGE
#: Settings of this submitter (not job parameters) read from its config sections.
SGE_SETTINGS = {"memory_complex": "h_vmem", "parallel_environment": "smp"}

_TERSE_RE = re.compile(r"^(\d+)(?:\.\d+-\d+:\d+)?$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_QACCT_SEPARATOR = re.compile(r"^={20,}\s*$")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)B?$", re.IGNORECASE)
_SIZE_UNIT = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}

#: Grid Engine's ``failed`` codes (sge_status): the job could not be started or
#: ended by the execution host. The words are Grid Engine's own; shown as detail.
_LIMIT_KILL = 37  # "qmaster enforced h_rt, h_cpu, or h_vmem limit"
_AFTER_JOB = 100  # "assumedly after job": killed by a signal from Grid Engine (qdel, execd limits)


# -- reading Grid Engine's answers --------------------------------------------------------------


def parse_qsub_terse(stdout: str) -> str:
    """The job number from ``qsub -terse`` (``123`` or ``123.1-10:1``), strictly."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    match = _TERSE_RE.match(lines[0]) if len(lines) == 1 else None
    if match is None:
        raise SubmissionError(f"cannot read a job id from qsub -terse output: {stdout.strip()!r}")
    return match.group(1)


def expand_tasks(text: str) -> list[int]:
    """``"3-9:2,12"`` -> ``[3, 5, 7, 9, 12]``: the task ranges ``qstat`` prints for queued tasks."""
    tasks: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        span, _, step = part.partition(":")
        first, _, last = span.partition("-")
        if not first.isdigit() or (last and not last.isdigit()) or (step and not step.isdigit()):
            raise SubmissionError(f"cannot read task range {text!r} from qstat -xml")
        stop = int(last) if last else int(first)
        tasks.extend(range(int(first), stop + 1, int(step) if step else 1))
    return tasks


def parse_qstat_xml(text: str) -> list[tuple[str, str, str]]:
    """``(job number, state letters, tasks)`` for every ``job_list`` entry of ``qstat -xml``."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SubmissionError(f"cannot read qstat -xml output: {exc}") from exc
    entries = []
    for item in root.iter("job_list"):
        number = (item.findtext("JB_job_number") or "").strip()
        if number:
            entries.append((number, (item.findtext("state") or "").strip(), (item.findtext("tasks") or "").strip()))
    return entries


def sge_state(code: str, number: str) -> SchedulerState:
    """Normalise ``qstat``'s state letters (``qw``, ``hqw``, ``Eqw``, ``r``, ``dr``, ``s``...)."""
    if "E" in code:
        # The job cannot start (e.g. its directory is missing) and stays queued
        # until someone acts; it has not failed, so it is not reported as such.
        return pending(f"error state ({code}): 'qstat -j {number}' says why; "
                       f"'qmod -cj {number}' retries it, 'qdel {number}' removes it")
    if "d" in code:
        return running(f"being deleted ({code})") if "r" in code or "t" in code else pending(f"being deleted ({code})")
    if any(letter in code for letter in "sST"):
        return running(f"suspended ({code})")
    if "r" in code or "t" in code or "R" in code:
        return running("" if code == "r" else code)
    if "h" in code:
        return pending(f"on hold ({code}); 'qrls {number}' releases it")
    if "w" in code or "q" in code:
        return pending("")
    return SchedulerState(state=State.UNKNOWN, detail=code)


def parse_qacct(text: str) -> list[dict[str, str]]:
    """``qacct -j`` output -> one ``{field: value}`` per record (task); errors give no records."""
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if _QACCT_SEPARATOR.match(line):
            current = {}
            records.append(current)
            continue
        if current is None or not line.strip():
            continue
        key, _, value = line.partition(" ")
        current[key.strip()] = value.strip()
    return [r for r in records if r.get("jobnumber")]


def size_bytes(text: str) -> int | None:
    """``"3.430MB"`` -> bytes (Grid Engine prints powers of 1024); ``None`` when unreadable."""
    match = _SIZE_RE.match(text.strip())
    if not match:
        return None
    return int(float(match.group(1)) * _SIZE_UNIT[match.group(2).upper()])


def seconds(text: str) -> float | None:
    """``"3s"``, ``"0.010s"`` or ``"3"`` -> seconds."""
    try:
        return float(text.strip().rstrip("s"))
    except ValueError:
        return None


def qacct_time(text: str) -> str | None:
    """``"Tue Dec  1 10:37:34 2026"`` -> ISO 8601 (local time of the qmaster, as qacct prints it)."""
    try:
        return datetime.datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y").isoformat()
    except ValueError:
        return None


def _code(text: str) -> int | None:
    word = text.split()[0] if text.split() else ""
    return int(word) if word.lstrip("-").isdigit() else None


def accounting_state(
    record: Mapping[str, str], params: Mapping[str, Any], cancelled: bool
) -> SchedulerState | None:
    """Why a finished task ended, from its ``qacct`` record; ``None`` for a clean exit 0.

    Grid Engine's ``failed`` code tells who ended the task; the limits the job
    asked for (``params``) tell which limit a kill was about, because code 37
    covers h_rt, h_cpu and h_vmem alike and code 100 covers ``qdel`` as well as
    limits the execution daemon enforces.
    """
    fail = _code(record.get("failed", "")) or 0
    exit_status = _code(record.get("exit_status", ""))
    words = " ".join(record.get("failed", "").split())
    detail = f"Grid Engine: failed {words}" + (f", exit status {exit_status}" if exit_status is not None else "")
    if fail == 0:
        if not exit_status:
            return None
        if exit_status > 128:
            return failed(FailureReason.EXIT_CODE, f"killed by signal {exit_status - 128}")
        return failed(FailureReason.EXIT_CODE, f"exit status {exit_status}")
    if cancelled and fail == _AFTER_JOB:
        return failed(FailureReason.CANCELLED, "cancelled with 'reproman jobs --cancel' (qdel)")
    if fail in (_LIMIT_KILL, _AFTER_JOB):
        if _over_memory(record, params):
            return failed(FailureReason.OUT_OF_MEMORY, detail)
        if fail == _LIMIT_KILL or _over_walltime(record, params):
            return failed(FailureReason.WALLTIME, detail)
        return failed(FailureReason.CANCELLED, detail)
    # Setup failures before or around the job (output file, shell, working
    # directory, prolog...): the execution host could not run it.
    return failed(FailureReason.NODE_FAILURE, detail)


def _over_memory(record: Mapping[str, str], params: Mapping[str, Any]) -> bool:
    if "memory" not in params:
        return False
    used = size_bytes(record.get("maxvmem", ""))
    return used is not None and used >= 0.95 * memory_mb(params["memory"]) * 1024**2


def _over_walltime(record: Mapping[str, str], params: Mapping[str, Any]) -> bool:
    if "walltime" not in params:
        return False
    used = seconds(record.get("ru_wallclock", ""))
    return used is not None and used >= walltime_seconds(params["walltime"]) - 1


def usage_of(record: Mapping[str, str]) -> dict[str, Any]:
    """The figures users ask for, from one ``qacct`` record, in plain units."""
    return {
        "node": record.get("hostname"),
        "start": qacct_time(record.get("start_time", "")),
        "end": qacct_time(record.get("end_time", "")),
        "elapsed_s": seconds(record.get("ru_wallclock", "")),
        "cpu_s": seconds(record.get("cpu", "")),
        # ru_maxrss is left out: Grid Engine 8.1.9 prints the kilobyte count
        # with a thousands point ("107.863KB" for 105 MiB), which reads wrong.
        "max_vmem_bytes": size_bytes(record.get("maxvmem", "")),
        "exit_status": _code(record.get("exit_status", "")),
        "failed": " ".join(record.get("failed", "").split()) or None,
    }


# -- the submitter ---------------------------------------------------------------------------------


class _Piece:
    """One Grid Engine job (an array, or the launcher job) of a ReproMan job."""

    __slots__ = ("count", "job", "launcher", "offset", "params")

    def __init__(self, job: Any, params: Mapping[str, Any], offset: int, count: int, launcher: int) -> None:
        self.job = job
        self.params = params
        self.offset = offset
        self.count = count
        #: Number of subjobs when this is a launcher job (it stands for all of them), else 0.
        self.launcher = launcher

    def indices(self, tasks: Sequence[int] | None) -> list[int]:
        """Subjob indices of array ``tasks`` (1-based); ``None``: the whole piece."""
        if self.launcher:
            return list(range(self.launcher))
        if tasks is None:
            return list(range(self.offset, self.offset + self.count))
        return [self.offset + t - 1 for t in tasks if 1 <= t <= self.count]

    def indices_of(self, record: Mapping[str, str]) -> list[int]:
        task = record.get("taskid", "undefined")
        return self.indices([int(task)] if task.isdigit() else None)


class SGESubmitter(BatchSubmitter):
    """Submit to Grid Engine with ``qsub``; follow with ``qstat -xml`` (and ``qacct``); cancel with ``qdel``."""

    name: ClassVar[str] = "sge"
    script_name: ClassVar[str] = "submit.sge"
    supported: ClassVar[frozenset[str]] = frozenset(SGE_PARAMETERS)
    probe: ClassVar[str] = "qsub"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_array_size: int | None = None
        #: Final states of ids that left qstat and are fully accounted for (they cannot change).
        self._final: dict[str, dict[int, SchedulerState]] = {}

    # -- settings ------------------------------------------------------------------------------
    def settings(self) -> dict[str, str]:
        """Job-parameter defaults only; this submitter's own settings are read by :meth:`site`."""
        return {k: v for k, v in super().settings().items() if k not in SGE_SETTINGS}

    def site(self, key: str) -> str:
        """``memory_complex`` or ``parallel_environment`` for this resource (checked: one word)."""
        value = str(super().settings().get(key, SGE_SETTINGS[key])).strip()
        if not _NAME_RE.match(value):
            sections = " / ".join(f"[{s}]" for s in self.config_sections())
            raise ConfigError(f"{sections} {key} = {value!r} is not a Grid Engine name",
                              hint=f"Use one word, e.g. {key} = {SGE_SETTINGS[key]}.")
        return value

    # -- script ----------------------------------------------------------------------------------
    def directives(self, job: Any, params: Mapping[str, Any]) -> list[str]:
        """``#$`` options, in the order a person would write them."""
        jobdir = str(job.job_dir).rstrip("/")
        opts = [
            f"-N reproman-{job.jobid}",
            "-S /bin/sh",
            quote_option("-wd", jobdir, " "),
            # The runscript writes stdout.INDEX/stderr.INDEX itself; this log only
            # catches what Grid Engine and the shell say around it, for every task.
            quote_option("-o", f"{jobdir}/sge.log", " "),
            "-j y",
            "-V",
        ]
        if "queue" in params:
            opts.append(quote_option("-q", params["queue"], " "))
        if "account" in params:
            opts.append(quote_option("-A", params["account"], " "))
        per_subjob = int(params.get("num_processes", 1))
        slots = per_subjob * (self.launcher_concurrency(job, params) if params.get("launcher") else 1)
        if slots > 1:
            opts.append(f"-pe {self.site('parallel_environment')} {slots}")
        if "walltime" in params:
            opts.append(f"-l h_rt={hms(walltime_seconds(params['walltime']))}")
        if "memory" in params:
            # Grid Engine counts memory per slot; a subjob holds per_subjob slots.
            per_slot = math.ceil(memory_mb(params["memory"]) / per_subjob)
            opts.append(f"-l {self.site('memory_complex')}={per_slot}M")
        opts.extend(str(d) for d in params.get("directives", []))
        return opts

    def submission_script(self, job: Any) -> str:
        params = self.parameters(job)
        n = self.n_subjobs(job)
        runscript = runscript_path(job)
        head = f"#!/bin/sh\n# ReproMan job {job.jobid}: {n} subjob(s) on Grid Engine.\n"
        if params.get("launcher"):
            head += "# Launcher mode: one job runs every subjob in its slots (no array).\n"
            return (head + directive_lines("#$", self.directives(job, params))
                    + launcher_body(runscript, n, self.launcher_concurrency(job, params)))
        head += (
            "# Submitted as an array: qsub -t 1-COUNT submit.sge OFFSET\n"
            "# (OFFSET > 0 only when a large batch was split into several arrays).\n"
        )
        return (
            head
            + directive_lines("#$", self.directives(job, params))
            + 'offset="${1:-0}"\n'
            + 'case "${SGE_TASK_ID:-undefined}" in undefined) task=1 ;; *) task=$SGE_TASK_ID ;; esac\n'
            + "index=$((offset + task - 1))\n"
            + f'exec sh {shlex.quote(runscript)} "$index"\n'
        )

    # -- submit ------------------------------------------------------------------------------------
    def site_max_array_size(self) -> int | None:
        """``max_aj_tasks`` of the cell (0: unlimited); asked once per instance."""
        if self._max_array_size is None:
            result = self.session.execute_command(["qconf", "-sconf", "global"])
            match = re.search(r"^max_aj_tasks\s+(\d+)", result.stdout, re.MULTILINE)
            self._max_array_size = int(match.group(1)) if match else 0
        return self._max_array_size or None

    def submit(self, job: Any, script_path: str) -> str:
        params = self.parameters(job)
        n = self.n_subjobs(job)
        jobdir = str(job.job_dir).rstrip("/") or None
        if params.get("launcher"):
            return self._qsub([script_path], jobdir, job)
        limit = params.get("max_array_size")
        if limit is None and n > 1:
            limit = self.site_max_array_size()
        throttle = params.get("throttle")
        ids: list[str] = []
        try:
            for offset, count in chunks(n, int(limit) if limit else None):
                args: list[str] = []
                if n > 1:
                    args += ["-t", f"1-{count}"]
                    if throttle:
                        args += ["-tc", str(int(throttle))]
                if throttle and ids:
                    # Several arrays under one throttle: run them one after the other.
                    args += ["-hold_jid", ids[-1]]
                ids.append(self._qsub([*args, script_path, str(offset)], jobdir, job))
        except SubmissionError:
            if ids:
                self.session.execute_command(["qdel", *ids])
            raise
        return ",".join(ids)

    def _qsub(self, args: Sequence[str], cwd: str | None, job: Any) -> str:
        result = self.run(["qsub", "-terse", *args], f"qsub for job {job.jobid}", cwd=cwd)
        return parse_qsub_terse(result.stdout)

    # -- follow ----------------------------------------------------------------------------------------
    def scheduler_states(self, jobs: Sequence[Any]) -> Mapping[str, Mapping[int, SchedulerState]]:
        """One ``qstat -xml`` for every task of every job; accounting only for ids ``qstat`` forgot."""
        pieces = self._pieces(jobs)
        if not pieces:
            return {}
        # "$user" is qstat's own placeholder (not the shell's): this user's jobs
        # only, even where a site's sge_qstat file makes "-u *" the default.
        result = self.session.execute_command(["qstat", "-xml", "-u", "$user"])
        if result.returncode != 0:
            raise self.command_failed(result, "qstat -xml")
        states: dict[str, dict[int, SchedulerState]] = {}
        seen: set[str] = set()
        for number, code, tasks in parse_qstat_xml(result.stdout):
            piece = pieces.get(number)
            if piece is None:
                continue
            seen.add(number)
            state = sge_state(code, number)
            for index in piece.indices(expand_tasks(tasks) if tasks else None):
                put_state(states, piece.job.jobid, index, state)
        missing = {sid: piece for sid, piece in pieces.items() if sid not in seen}
        if missing:
            self._from_accounting(states, missing)
        return states

    def _pieces(self, jobs: Sequence[Any]) -> dict[str, _Piece]:
        """Grid Engine id -> the part of a job it runs."""
        out: dict[str, _Piece] = {}
        for job in jobs:
            ids = split_ids(getattr(job, "submission_id", None))
            params = self._job_params(job)
            n = self.n_subjobs(job)
            for sid, (offset, count) in zip(ids, chunk_offsets(n, len(ids))):
                out[sid] = _Piece(job, params, offset, count, n if params.get("launcher") else 0)
        return out

    def _job_params(self, job: Any) -> Mapping[str, Any]:
        try:
            return self.parameters(job)
        except Exception:  # a job submitted under another configuration
            return job.parameters or {}

    def accounting(self, sids: Sequence[str], job_dirs: Sequence[str] = ()) -> tuple[dict[str, list[dict[str, str]]], set[str]]:
        """``qacct`` records of ``sids`` and the ``job_dirs`` holding a cancel marker, in ONE command."""
        script = "".join(f"printf '== %s\\n' {shlex.quote(s)}; qacct -j {shlex.quote(s)} 2>&1; " for s in sids)
        script += "printf '== +cancelled\\n'; "
        script += "".join(
            f"[ -e {shlex.quote(d + '/' + layout.CANCELLED)} ] && printf '%s\\n' {shlex.quote(d)}; " for d in job_dirs
        )
        result = self.session.execute_command(script + "true")
        sections: dict[str, list[str]] = {}
        name = ""
        for line in result.stdout.splitlines():
            if line.startswith("== "):
                name = line[3:]
                sections[name] = []
            elif name:
                sections[name].append(line)
        records: dict[str, list[dict[str, str]]] = {}
        for sid in sids:
            text = "\n".join(sections.get(sid, []))
            records[sid] = parse_qacct(text)
            if not records[sid] and "not found" not in text:
                lgr.info("qacct -j %s gave no records: %s", sid, text.strip()[:200] or "no output")
        return records, set(sections.get("+cancelled", []))

    def _from_accounting(self, states: dict[str, dict[int, SchedulerState]], missing: Mapping[str, _Piece]) -> None:
        """States of tasks that left ``qstat``: their ``qacct`` record, or the cancel marker.

        ``qacct`` scans the whole accounting file, so once every task of an id
        is accounted for, its states are remembered and it is not asked again.
        """
        for sid, piece in missing.items():
            for index, state in self._final.get(sid, {}).items():
                put_state(states, piece.job.jobid, index, state)
        asked = {sid: piece for sid, piece in missing.items() if sid not in self._final}
        if not asked:
            return
        dirs = sorted({str(piece.job.job_dir) for piece in asked.values()})
        records, cancelled_dirs = self.accounting(list(asked), dirs)
        for sid, piece in asked.items():
            cancelled = str(piece.job.job_dir) in cancelled_dirs
            found: dict[int, SchedulerState | None] = {}
            for record in records.get(sid, []):
                said = accounting_state(record, piece.params, cancelled)
                for index in piece.indices_of(record):
                    found[index] = said
            expected = set(piece.indices(None))
            if cancelled:
                # Queued tasks removed by qdel never ran, so accounting never hears of them.
                for index in sorted(expected - set(found)):
                    found[index] = failed(FailureReason.CANCELLED,
                                          "cancelled with 'reproman jobs --cancel' before it started")
            for index, said in found.items():
                put_state(states, piece.job.jobid, index, said)
            if set(found) >= expected:
                self._final[sid] = {i: st for i, st in found.items() if st is not None}

    def usage(self, jobs: Sequence[Any]) -> dict[str, dict[int, dict[str, Any]]]:
        """Per-subjob usage (node, times, wallclock, CPU, peak memory) from accounting, in ONE command.

        Only tasks that accounting knows (finished ones) appear.
        """
        pieces = self._pieces(jobs)
        records, _ = self.accounting(list(pieces))
        usage: dict[str, dict[int, dict[str, Any]]] = {}
        for sid, piece in pieces.items():
            for record in records.get(sid, []):
                for index in piece.indices_of(record):
                    usage.setdefault(piece.job.jobid, {})[index] = usage_of(record)
        return usage

    # -- cancel ------------------------------------------------------------------------------------------
    def cancel(self, job: Any) -> None:
        """Write the cancel marker, then ``qdel`` every id; ids already gone are not errors."""
        ids = split_ids(getattr(job, "submission_id", None))
        if not ids:
            raise SubmissionError(f"job {job.jobid} has no submission id; nothing to cancel")
        marker = shlex.quote(f"{str(job.job_dir).rstrip('/')}/{layout.CANCELLED}")
        result = self.session.execute_command(f": > {marker} 2>/dev/null; qdel {' '.join(map(shlex.quote, ids))}")
        if result.returncode == 0:
            return
        lines = [ln.strip() for ln in (result.stdout + "\n" + result.stderr).splitlines() if ln.strip()]
        harmless = ("does not exist", "has registered the job", "has deleted job", "is already in deletion")
        if not lines or not all(any(h in ln for h in harmless) for ln in lines):
            raise self.command_failed(result, f"cancelling job {job.jobid}")


__all__ = [
    "SGE_PARAMETERS",
    "SGESubmitter",
    "accounting_state",
    "expand_tasks",
    "parse_qacct",
    "parse_qstat_xml",
    "parse_qsub_terse",
    "sge_state",
]
