"""IBM Spectrum LSF: job arrays via ``bsub -J 'name[1-N]%T' < submit.lsf``.

NOT run against a live LSF here (LSF is proprietary, not in Debian): tested
against the documented command-line behaviour and output formats with fake
``bsub``, ``bjobs`` and ``bkill`` executables (:mod:`reproman.testing.fakesched`).

* The script goes to ``bsub`` on standard input, the only way LSF reads its
  ``#BSUB`` lines; the array range and dependency, which differ between the
  pieces of a split array, go on the command line (which wins over ``#BSUB``).
* LSF array indices start at 1: subjob = ``LSB_JOBINDEX - 1 + REPROMAN_OFFSET``;
  the offset reaches the job through the submission environment, which LSF
  copies to the job.
* ``bsub`` says ``Job <123> is submitted to [default ]queue <normal>.``; only
  that exact sentence is accepted.
* One ``bjobs -a -noheader -o '...'`` per poll is both the queue and LSF's
  memory of finished jobs: finished elements stay visible for
  ``CLEAN_PERIOD`` (1 h by default) with their ``exit_reason`` and usage
  (``run_time``, ``cpu_used``, ``max_mem``, ``exec_host``); after that bjobs
  says "is not found" and they are reported forgotten. Pending elements
  carry ``pend_reason``.
* Memory: ``memory`` is what one subjob needs. ``-M`` (the limit, written
  with an explicit ``MB`` unit, which LSF 9.1.1 and later read whatever
  ``LSF_UNIT_FOR_LIMITS`` says) is per process by default and per job with
  ``LSB_JOB_MEMLIMIT=y``; it gets the whole amount, right in both cases.
  The reservation names its method, so it does not depend on
  ``RESOURCE_RESERVE_PER_TASK`` (which makes a plain ``rusage[mem=]`` per
  task instead of per host): ``rusage[mem=NMB/job]`` reserves the whole
  request once for the job (LSF 10.1.0.9 and later), ``/host`` per host when
  ``num_nodes`` spreads it (memory is per node there, as on Slurm and PBS).
* Walltime (``-W``) is in whole minutes, rounded up.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from reproman.plugins import FailureReason, JobSpec, SchedulerState, State, SubmissionError, Usage
from reproman_submitters.common import (
    OPTION_DIRECTIVE,
    BatchSubmitter,
    check_directive_values,
    chunks,
    directive_lines,
    ended,
    failed,
    for_launcher,
    forget_missing,
    index_map,
    launcher_body,
    memory_mb,
    pending,
    put_state,
    quote_option,
    running,
    runscript_path,
    walltime_seconds,
)
from reproman_submitters.hooks import LSF
from reproman_submitters.lookup import RETENTION_MARGIN, Answer, Lookup, decide, seconds_since, started

_SUBMITTED_RE = re.compile(r"^Job <(\d+)> is submitted to (?:default )?queue <[^<>]+>\.$")
#: bjobs -o fields; pend_reason last, so a reason that contains the delimiter still parses.
BJOBS_FIELDS = ("jobid", "jobindex", "stat", "exit_code", "exit_reason", "run_time", "cpu_used", "max_mem",
                "exec_host", "pend_reason")
BJOBS_FORMAT = " ".join(BJOBS_FIELDS) + " delimiter='|'"

_TERM_REASONS: dict[str, FailureReason] = {
    "TERM_RUNLIMIT": FailureReason.WALLTIME,
    "TERM_CPULIMIT": FailureReason.WALLTIME,
    "TERM_DEADLINE": FailureReason.WALLTIME,
    "TERM_MEMLIMIT": FailureReason.OUT_OF_MEMORY,
    "TERM_SWAP": FailureReason.OUT_OF_MEMORY,
    "TERM_OWNER": FailureReason.CANCELLED,
    "TERM_FORCE_OWNER": FailureReason.CANCELLED,
    "TERM_ADMIN": FailureReason.CANCELLED,
    "TERM_FORCE_ADMIN": FailureReason.CANCELLED,
    "TERM_PREEMPT": FailureReason.PREEMPTED,
    "TERM_HOST": FailureReason.NODE_FAILURE,
    "TERM_LOAD": FailureReason.NODE_FAILURE,
    "TERM_ZOMBIE": FailureReason.NODE_FAILURE,
}


def lsf_state(stat: str, exit_code: str = "-", exit_reason: str = "-", pend_reason: str = "",
              usage: Usage | None = None) -> SchedulerState | None:
    """Normalise one ``bjobs -o`` row (``stat``, ``exit_code``, ``exit_reason``, ``pend_reason``)."""
    stat = stat.strip().upper()
    exit_reason = "" if exit_reason.strip() == "-" else exit_reason.strip()
    pend_reason = "" if pend_reason.strip() == "-" else pend_reason.strip().rstrip(";")
    if stat in ("PEND", "PSUSP", "WAIT"):
        return pending("suspended while pending" if stat == "PSUSP" else pend_reason)
    if stat in ("RUN", "PROV"):
        return running()
    if stat in ("USUSP", "SSUSP"):
        return running("suspended")
    code = int(exit_code) if exit_code.strip().isdigit() else None
    if stat == "DONE":
        return ended(exit_code=0, usage=usage)
    if stat == "EXIT":
        term = exit_reason.split(":", 1)[0].strip()
        detail = ", ".join(x for x in (exit_reason, f"exit code {code}" if code is not None else "") if x)
        return failed(_TERM_REASONS.get(term, FailureReason.EXIT_CODE), detail, code, usage)
    if stat in ("ZOMBI", "UNKWN"):
        return failed(FailureReason.NODE_FAILURE, stat) if stat == "ZOMBI" else \
            SchedulerState(state=State.UNKNOWN, detail="the execution host does not answer (UNKWN)")
    return SchedulerState(state=State.UNKNOWN, detail=f"stat {stat}")


def lsf_usage(run_time: str, cpu_used: str, max_mem: str, exec_host: str) -> Usage | None:
    """``12 second(s)``, ``0.40 second(s)``, ``3 Mbytes``, ``2*host1`` -> Usage."""
    def seconds(text: str) -> float | None:
        match = re.match(r"^\s*([\d.]+)\s*second", text)
        return float(match.group(1)) if match else None

    match = re.match(r"^\s*([\d.]+)\s*([KMGT])bytes", max_mem, re.IGNORECASE)
    rss = int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2).upper())) if match else None
    host = exec_host.strip()
    host = "" if host == "-" else host.split(":")[0].split("*")[-1]
    if seconds(run_time) is None and seconds(cpu_used) is None and rss is None and not host:
        return None
    return Usage(elapsed=seconds(run_time), cpu_time=seconds(cpu_used), max_rss=rss, node=host)


class LSFSubmitter(BatchSubmitter):
    """Submit with ``bsub``; follow with one ``bjobs -a``; cancel with ``bkill``."""

    name: ClassVar[str] = "lsf"
    script_name: ClassVar[str] = "submit.lsf"
    supported: ClassVar[frozenset[str]] = frozenset(LSF)
    probe: ClassVar[str] = "bsub"

    def directives(self, job: JobSpec, params: Mapping[str, Any]) -> list[str]:
        check_directive_values(self.name, {**params, "job directory": job.job_dir}, forbidden='"',
                               directive_form=OPTION_DIRECTIVE)
        jobdir = str(job.job_dir).rstrip("/")
        launcher = bool(params.get("launcher"))
        array = not launcher and self.n_subjobs(job) > 1
        opts = [
            quote_option("-J", f"reproman-{job.jobid}", " "),
            quote_option("-o", f"{jobdir}/lsf.%J_%I.log" if array else f"{jobdir}/lsf.%J.log", " "),
            quote_option("-cwd", jobdir, " "),
        ]
        if "queue" in params:
            opts.append(quote_option("-q", params["queue"], " "))
        if "account" in params:
            opts.append(quote_option("-P", params["account"], " "))
        per = int(params.get("num_processes", 1))
        concurrency = self.launcher_concurrency(job, params) if launcher else 1
        slots = per * concurrency
        if "num_nodes" in params:
            nodes = int(params["num_nodes"])
            opts += [f"-n {nodes * slots}", f'-R "span[ptile={slots}]"']
        elif slots > 1:
            opts += [f"-n {slots}", '-R "span[hosts=1]"']
        if "memory" in params:
            mb = memory_mb(params["memory"]) * concurrency
            if "num_nodes" in params:
                # Per node, as on Slurm and PBS: reserve it on each host, limit the whole job.
                opts += [f"-M {mb * int(params['num_nodes'])}MB", f'-R "rusage[mem={mb}MB/host]"']
            else:
                opts += [f"-M {mb}MB", f'-R "rusage[mem={mb}MB/job]"']
        if "walltime" in params:
            minutes = -(-walltime_seconds(params["walltime"]) // 60)
            opts.append(f"-W {minutes // 60}:{minutes % 60:02d}")
        if "gpus" in params:
            opts.append(f'-gpu "num={int(params["gpus"])}"')
        opts.extend(str(d) for d in params.get("directives", []))
        return opts

    def submission_script(self, job: JobSpec) -> str:
        params = self.parameters(job)
        n = self.n_subjobs(job)
        runscript = runscript_path(job)
        head = f"#!/bin/sh\n# ReproMan job {job.jobid}: {n} subjob(s) on LSF.\n"
        if params.get("launcher"):
            if "num_nodes" in params and int(params["num_nodes"]) > 1:
                raise SubmissionError("the lsf launcher runs on one host; drop num_nodes or use an array")
            head += "# Launcher mode: one allocation runs every subjob (no array); bsub < submit.lsf\n"
            return (head + directive_lines("#BSUB", self.directives(job, params))
                    + launcher_body(runscript, n, self.launcher_concurrency(job, params)))
        head += "# Submitted as an array: REPROMAN_OFFSET=OFFSET bsub -J 'NAME[1-COUNT]' < submit.lsf\n"
        return (
            head
            + directive_lines("#BSUB", self.directives(job, params))
            + 't="${LSB_JOBINDEX:-0}"; [ "$t" -gt 0 ] && t=$((t - 1))\n'
            + 'index=$(( ${REPROMAN_OFFSET:-0} + t ))\n'
            + f'exec sh {shlex.quote(runscript)} "$index"\n'
        )

    def submit(self, job: JobSpec, script_path: str) -> str:
        params = self.parameters(job)
        n = self.n_subjobs(job)
        cwd = str(job.job_dir).rstrip("/") or None
        if params.get("launcher"):
            return self._bsub([], script_path, 0, cwd, job)
        throttle = params.get("throttle")
        name = f"reproman-{job.jobid}"
        ids: list[str] = []
        try:
            for offset, count in chunks(n, params.get("max_array_size")):
                args: list[str] = []
                if n > 1:
                    args += ["-J", f"{name}[1-{count}]" + (f"%{int(throttle)}" if throttle else "")]
                if throttle and ids:
                    args += ["-w", f"ended({ids[-1]})"]
                ids.append(self._bsub(args, script_path, offset, cwd, job))
        except SubmissionError:
            if ids:
                self.session.execute_command(["bkill", *ids])
            raise
        return ",".join(ids)

    def _bsub(self, args: Sequence[str], script_path: str, offset: int, cwd: str | None, job: JobSpec) -> str:
        command = " ".join(["bsub", *(shlex.quote(a) for a in args)]) + f" < {shlex.quote(script_path)}"
        result = self.session.execute_command(command, env={"REPROMAN_OFFSET": str(offset)}, cwd=cwd)
        if result.returncode != 0:
            raise self.command_failed(result, f"bsub for job {job.jobid}")
        return parse_bsub_output(result.stdout)

    def scheduler_states(
        self, jobs: Sequence[JobSpec], wanted: Mapping[str, Collection[int]] | None = None
    ) -> Mapping[str, Mapping[int, SchedulerState]]:
        """One ``bjobs -a`` for all followed jobs: the queue and LSF's memory of finished ones."""
        ids = index_map(jobs, self.n_subjobs)
        if not ids:
            return {}
        result = self.session.execute_command(["bjobs", "-a", "-noheader", "-o", BJOBS_FORMAT, *ids])
        # bjobs exits 255 when some id is unknown ("Job <1> is not found"), still printing the others.
        if result.returncode != 0 and not result.stdout.strip():
            if "not found" not in (result.stderr + result.stdout).lower():
                raise self.command_failed(result, "bjobs")
        launchers = {j.jobid: self.n_subjobs(j) for j in jobs if self.is_launcher(j)}
        states: dict[str, dict[int, SchedulerState]] = {}
        for line in result.stdout.splitlines():
            fields = line.strip().split("|", len(BJOBS_FIELDS) - 1)
            if len(fields) != len(BJOBS_FIELDS) or fields[0] not in ids:
                continue
            row = dict(zip(BJOBS_FIELDS, fields))
            jobid, offset = ids[row["jobid"]]
            usage = lsf_usage(row["run_time"], row["cpu_used"], row["max_mem"], row["exec_host"])
            state = lsf_state(row["stat"], row["exit_code"], row["exit_reason"], row["pend_reason"], usage)
            if jobid in launchers:
                for index in range(launchers[jobid]):
                    put_state(states, jobid, index, for_launcher(state))
                continue
            element = int(row["jobindex"]) if row["jobindex"].isdigit() else 0
            put_state(states, jobid, offset + max(element - 1, 0), state)
        forget_missing(states, jobs, self.n_subjobs)
        return states

    def cancel(self, job: JobSpec) -> None:
        self.cancel_all(job, ["bkill"], ignore=("already finished", "not found"))

    # -- an interrupted submission ---------------------------------------------------------------------------
    def find_submitted(self, job: JobSpec) -> str | None:
        """The LSF ids of this user's jobs named ``reproman-<jobid>``, in ONE remote command.

        ``bjobs -a -J 'NAME*'`` lists this user's jobs of that name, queued,
        running, and finished within ``CLEAN_PERIOD`` (lsb.params, one hour
        by default), which ``bparams -a`` in the same command reports. The
        elements of an array are named ``NAME[INDEX]`` and an exact ``-J``
        would miss them; the wildcard may also match longer names, so only
        ``NAME`` and ``NAME[...]`` count. Nothing found is "never queued"
        only when the job was registered within ``CLEAN_PERIOD`` and no
        subjob started; otherwise LSF may have forgotten it: None. Several
        ids are the pieces of a split array (see :func:`.lookup.decide`).
        """
        params = self._job_params(job)
        name = job_name(job, params, self.n_subjobs(job))
        lookup = Lookup()
        lookup.add("queue", f"bjobs -a -noheader -J {shlex.quote(name + '*')} -o {shlex.quote(_LOOKUP_FORMAT)}")
        lookup.add("params", "bparams -a")
        lookup.add_started(job)
        answers = lookup.read(self.session.execute_command(lookup.script()).stdout)
        queue = answers.get("queue")
        if queue is None:
            raise SubmissionError("bjobs gave no answer")
        found: set[str] = set()
        for line in queue.text.splitlines():
            jobid, sep, shown = line.strip().partition("|")
            if sep and jobid.isdigit() and (shown == name or shown.startswith(name + "[")):
                found.add(jobid)
        if not queue.ok and not found and not _NO_JOB_RE.search(queue.text):
            raise SubmissionError(f"bjobs failed: {queue.last_line()}")
        ordered = sorted(found, key=int)  # ids grow: submission order
        expected = 1 if params.get("launcher") else len(chunks(self.n_subjobs(job), params.get("max_array_size")))
        return decide(job, "LSF", ordered, expected, would_list=_forgets(answers.get("params"), job),
                      job_started=started(answers),
                      cancel=lambda ids: self.session.execute_command(["bkill", *ids]))

    def _job_params(self, job: JobSpec) -> Mapping[str, Any]:
        try:
            return self.parameters(job)
        except Exception:  # a job submitted under another configuration
            return job.parameters or {}


