"""What every batch-scheduler submitter shares.

Each scheduler module (:mod:`.slurm`, :mod:`.pbs`, :mod:`.condor`,
:mod:`.lsf`) only says how to spell directives, how to submit one array and
how to read the scheduler's answer. Everything that must behave the same
everywhere lives here, written once:

* **parameters**: the job's parameters merged over per-resource defaults from
  configuration, converted to their declared types, and rejected when the
  scheduler cannot honour them (never silently dropped);
* **array splitting**: a batch larger than ``max_array_size`` becomes several
  array submissions of balanced size, so the offsets can be recomputed from
  the submission id alone (see :func:`chunks`) and no extra state needs to
  survive between ``reproman run`` and a later ``reproman jobs``;
* **the launcher**: a shell fragment that runs every subjob inside one
  allocation (TACC-style) instead of an array;
* **running scheduler commands** through the session, turning failures into
  :class:`~reproman.errors.SubmissionError` with the scheduler's own words.

Configuration (read with :func:`reproman.plugins.get_config`)::

    [submitter-slurm]              # defaults for every resource
    queue = short
    account = lab42

    [submitter-slurm:hpc]          # defaults for the resource named "hpc" only
    directives = --constraint=skylake

Keys are job-parameter names (values spelled as on the command line).
Precedence: ``--job-parameter`` > ``[submitter-NAME:RESOURCE]`` >
``[submitter-NAME]``. A default for a parameter the scheduler does not
support is an error, like a job parameter would be. Keys that are settings of
the submitter itself rather than job parameters (``flavor`` for PBS) are read
from the same sections.
"""

from __future__ import annotations

import logging
import math
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from reproman.plugins import (
    GENERIC_JOB_PARAMETERS,
    ConfigError,
    FailureReason,
    JobFiles,
    JobSpec,
    SchedulerState,
    State,
    SubmissionError,
    Submitter,
    Usage,
    UsageError,
)

if TYPE_CHECKING:
    from reproman.plugins import CommandResult

lgr = logging.getLogger("reproman.submitters.common")

#: Job parameters that are about ReproMan's staging, not the scheduler; every submitter accepts them.
GENERIC_PARAMETERS = GENERIC_JOB_PARAMETERS

#: Settings of a submitter (not job parameters) that may appear in its config section.
SUBMITTER_SETTINGS = frozenset({"flavor"})


# -- small parsers ------------------------------------------------------------------

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE | re.ASCII)
_UNIT_MB = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0**2, "p": 1024.0**3}
#: The most memory a subjob may ask for, in MB (a pebibyte): more is a typo, and schedulers keep it in 64 bits.
MAX_MEMORY_MB = 1024**3
#: The longest walltime a subjob may ask for, in seconds (a year): more is a typo (or a unit mix-up).
MAX_WALLTIME = 365 * 86400
_MEMORY_HINT = "Use a number with a unit, e.g. 500M or 4G."
_WALLTIME_HINT = "Use HH:MM:SS, e.g. 01:30:00, or leave walltime out for the queue's default."


def memory_mb(value: Any) -> int:
    """``"4G"`` -> 4096, ``"500M"`` -> 500, ``"2GB"`` -> 2048; a bare number is MB (Slurm's convention).

    Every scheduler spells memory differently; converting once to whole
    megabytes lets each module print the unit its scheduler wants. Zero
    (which would have become 1 MB) and more than :data:`MAX_MEMORY_MB` are
    refused as the usage errors they are, before the job exists.
    """
    match = _MEMORY_RE.match(str(value))
    if not match:
        raise UsageError(f"cannot read memory {_shown(value)}", hint=_MEMORY_HINT)
    number, unit = match.groups()
    amount = float(number) * _UNIT_MB[unit.lower()]
    if amount <= 0:
        raise UsageError(f"memory must be more than zero, got {_shown(value)}", hint=_MEMORY_HINT)
    if amount > MAX_MEMORY_MB:
        raise UsageError(f"memory {_shown(value)} is more than the 1P a subjob may ask for", hint=_MEMORY_HINT)
    return max(1, math.ceil(amount))


