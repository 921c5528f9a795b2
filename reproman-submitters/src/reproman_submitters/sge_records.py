"""Reading Grid Engine's answers: ``qsub -terse``, ``qstat -xml`` and ``qacct -j``, into ReproMan's terms.

Pure functions (no session, no configuration), so each can be checked on
text that a real Son of Grid Engine 8.1.9 printed; :mod:`.sge` runs the
commands. What Grid Engine says and what it means here:

* ``qstat -xml -s prsz`` lists queued, running and suspended tasks, and the
  *zombies*: the last ``finished_jobs`` (sge_conf(5), 100 by default)
  finished jobs the qmaster keeps in memory, with the task ranges that
  ended. A task leaves the live lists the moment it ends.
* ``qacct -j ID`` reads the accounting file (the history): one record per
  task that ran, with Grid Engine's ``failed`` code, the ``exit_status``
  (128 + N for a signal) and the usage figures. Tasks deleted while queued
  never ran and have no record.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any, NamedTuple

from reproman.plugins import FailureReason, SchedulerState, State, SubmissionError, Usage
from reproman_submitters.common import ended, failed, memory_mb, pending, running, walltime_seconds

_TERSE_RE = re.compile(r"^(\d+)(?:\.\d+-\d+:\d+)?$")
_QACCT_SEPARATOR = re.compile(r"^={20,}\s*$")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)B?$", re.IGNORECASE)
_SIZE_UNIT = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}

#: Grid Engine's ``failed`` codes (sge_status(5)) for a task that ran and was
#: killed: 37 "qmaster enforced h_rt, h_cpu, or h_vmem limit"; 100 "assumedly
#: after job", the job script ended by a signal, whoever sent it (``qdel``, a
#: limit the execution daemon enforces, the kernel's OOM killer, or a ``kill``
#: from the job itself all give the same record). Any other non-zero code is
#: a failure to set the task up.
LIMIT_KILL = 37
AFTER_JOB = 100


def parse_qsub_terse(stdout: str) -> str:
    """The job number from ``qsub -terse`` (``123`` or ``123.1-10:1``), strictly.

    qsub prints its warnings on the same stream (a ``-N`` among the user's
    directives gives ``warning: "-N" option has already been set, overriding
    previous setting``) and still queues the job: those lines are passed
    over, or the job would run with no record of its id.
    """
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    match = _TERSE_RE.match(lines[0]) if len(lines) == 1 else None
    if match is None:
        raise SubmissionError(f"cannot read a job id from qsub -terse output: {stdout.strip()!r}")
    return match.group(1)


def expand_tasks(text: str) -> list[int]:
    """``"3-9:2,12"`` -> ``[3, 5, 7, 9, 12]``: the task ranges ``qstat`` prints for queued and zombie tasks."""
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


class QstatEntry(NamedTuple):
    """One ``job_list`` element of ``qstat -xml``: some tasks of one job in one state."""

    number: str
    name: str
    state: str
    #: Task ranges (``"3-9:2"``); empty for a job that is not an array.
    tasks: str

    @property
    def zombie(self) -> bool:
        """Ended: listed by ``-s z`` from the qmaster's memory of finished jobs."""
        return self.state == "z"


def _xml(text: str, what: str) -> ET.Element:
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise SubmissionError(f"cannot read {what} output: {exc}") from exc


def parse_qstat_xml(text: str) -> list[QstatEntry]:
    """Every ``job_list`` entry of ``qstat -xml`` (live and zombie alike)."""
    entries = []
    for item in _xml(text, "qstat -xml").iter("job_list"):
        number = (item.findtext("JB_job_number") or "").strip()
        if number:
            entries.append(QstatEntry(number, (item.findtext("JB_name") or "").strip(),
                                      (item.findtext("state") or "").strip(), (item.findtext("tasks") or "").strip()))
    return entries


def parse_queue_slots(text: str) -> dict[str, int]:
    """``qstat -f -xml``: queue instance (``all.q@node1``) -> its slots."""
    slots: dict[str, int] = {}
    for item in _xml(text, "qstat -f -xml").iter("Queue-List"):
        name = (item.findtext("name") or "").strip()
        total = (item.findtext("slots_total") or "").strip()
        if name and total.isdigit():
            slots[name] = int(total)
    return slots


def sge_state(code: str, number: str, held_by_predecessor: bool = False) -> SchedulerState:
    """Normalise ``qstat``'s state letters (``qw``, ``hqw``, ``Eqw``, ``r``, ``dr``, ``s``...), with the reason.

    ``held_by_predecessor``: the job waits for an earlier array of the same
    ReproMan job (``-hold_jid``, a split array under one throttle), so its
    hold is ReproMan's own and ``qrls`` is not the advice to give.
    """
    if "E" in code:
        # Grid Engine could not start it (a missing directory, an unreadable
        # script...) and keeps it queued in error until someone acts.
        return pending(f"Grid Engine put it in error state ({code}): 'qstat -j {number}' says why, "
                       f"'qmod -cj {number}' retries it, 'qdel {number}' removes it", blocked=True)
    if "d" in code:
        return running(f"being deleted ({code})") if "r" in code or "t" in code else pending(f"being deleted ({code})")
    if any(letter in code for letter in "sST"):
        return running(f"suspended ({code})")
    if "t" in code:
        return running("being transferred to its execution host")
    if "r" in code or "R" in code:
        return running("" if code == "r" else f"restarted ({code})")
    if "h" in code:
        if held_by_predecessor:
            return pending(f"waiting for the previous array of this job to finish (-hold_jid; {code})")
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