#: ``bjobs -o`` fields of :meth:`LSFSubmitter.find_submitted`; the name last, so a '|' in it still parses.
_LOOKUP_FORMAT = "jobid job_name delimiter='|'"
#: What bjobs says when no job matches (on stderr, exit 255).
_NO_JOB_RE = re.compile(r"No (?:unfinished |matching )?job found|is not found", re.IGNORECASE)
#: LSF's default CLEAN_PERIOD (lsb.params), in seconds.
DEFAULT_CLEAN_PERIOD = 3600


def _forgets(params: Answer | None, job: JobSpec) -> str | None:
    """Why LSF may have forgotten ``job`` had it taken it (see :func:`.lookup.decide`); None if it would not."""
    if params is None or not params.ok:
        return f"bparams could not say how long it keeps finished jobs ({params.last_line() if params else 'no answer'})"
    match = re.search(r"^\s*CLEAN_PERIOD\s*=\s*(\d+)", params.text, re.MULTILINE)
    kept = int(match.group(1)) if match else DEFAULT_CLEAN_PERIOD
    age = seconds_since(job.created)
    if age is None or age + RETENTION_MARGIN >= kept:
        return f"it forgets finished jobs after CLEAN_PERIOD = {kept} s"
    return None


def job_name(job: JobSpec, params: Mapping[str, Any], n_subjobs: int) -> str:
    """The name LSF knows the job by: ReproMan's ``-J``, or for a job that is not an array the last ``-J``
    among the user's directives (an array's ``-J NAME[1-N]`` is on the command line, which wins)."""
    name = f"reproman-{job.jobid}"
    if n_subjobs > 1 and not params.get("launcher"):
        return name
    for directive in params.get("directives", []) or []:
        words = str(directive).split()
        if len(words) == 2 and words[0] == "-J":
            name = words[1]
    return name


def parse_bsub_output(stdout: str) -> str:
    """The id in ``Job <123> is submitted to queue <normal>.``, from exactly one such line."""
    matches = [m for m in (_SUBMITTED_RE.match(ln.strip()) for ln in stdout.splitlines()) if m]
    if len(matches) != 1:
        raise SubmissionError(f"cannot read a job id from bsub output: {stdout.strip()!r}")
    return matches[0].group(1)