def walltime_seconds(value: Any) -> int:
    """``"HH:MM:SS"``, ``"MM:SS"``, ``"D-HH:MM:SS"`` or plain seconds -> seconds.

    Zero is refused, not passed on: Slurm reads ``--time=0`` as no limit at
    all while PBS ends the job at once. So is more than :data:`MAX_WALLTIME`.
    """
    text = str(value).strip()
    days = 0
    wrong = UsageError(f"cannot read walltime {_shown(value)}", hint=_WALLTIME_HINT)
    if len(text) > 40:  # thousands of digits would pass isdigit() and fail int()
        raise wrong
    if "-" in text:
        day_text, _, text = text.partition("-")
        if not (day_text.isascii() and day_text.isdigit()):
            raise wrong
        days = int(day_text)
    parts = text.split(":")
    if not parts or len(parts) > 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise wrong
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    total = days * 86400 + seconds
    if total == 0:
        raise UsageError(f"walltime must be more than zero, got {_shown(value)}", hint=_WALLTIME_HINT)
    if total > MAX_WALLTIME:
        raise UsageError(f"walltime {_shown(value)} is more than the year a subjob may ask for", hint=_WALLTIME_HINT)
    return total


def _shown(value: Any) -> str:
    """A user's value for a message: quoted, cut short if long."""
    text = str(value)
    return repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text)} characters)"


def hms(seconds: int) -> str:
    """Seconds -> ``H:MM:SS`` (hours may exceed 24), the spelling PBS and Slurm both read."""
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def chunks(n_subjobs: int, max_size: int | None) -> list[tuple[int, int]]:
    """Split ``n_subjobs`` into ``(offset, count)`` arrays of at most ``max_size``.

    The chunks are balanced (sizes differ by at most one, larger first) so
    that the offsets follow from ``n_subjobs`` and the number of chunks alone:
    :func:`chunk_offsets` recomputes them from a submission id that lists
    several scheduler ids, without remembering the size that was used.
    """
    if n_subjobs <= 0:
        return []
    if not max_size or max_size >= n_subjobs:
        return [(0, n_subjobs)]
    if max_size < 1:
        raise SubmissionError(f"max_array_size must be at least 1, got {max_size}")
    return chunk_offsets(n_subjobs, math.ceil(n_subjobs / max_size))


def chunk_offsets(n_subjobs: int, n_chunks: int) -> list[tuple[int, int]]:
    """``(offset, count)`` of each of ``n_chunks`` balanced chunks (see :func:`chunks`)."""
    n_chunks = max(1, min(n_chunks, n_subjobs)) if n_subjobs else 1
    base, extra = divmod(n_subjobs, n_chunks)
    out: list[tuple[int, int]] = []
    offset = 0
    for k in range(n_chunks):
        count = base + (1 if k < extra else 0)
        out.append((offset, count))
        offset += count
    return out


def split_ids(submission_id: str | None) -> list[str]:
    """The scheduler ids in a submission id (``"123"`` or ``"123,124"`` after splitting)."""
    if not submission_id:
        return []
    return [part.strip() for part in str(submission_id).split(",") if part.strip()]


def launcher_body(runscript: str, n_subjobs: int, concurrency: int, runner: str = "") -> str:
    """Shell lines that run every subjob inside the current allocation.

    TACC's launcher idea with POSIX tools only: ``xargs -P`` keeps
    ``concurrency`` subjobs running and starts the next as one ends, so a
    slot never idles while subjobs remain. ``runner`` (e.g. ``srun -N1 -n1
    --exact``) spreads subjobs over the nodes of a multi-node allocation.
    The status files carry each subjob's result, so the launcher's own exit
    status only says whether every subjob succeeded.
    """
    words = f"{runner} sh" if runner else "sh"
    return (
        f"# Launcher: {n_subjobs} subjobs, {concurrency} at a time, in this one allocation.\n"
        f"i=0\n"
        f'while [ "$i" -lt {n_subjobs} ]; do echo "$i"; i=$((i + 1)); done \\\n'
        f"  | xargs -n 1 -P {concurrency} {words} {shlex.quote(runscript)}\n"
    )


def runscript_path(job: JobSpec) -> str:
    return f"{str(job.job_dir).rstrip('/')}/{JobFiles.RUNSCRIPT}"


#: Characters that end or split a directive line in some parser: C0/C1 controls
#: (newline, carriage return, tab, escape...) and Unicode line separators.
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: A pass-through directive for the schedulers whose directives are options (``-l ...``, ``--x=y``).
OPTION_DIRECTIVE = (re.compile(r"-\S"), "an option such as --constraint=skylake or -l nodes=2")