def code_of(text: str) -> int | None:
    """The number a ``failed`` or ``exit_status`` field starts with (``"100 : assumedly after job"``)."""
    word = text.split()[0] if text.split() else ""
    return int(word) if word.lstrip("-").isdigit() else None


def usage_of(record: Mapping[str, str]) -> Usage:
    """Elapsed, CPU time, peak RSS and node of one ``qacct`` record.

    ``ru_maxrss``: the kernel counts it in kilobytes, and qacct (8.1.9)
    prints that count as if it were bytes ("108.094KB" for 110,688 kB, the
    108 MiB a task used), so the figure is scaled once more by 1024.
    """
    rss = size_bytes(record.get("ru_maxrss", ""))
    return Usage(
        elapsed=seconds(record.get("ru_wallclock", "")),
        cpu_time=seconds(record.get("cpu", "")),
        max_rss=rss * 1024 if rss is not None else None,
        node=record.get("hostname", ""),
    )


def accounting_state(record: Mapping[str, str], params: Mapping[str, Any], cancelled: bool,
                     memory_error: bool = False) -> SchedulerState:
    """How a finished task ended, from its ``qacct`` record (with its usage).

    Grid Engine's ``failed`` code tells who ended the task; the limits the job
    asked for (``params``) tell which limit a kill was about, because code 37
    covers h_rt, h_cpu and h_vmem alike and code 100 covers ``qdel`` as well as
    limits the execution daemon enforces: a code-100 kill within every limit
    asked for is a ``qdel``. ``cancelled``: ReproMan's cancel marker is in the
    job directory (``reproman jobs --cancel`` ran ``qdel``).
    """
    usage = usage_of(record)
    fail = code_of(record.get("failed", "")) or 0
    status = code_of(record.get("exit_status", ""))
    words = " ".join(record.get("failed", "").split())
    detail = f"Grid Engine: failed {words}" + (f", exit status {status}" if status is not None else "")
    if fail == 0:
        if not status:
            return ended(exit_code=0, usage=usage)
        if "memory" in params and (memory_error or _over_memory(record, params, MEMORY_NEAR)):
            # A virtual-memory limit (h_vmem) is not a kill: the allocation that would
            # cross it is refused, and the command fails as it handles that.
            peak = record.get("maxvmem", "?")
            why = "its stderr reports a failed allocation" if memory_error else f"peak virtual memory {peak}"
            return failed(FailureReason.OUT_OF_MEMORY,
                          f"it could not get more memory under its {params['memory']} limit ({why})", status, usage)
        if status > 128:
            return failed(FailureReason.EXIT_CODE, f"killed by signal {status - 128}", status, usage)
        return failed(FailureReason.EXIT_CODE, f"exit status {status}", status, usage)
    if cancelled and fail == AFTER_JOB:
        return failed(FailureReason.CANCELLED, "cancelled with 'reproman jobs --cancel' (qdel)", status, usage)
    if fail in (LIMIT_KILL, AFTER_JOB):
        if _over_memory(record, params):
            return failed(FailureReason.OUT_OF_MEMORY, detail, status, usage)
        if fail == LIMIT_KILL or _over_walltime(record, params):
            return failed(FailureReason.WALLTIME, detail, status, usage)
        # The job's shell (ReproMan's runscript) was killed, and no limit it
        # asked for was reached: that is qdel. A kill of the command itself
        # leaves the runscript alive to record the exit code (failed 0), so
        # only a kill aimed at the runscript's own shell reads the same.
        return failed(FailureReason.CANCELLED, f"qdel ({detail})", status, usage)
    # Setup failures before or around the job (output file, shell, working
    # directory, prolog...): the execution host could not run it.
    return failed(FailureReason.NODE_FAILURE, detail, status, usage)


#: Peak virtual memory at this fraction of the limit (or more) counts as having hit it.
MEMORY_AT = 0.95
#: ...and, for a command that failed on its own, as having run into it.
MEMORY_NEAR = 0.9
#: What a command's stderr says when an allocation was refused (Python, C/C++ runtimes, shells, R, Java).
MEMORY_ERROR_PATTERN = (r"MemoryError|Cannot allocate memory|bad_alloc|[Oo]ut of memory|"
                        r"cannot allocate vector|OutOfMemoryError|memory exhausted")


def _over_memory(record: Mapping[str, str], params: Mapping[str, Any], fraction: float = MEMORY_AT) -> bool:
    if "memory" not in params:
        return False
    used = size_bytes(record.get("maxvmem", ""))
    return used is not None and used >= fraction * memory_mb(params["memory"]) * 1024**2


def _over_walltime(record: Mapping[str, str], params: Mapping[str, Any]) -> bool:
    if "walltime" not in params:
        return False
    used = seconds(record.get("ru_wallclock", ""))
    return used is not None and used >= walltime_seconds(params["walltime"]) - 1
