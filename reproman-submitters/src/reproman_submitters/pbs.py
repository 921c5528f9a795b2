"""PBS Professional / OpenPBS, and Torque: array jobs via ``qsub``.

NOT run against a live PBS here (no PBS in Debian 12): tested against the
documented command-line behaviour and output formats with fake ``qsub``,
``qstat`` and ``qdel`` executables (:mod:`reproman.testing.fakesched`).

Two flavours, chosen with ``flavor`` in the ``[submitter-pbs]`` config
section (see :mod:`reproman_submitters.common`), because the two forks
spell the essentials differently:

=================  ================================  ===============================
                   ``pro`` (default; PBS Pro/OpenPBS)  ``torque``
=================  ================================  ===============================
array              ``-J 0-9%2``, ``PBS_ARRAY_INDEX``  ``-t 0-9%2``, ``PBS_ARRAYID``
resources          ``-l select=N:ncpus=P:mem=MMB``    ``-l nodes=N:ppn=P,mem=MMB``
finished jobs      ``qstat -x`` (job history)         kept as ``C`` (``keep_completed``)
array dependency   ``afterany:ID``                    ``afteranyarray:ID``
=================  ================================  ===============================

``qsub`` prints the job id (``123.server``, ``123[].server`` for an array)
and nothing else on stdout; that line is parsed strictly. ``qsub`` passes no
arguments to a script, so the subjob offset of a split array travels as
``-v REPROMAN_OFFSET=N``.

Finished jobs: one ``qstat -f -t`` per poll covers the queue and the
scheduler's memory at once (``-x`` adds PBS Pro's job history, kept only
where ``job_history_enable`` is set, which it is not by default; Torque keeps
finished jobs as ``C`` for ``keep_completed`` seconds). A subjob that query
does not know is reported forgotten. Pending subjobs carry the scheduler's
``comment`` ("Not Running: ..."); PBS Pro's "Can Never Run" marks them
blocked. Exit statuses of 256 and more mean "killed by signal N-256".
Usage comes from ``resources_used`` (walltime, cput, mem) and ``exec_host``
of the same records.

Memory: ``mem`` in a ``select`` chunk is per chunk, one chunk per node, so
``memory`` is per node on PBS Pro as on Slurm; Torque's ``mem`` is per job,
so it is multiplied by ``num_nodes`` there.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from reproman.plugins import ConfigError, FailureReason, JobSpec, SchedulerState, State, SubmissionError, Usage
from reproman_submitters.common import (
    OPTION_DIRECTIVE,
    BatchSubmitter,
    check_directive_values,
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
    walltime_seconds,
)
from reproman_submitters.hooks import PBS
from reproman_submitters.lookup import RETENTION_MARGIN, Answer, Lookup, decide, seconds_since, started

FLAVORS = ("pro", "torque")
_ID_RE = re.compile(r"^(\d+)(\[\])?(\.[\w.-]+)?$")
_SUBJOB_RE = re.compile(r"^(\d+)\[(\d+)\](\.[\w.-]+)?$")

# PBS Pro Exit_status values below 0 (job_exec codes) that tell why the MoM killed a job.
_PRO_EXIT: dict[int, FailureReason] = {
    -26: FailureReason.OUT_OF_MEMORY,  # JOB_EXEC_KILL_VMEM
    -27: FailureReason.OUT_OF_MEMORY,  # JOB_EXEC_KILL_MEM
    -28: FailureReason.WALLTIME,  # JOB_EXEC_KILL_CPUT
    -29: FailureReason.WALLTIME,  # JOB_EXEC_KILL_WALLTIME
}
#: JOB_EXEC_FAIL1.. JOB_EXEC_BADRESRT and JOB_EXEC_RERUN_MS_FAIL: the execution host failed.
_NODE_FAILURE_CODES = {-1, -2, -3, -4, -5, -6, -7, -20}


def parse_qstat_f(text: str) -> list[dict[str, str]]:
    """Records of ``qstat -f`` output: ``Job Id: X`` then ``key = value`` lines.

    Long values wrap onto continuation lines that start with a tab (both
    PBS Pro and Torque); they are joined back.
    """
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    last_key = ""
    for raw in text.splitlines():
        if raw.startswith("Job Id:"):
            current = {"Job Id": raw.split(":", 1)[1].strip()}
            records.append(current)
            last_key = ""
            continue
        if current is None or not raw.strip():
            continue
        if raw.startswith("\t") and last_key:
            current[last_key] += raw.strip()
            continue
        key, sep, value = raw.strip().partition(" = ")
        if sep:
            current[key] = value
            last_key = key
    return records


def pbs_state(record: Mapping[str, str]) -> SchedulerState | None:
    """Normalise one ``qstat -f`` record (a subjob or a plain job)."""
    state = record.get("job_state", "")
    comment = record.get("comment", "")
    if state in ("Q", "H", "W", "T", "M"):
        detail = {"H": "held", "W": "waiting for its start time"}.get(state, "") or comment
        if state != "Q" and comment:
            detail = f"{detail}: {comment}"
        return pending(detail, blocked=comment.startswith("Can Never Run"))
    if state in ("R", "E", "S", "U", "B"):
        return running({"S": "suspended", "E": "exiting"}.get(state, ""))
    if state not in ("F", "X", "C"):
        return SchedulerState(state=State.UNKNOWN, detail=f"job_state {state}")
    usage = pbs_usage(record)
    exit_text = record.get("Exit_status", record.get("exit_status", ""))
    if not exit_text.lstrip("-").isdigit():
        # Finished without running (deleted while queued, or aborted).
        if re.search(r"delet|abort|cancel", comment, re.IGNORECASE):
            return failed(FailureReason.CANCELLED, comment)
        return ended(comment or "finished without an exit status", exit_code=None)
    code = int(exit_text)
    if code == 0:
        return ended(exit_code=0, usage=usage)
    detail = ", ".join(x for x in (f"Exit_status {code}", comment) if x)
    if code in _PRO_EXIT:
        return failed(_PRO_EXIT[code], detail, usage=usage)
    if code in _NODE_FAILURE_CODES:
        return failed(FailureReason.NODE_FAILURE, detail, usage=usage)
    if code >= 256:
        signal = code - 256
        code_seen = exit_status(None, signal)
        if re.search(r"walltime", comment, re.IGNORECASE):
            return failed(FailureReason.WALLTIME, detail, code_seen, usage)
        if re.search(r"mem", comment, re.IGNORECASE) and "exceed" in comment.lower():
            return failed(FailureReason.OUT_OF_MEMORY, detail, code_seen, usage)
        reason = FailureReason.CANCELLED if signal in (9, 15) else FailureReason.EXIT_CODE
        return failed(reason, f"{detail}, killed by signal {signal}", code_seen, usage)
    if code < 0:
        return failed(FailureReason.LOST, detail, usage=usage)
    return failed(FailureReason.EXIT_CODE, detail, code, usage)


def pbs_usage(record: Mapping[str, str]) -> Usage | None:
    """``resources_used.*`` and ``exec_host`` of a finished record, when it has them."""
    walltime = _hms_seconds(record.get("resources_used.walltime", ""))
    cput = _hms_seconds(record.get("resources_used.cput", ""))
    mem = _kb_bytes(record.get("resources_used.mem", ""))
    host = record.get("exec_host", "").split("/")[0]
    if walltime is None and cput is None and mem is None and not host:
        return None
    return Usage(elapsed=walltime, cpu_time=cput, max_rss=mem, node=host)


def _hms_seconds(text: str) -> float | None:
    parts = text.strip().split(":")
    if not text.strip() or not all(p.isdigit() for p in parts):
        return None
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return seconds


def _kb_bytes(text: str) -> int | None:
    match = re.match(r"^(\d+)([kmgt]?)b$", text.strip(), re.IGNORECASE)
    if not match:
        return None
    return int(match.group(1)) * 1024 ** (" kmgt".index(match.group(2).lower() or " "))


class PBSSubmitter(BatchSubmitter):
    """Submit with ``qsub``; follow with one ``qstat -f -t``; cancel with ``qdel``."""

    name: ClassVar[str] = "pbs"
    script_name: ClassVar[str] = "submit.pbs"
    supported: ClassVar[frozenset[str]] = frozenset(PBS)
    probe: ClassVar[str] = "qsub"

    @property
    def flavor(self) -> str:
        value = self.settings().get("flavor", "pro").strip().lower()
        if value not in FLAVORS:
            raise ConfigError(f"[submitter-pbs] flavor = {value!r} is not one of {', '.join(FLAVORS)}")
        return value

    # -- script ------------------------------------------------------------------------
    def directives(self, job: JobSpec, params: Mapping[str, Any]) -> list[str]:
        check_directive_values(self.name, {**params, "job directory": job.job_dir}, forbidden='"',
                               directive_form=OPTION_DIRECTIVE)
        jobdir = str(job.job_dir).rstrip("/")
        launcher = bool(params.get("launcher"))
        pro = self.flavor == "pro"
        opts = [f"-N {_job_name(job.jobid)}", "-j oe"]
        array_log = "pbs.^array_index^.log" if pro else "pbs.log"
        opts.append(quote_option("-o", f"{jobdir}/{array_log if self.n_subjobs(job) > 1 and not launcher else 'pbs.log'}", " "))
        if "queue" in params:
            opts.append(quote_option("-q", params["queue"], " "))
        if "account" in params:
            opts.append(quote_option("-A", params["account"], " "))
        nodes = int(params.get("num_nodes", 1))
        per = int(params.get("num_processes", 1))
        if launcher:
            per *= self.launcher_concurrency(job, params)
        mem = memory_mb(params["memory"]) * (self.launcher_concurrency(job, params) if launcher else 1) \
            if "memory" in params else None
        if mem and not pro:
            mem *= nodes  # Torque's mem is for the whole job; ReproMan's memory is per node
        gpus = int(params["gpus"]) if "gpus" in params else None
        if pro:
            chunk = f"select={nodes}:ncpus={per}"
            if mem:
                chunk += f":mem={mem}mb"
            if gpus:
                chunk += f":ngpus={gpus}"
            opts.append(f"-l {chunk}")
        else:
            res = f"nodes={nodes}:ppn={per}" + (f":gpus={gpus}" if gpus else "")
            if mem:
                res += f",mem={mem}mb"
            opts.append(f"-l {res}")
        if "walltime" in params:
            opts.append(f"-l walltime={hms(walltime_seconds(params['walltime']))}")
        opts.extend(str(d) for d in params.get("directives", []))
        return opts

    def submission_script(self, job: JobSpec) -> str:
        params = self.parameters(job)
        n = self.n_subjobs(job)
        runscript = runscript_path(job)
        flavor = self.flavor
        head = f"#!/bin/sh\n# ReproMan job {job.jobid}: {n} subjob(s) on PBS ({flavor}).\n"
        if params.get("launcher"):
            if int(params.get("num_nodes", 1)) > 1:
                raise SubmissionError("the pbs launcher runs on one node; drop num_nodes or use an array")
            head += "# Launcher mode: one allocation runs every subjob (no array).\n"
            return (head + directive_lines("#PBS", self.directives(job, params))
                    + launcher_body(runscript, n, self.launcher_concurrency(job, params)))
        var = "PBS_ARRAY_INDEX" if flavor == "pro" else "PBS_ARRAYID"
        flag = "-J" if flavor == "pro" else "-t"
        head += (f"# Submitted as an array: qsub {flag} 0-(COUNT-1) [-v REPROMAN_OFFSET=OFFSET] submit.pbs\n")
        return (
            head
            + directive_lines("#PBS", self.directives(job, params))
            + f'index=$(( ${{REPROMAN_OFFSET:-0}} + ${{{var}:-0}} ))\n'
            + f'exec sh {shlex.quote(runscript)} "$index"\n'
        )

    # -- submit ---------------------------------------------------------------------------
    def submit(self, job: JobSpec, script_path: str) -> str:
        params = self.parameters(job)
        n = self.n_subjobs(job)
        pro = self.flavor == "pro"
        cwd = str(job.job_dir).rstrip("/") or None
        if params.get("launcher"):
            return self._qsub([script_path], cwd, job)
        throttle = params.get("throttle")
        ids: list[str] = []
        try:
            for offset, count in chunks(n, params.get("max_array_size")):
                args: list[str] = []
                if count > 1:
                    args += ["-J" if pro else "-t", f"0-{count - 1}" + (f"%{int(throttle)}" if throttle else "")]
                if offset:
                    args += ["-v", f"REPROMAN_OFFSET={offset}"]
                if throttle and ids:
                    kind = "afterany" if pro or "[]" not in ids[-1] else "afteranyarray"
                    args += ["-W", f"depend={kind}:{ids[-1]}"]
                ids.append(self._qsub([*args, script_path], cwd, job))
        except SubmissionError:
            if ids:
                self.session.execute_command(["qdel", *ids])
            raise
        return ",".join(ids)

    def _qsub(self, args: Sequence[str], cwd: str | None, job: JobSpec) -> str:
        result = self.run(["qsub", *args], f"qsub for job {job.jobid}", cwd=cwd)
        foreign = _GRID_ENGINE_RE.match(result.stdout.strip())
        if foreign:
            # Grid Engine's qsub took the script (its options overlap PBS's): a job ReproMan cannot
            # follow would run untracked. Take it back before saying so.
            self.session.execute_command(["qdel", foreign.group(1)])
            raise SubmissionError(
                f"qsub here is Grid Engine's, not PBS's: it queued job {foreign.group(1)}, "
                "which was deleted again",
                hint="Submit with '--submitter sge'.",
            )
        return parse_qsub_output(result.stdout)

    # -- follow -------------------------------------------------------------------------------
    def scheduler_states(
        self, jobs: Sequence[JobSpec], wanted: Mapping[str, Collection[int]] | None = None
    ) -> Mapping[str, Mapping[int, SchedulerState]]:
        """One ``qstat -f -t`` (``-x`` on PBS Pro for its history) for all followed jobs, queue and history."""
        ids = index_map(jobs, self.n_subjobs)
        if not ids:
            return {}
        argv = ["qstat", "-f", "-t"] + (["-x"] if self.flavor == "pro" else []) + list(ids)
        result = self.session.execute_command(argv)
        if result.returncode != 0 and not result.stdout.strip():
            if "unknown job id" not in (result.stderr + result.stdout).lower():
                raise self.command_failed(result, "qstat")
        launchers = {j.jobid: self.n_subjobs(j) for j in jobs if self.is_launcher(j)}
        by_number = {_number(sid): (sid, jobid, offset) for sid, (jobid, offset) in ids.items()}
        states: dict[str, dict[int, SchedulerState]] = {}
        for record in parse_qstat_f(result.stdout):
            job_id = record["Job Id"]
            sub = _SUBJOB_RE.match(job_id)
            number = sub.group(1) if sub else _number(job_id)
            if number not in by_number:
                continue
            _sid, jobid, offset = by_number[number]
            if sub is None and (record.get("array", "").lower() == "true" or "[]" in job_id):
                continue  # the array's parent record: its subjobs carry the states
            state = pbs_state(record)
            if jobid in launchers:
                for index in range(launchers[jobid]):
                    put_state(states, jobid, index, for_launcher(state))
            else:
                put_state(states, jobid, offset + (int(sub.group(2)) if sub else 0), state)
        forget_missing(states, jobs, self.n_subjobs)
        return states

    def cancel(self, job: JobSpec) -> None:
        self.cancel_all(job, ["qdel"], ignore=("unknown job id", "has finished", "invalid state", "request invalid"))

    # -- an interrupted submission ---------------------------------------------------------------------------
    def find_submitted(self, job: JobSpec) -> str | None:
        """The PBS ids of this user's jobs named as :func:`job_name` names ``job``, in ONE remote command.

        ``qselect -N NAME -u USER`` lists the ids of queued and running jobs,
        and finished ones the server still keeps: with ``-x`` on PBS Pro
        (its job history), as state ``C`` on Torque. ``qstat -B -f`` in the
        same command says how long that is: PBS Pro keeps history only with
        ``job_history_enable`` (for ``job_history_duration``, two weeks by
        default), Torque for ``keep_completed`` seconds. Nothing found is
        "never queued" only when the job was registered within that time
        and no subjob started; otherwise the server may have forgotten it:
        None. Several ids are the pieces of a split array (see
        :func:`.lookup.decide`).
        """
        params = self._job_params(job)
        pro = self.flavor == "pro"
        name = job_name(job, params)
        select = ["qselect"] + (["-x"] if pro else []) + ["-N", shlex.quote(name)]
        lookup = Lookup()
        lookup.add("queue", " ".join(select) + ' -u "$(id -un)"')
        lookup.add("server", "qstat -B -f")
        lookup.add_started(job)
        answers = lookup.read(self.session.execute_command(lookup.script()).stdout)
        queue = answers.get("queue")
        if queue is None or not queue.ok:
            raise SubmissionError(f"qselect failed: {queue.last_line() if queue else 'no answer'}")
        found: dict[str, str] = {}
        for line in queue.text.splitlines():
            match = _SELECTED_RE.match(line.strip())
            if match:
                number, array, suffix = match.groups()
                found.setdefault(number, f"{number}{'[]' if array else ''}{suffix or ''}")
        ordered = [found[k] for k in sorted(found, key=int)]  # numbers grow: submission order
        expected = 1 if params.get("launcher") else len(chunks(self.n_subjobs(job), params.get("max_array_size")))
        return decide(job, "PBS", ordered, expected, would_list=self._forgets(answers.get("server"), job, pro),
                      job_started=started(answers),
                      cancel=lambda ids: self.session.execute_command(["qdel", *ids]))

    def _job_params(self, job: JobSpec) -> Mapping[str, Any]:
        try:
            return self.parameters(job)
        except Exception:  # a job submitted under another configuration
            return job.parameters or {}

    @staticmethod
    def _forgets(server: Answer | None, job: JobSpec, pro: bool) -> str | None:
        """Why the server may have forgotten ``job`` had it taken it (see :func:`.lookup.decide`); None if it would not."""
        if server is None or not server.ok:
            return f"its settings could not be read ({server.last_line() if server else 'no answer'})"
        settings = {}
        for record in parse_qstat_f(server.text.replace("Server:", "Job Id:")):
            settings.update(record)
        if pro:
            if settings.get("job_history_enable", "").lower() not in ("true", "1", "t", "y"):
                return "the server keeps no job history (job_history_enable is off)"
            kept = _hms_seconds(settings.get("job_history_duration", "336:00:00"))
            setting = "job_history_duration"
        else:
            value = settings.get("keep_completed", "0").strip()
            kept = float(value) if value.isdigit() else None
            setting = "keep_completed"
        age = seconds_since(job.created)
        if kept is None or age is None or age + RETENTION_MARGIN >= kept:
            return f"it may have forgotten a job that finished ({setting} = {settings.get(setting, 'unset')})"
        return None


#: What Grid Engine's qsub says on success: ``Your job 12 ("name") ...`` or ``Your job-array 12.1-4:1 (...``.
_GRID_ENGINE_RE = re.compile(r'^Your job(?:-array)? (\d+)[.\d:-]* \(".*"\) has been submitted$')


def parse_qsub_output(stdout: str) -> str:
    """The job id ``qsub`` printed (``123.server`` or ``123[].server``), strictly."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    if len(lines) != 1 or not _ID_RE.match(lines[0]):
        raise SubmissionError(f"cannot read a job id from qsub output: {stdout.strip()!r}")
    return lines[0]


def _number(job_id: str) -> str:
    match = re.match(r"^(\d+)", job_id)
    return match.group(1) if match else job_id


#: A line of ``qselect``: ``123.server``, ``123[].server`` (an array), ``123[4].server`` (one of its subjobs).
_SELECTED_RE = re.compile(r"^(\d+)(\[\d*\])?(\.[\w.-]+)?$")


def job_name(job: JobSpec, params: Mapping[str, Any]) -> str:
    """The name PBS knows the job by: ReproMan's ``-N``, or the last ``-N`` among the directives."""
    name = _job_name(job.jobid)
    for directive in params.get("directives", []) or []:
        words = str(directive).split()
        if len(words) == 2 and words[0] == "-N":
            name = words[1]
    return name


def _job_name(jobid: str) -> str:
    """PBS job names: at most 15 characters on old Torque, starting with a letter."""
    return "rm" + re.sub(r"[^A-Za-z0-9]", "", jobid)[-13:]