def check_directive_values(
    scheduler: str,
    values: Mapping[str, Any],
    *,
    forbidden: str = "",
    directive_form: tuple[re.Pattern[str], str] | None = None,
) -> None:
    """Refuse any value that could break out of its line of the submission script.

    Called by every submitter where it renders directives, with everything
    that goes into them: the job's parameters (``directives`` items one by
    one) and the job directory. No value may contain a newline or another
    control character: ``queue=x"<newline>touch /tmp/pwned`` would otherwise
    put a command on a line of its own. ``forbidden`` adds the characters a
    scheduler's directive parser cannot take inside a value (PBS and LSF
    have no escape for ``"``; HTCondor expands ``$(...)`` macros), and
    ``directive_form`` (pattern, description) is what each pass-through
    ``directives`` item must look like.

    Example, as the first line of a submitter's ``directives()``::

        check_directive_values("slurm", {**params, "job directory": job.job_dir},
                               directive_form=OPTION_DIRECTIVE)
    """
    for name, value in values.items():
        items = value if name == "directives" and isinstance(value, (list, tuple)) else [value]
        for item in items:
            if item is None or isinstance(item, (bool, int, float)):
                continue
            text = str(item)
            shown = text if len(text) <= 60 else text[:57] + "..."
            what = "directive" if name == "directives" else f"job parameter {name}" if name != "job directory" else name
            if _LINE_BREAKING.search(text):
                raise SubmissionError(
                    f"{what} {shown!r} contains a newline or another control character",
                    hint=f"Each {scheduler} directive is one line; remove it.",
                )
            if name == "directives":
                if directive_form is not None and not directive_form[0].match(text):
                    raise SubmissionError(f"{what} {shown!r} is not a {scheduler} directive",
                                          hint=f"Give {directive_form[1]}.")
                continue
            bad = next((c for c in forbidden if c in text), None)
            if bad is not None:
                raise SubmissionError(f"{what} {shown!r}: {scheduler} directives cannot contain {bad!r}")


def directive_lines(prefix: str, options: Iterable[str]) -> str:
    """``#SBATCH --mem=4096M`` lines; a value with spaces is quoted for the scheduler's parser."""
    return "".join(f"{prefix} {opt}\n" for opt in options)


def quote_option(flag: str, value: Any, sep: str = "=") -> str:
    """``--output=/a b/c`` quoted as the schedulers' directive parsers expect (double quotes)."""
    text = str(value)
    # '#' too: Slurm reads an unquoted "a#b" as "a" followed by a comment.
    if re.search(r"[\s\"'\\$`#]", text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{flag}{sep}{text}"


# -- the shared submitter --------------------------------------------------------------


class BatchSubmitter(Submitter):
    """A :class:`~reproman.jobs.contracts.Submitter` for a batch scheduler.

    Subclasses declare :attr:`supported` (exactly the ``job_parameters`` of
    their :class:`~reproman.plugins.records.SubmitterType`) and implement the
    scheduler-specific methods.
    """

    #: Job parameters this scheduler honours; anything else is an error.
    supported: ClassVar[frozenset[str]] = frozenset()
    #: Executable whose absence means "this scheduler is not installed here".
    probe: ClassVar[str] = ""

    # -- parameters ---------------------------------------------------------------
    def config_sections(self) -> list[str]:
        """Config sections read for defaults, lowest precedence first."""
        base = f"submitter-{self.name}"
        sections = [base]
        resource_name = getattr(self.resource, "name", None)
        if resource_name:
            sections.append(f"{base}:{resource_name}")
        return sections

    def settings(self) -> dict[str, str]:
        """Raw merged config for this submitter and resource (defaults and settings)."""
        from reproman.plugins import get_config

        config = get_config()
        merged: dict[str, str] = {}
        for section in self.config_sections():
            merged.update(config.section(section))
        return merged

    def parameters(self, job: JobSpec) -> dict[str, Any]:
        """The job's parameters over configured defaults, typed and checked.

        Raises :class:`SubmissionError` naming the parameter and the
        scheduler when something cannot be honoured, because a silently
        ignored ``memory=64G`` is a job killed hours later; a value that
        does not convert is a :class:`UsageError` (a :class:`ConfigError`
        when it was configured), as core's own checks say it.
        """
        from reproman.plugins import JOB_PARAMETERS

        declared = {p.name: p for p in JOB_PARAMETERS}
        defaults = {k: v for k, v in self.settings().items() if k not in SUBMITTER_SETTINGS}
        given = {k: v for k, v in (job.parameters or {}).items() if v is not None}
        merged: dict[str, Any] = {}
        for source, values in (("configuration", defaults), ("job parameters", given)):
            for key, value in values.items():
                key = key.replace("-", "_")
                if key in GENERIC_PARAMETERS:
                    continue
                if key not in self.supported:
                    known = ", ".join(sorted(self.supported))
                    error = ConfigError if source == "configuration" else SubmissionError
                    where = f" (from [{' / '.join(self.config_sections())}])" if source == "configuration" else ""
                    raise error(
                        f"the {self.name} submitter does not support the job parameter {key!r}{where}",
                        hint=f"Supported: {known}. Pass scheduler options through 'directives'.",
                    )
                param = declared.get(key)
                try:
                    merged[key] = param.convert(value) if param is not None else value
                except (TypeError, ValueError) as exc:
                    bad = ConfigError if source == "configuration" else UsageError
                    raise bad(f"job parameter {key}={_shown(value)}: {exc}") from exc
        if merged.get("launcher") is False:
            merged.pop("launcher")
        directives = merged.get("directives")
        if isinstance(directives, str):
            merged["directives"] = [directives]
        if directives is not None:
            merged["directives"] = [d for d in merged["directives"] if str(d).strip()]
        for key in ("num_processes", "num_nodes", "gpus", "throttle", "max_array_size"):
            if key in merged and int(merged[key]) < 1:
                raise UsageError(f"job parameter {key} must be at least 1, got {merged[key]}")
        return merged

    def is_launcher(self, job: JobSpec) -> bool:
        """Whether ``job`` went in as one launcher allocation: from its parameters over the configuration.

        The same decision :meth:`submission_script` took, so a
        ``[submitter-NAME] launcher = yes`` default is followed as a launcher
        too (its subjobs are not array tasks the scheduler could name). A job
        whose parameters the configuration now refuses was submitted under
        another one: its own parameters decide.
        """
        try:
            return bool(self.parameters(job).get("launcher"))
        except (ConfigError, SubmissionError):
            return bool((job.parameters or {}).get("launcher"))

    # -- running scheduler commands -----------------------------------------------------
    def run(self, command: str | Sequence[str], what: str, *, cwd: str | None = None) -> CommandResult:
        """Run a scheduler command; a non-zero exit becomes a :class:`SubmissionError`."""
        result = self.session.execute_command(command, cwd=cwd)
        if result.returncode != 0:
            raise self.command_failed(result, what)
        return result

    def command_failed(self, result: CommandResult, what: str) -> SubmissionError:
        text = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()
        detail = " / ".join(line.strip() for line in text[-3:])
        hint = None
        if result.returncode == 127 and self.probe:
            hint = f"Is {self.name} installed on the resource ({self.probe} not found)?"
        return SubmissionError(f"{what} failed (exit {result.returncode}): {detail}", hint=hint)

    def n_subjobs(self, job: JobSpec) -> int:
        n = int(getattr(job, "n_subjobs", 0) or len(getattr(job, "subjobs", []) or []))
        return max(n, 1)

    def launcher_concurrency(self, job: JobSpec, params: Mapping[str, Any]) -> int:
        """Subjobs at once in launcher mode: ``throttle``, else the width the queue can give.

        Never one task per subjob by default: an allocation of N tasks for
        a 1,000-subjob batch waits forever on most clusters.
        """
        n = self.n_subjobs(job)
        if params.get("throttle"):
            return min(int(params["throttle"]), n)
        return max(1, min(self.launcher_width(job, params), n))

    def launcher_width(self, job: JobSpec, params: Mapping[str, Any]) -> int:
        """How many subjobs at once the queue offers one launcher allocation (no throttle given).

        Schedulers that can be asked cheaply override this (Slurm asks
        ``sinfo``); the others need ``throttle``.
        """
        raise SubmissionError(
            f"launcher mode on {self.name} needs throttle=N: how many subjobs run at once in the one allocation",
            hint="Add --jp throttle=N, N at most the CPUs of a node divided by num_processes.",
        )

    def usage(self, jobs: Sequence[JobSpec]) -> Mapping[str, Mapping[int, Usage]] | None:
        """Usage of finished subjobs from the same records :meth:`scheduler_states` reads.

        Batch schedulers keep usage with the finished job (PBS
        ``resources_used``, HTCondor's history ads, LSF's ``bjobs`` fields),
        so one status query serves. When the scheduler has forgotten every
        one of them, there is nothing to ask any more: ``None``.
        """
        states = self.scheduler_states(jobs)
        found: dict[str, dict[int, Usage]] = {}
        known = False
        for jobid, subjobs in states.items():
            for index, state in subjobs.items():
                known = known or state.known
                if state.known and state.state.finished and state.usage is not None:
                    found.setdefault(jobid, {})[index] = state.usage
        return found if known else None

    def cancel_all(self, job: JobSpec, argv_prefix: Sequence[str], ignore: Sequence[str]) -> None:
        """Cancel every scheduler id of ``job``; messages about finished jobs are not errors."""
        ids = split_ids(getattr(job, "submission_id", None))
        if not ids:
            raise SubmissionError(f"job {job.jobid} has no submission id; nothing to cancel")
        result = self.session.execute_command([*argv_prefix, *self.cancel_ids(ids)])
        if result.returncode != 0:
            text = result.stderr + result.stdout
            lines = [ln for ln in text.splitlines() if ln.strip()]
            if not lines or not all(any(marker.lower() in ln.lower() for marker in ignore) for ln in lines):
                raise self.command_failed(result, f"cancelling job {job.jobid}")

    def cancel_ids(self, ids: list[str]) -> list[str]:
        return ids


def index_map(jobs: Sequence[JobSpec], n_of: Callable[[JobSpec], int]) -> dict[str, tuple[str, int]]:
    """Scheduler id -> (jobid, offset of its first subjob) for all followed jobs."""
    out: dict[str, tuple[str, int]] = {}
    for job in jobs:
        ids = split_ids(getattr(job, "submission_id", None))
        if not ids:
            continue
        for sid, (offset, _count) in zip(ids, chunk_offsets(n_of(job), len(ids))):
            out[sid] = (job.jobid, offset)
    return out


def put_state(
    states: dict[str, dict[int, SchedulerState]], jobid: str, index: int, state: SchedulerState | None
) -> None:
    if state is not None:
        states.setdefault(jobid, {})[index] = state


def failed(reason: FailureReason, detail: str = "", exit_code: int | None = None,
           usage: Usage | None = None) -> SchedulerState:
    return SchedulerState(state=State.FAILED, reason=reason, detail=detail, exit_code=exit_code, usage=usage)


def ended(detail: str = "", exit_code: int | None = 0, usage: Usage | None = None) -> SchedulerState:
    """Finished, with no failure to report: the subjob's own status line says the rest."""
    return SchedulerState(state=State.SUCCEEDED, detail=detail, exit_code=exit_code, usage=usage)


def pending(detail: str = "", blocked: bool = False) -> SchedulerState:
    return SchedulerState(state=State.PENDING, detail=detail, blocked=blocked)


def running(detail: str = "") -> SchedulerState:
    return SchedulerState(state=State.RUNNING, detail=detail)


def for_launcher(state: SchedulerState | None) -> SchedulerState | None:
    """The one allocation's state, as said of each subjob it runs.

    While the allocation is queued its state (and pending reason) applies to
    every subjob; while it runs, subjobs without a status line of their own
    are waiting for a slot in it. Once it ended, a known cause (walltime,
    cancelled, out of memory...) explains the subjobs that wrote no final
    line; any other end (the launcher's own exit code reflects only whether
    some subjob failed) just says the allocation is over, so subjobs that
    wrote nothing are declared lost after the grace period.
    """
    if state is None or not state.known:
        return state
    if state.state is State.RUNNING:
        # Subjobs that wrote no status yet wait for a slot inside the allocation.
        return pending("waiting for a slot in the running launcher allocation")
    if not state.state.finished:
        return state
    if state.state is State.FAILED and state.reason is not None and state.reason.specific:
        return failed(state.reason, state.detail)
    return ended("its launcher allocation ended", exit_code=None)


def forget_missing(states: dict[str, dict[int, SchedulerState]], jobs: Sequence[JobSpec], n_of: Callable[[JobSpec], int]) -> None:
    """Every subjob of ``jobs`` (with a submission id) that no answer mentioned: unknown to the scheduler."""
    for job in jobs:
        if not split_ids(getattr(job, "submission_id", None)):
            continue
        known = states.setdefault(job.jobid, {})
        for index in range(n_of(job)):
            known.setdefault(index, SchedulerState.forgotten())


def exit_status(code: int | None, signal: int | None = None) -> int | None:
    """A shell-style exit code: the code, or 128 + the signal that killed it."""
    if signal:
        return 128 + signal
    return code


def as_mapping(states: dict[str, dict[int, SchedulerState]]) -> Mapping[str, Mapping[int, SchedulerState]]:
    return states
