"""Son of Grid Engine (and the Sun/Oracle/Univa lineage): ``qsub -t`` arrays; one ``qstat -xml`` per poll.

Tested against a real single-node Son of Grid Engine 8.1.9 (``tools/ci/sge.sh``).

* The submission script (``submit.sge``) carries every directive as ``#$``
  lines; only what differs between the pieces of a split array (``-t``,
  ``-tc``, ``-hold_jid``) and the subjob offset (the script's first
  argument) are given on the ``qsub`` command line. Array task ids count
  from 1, so subjob ``offset + SGE_TASK_ID - 1`` runs.
* ``-w e``: Grid Engine checks the request against every queue at
  submission, so a request no queue can ever meet ("no suitable queues")
  is refused by ``qsub`` with Grid Engine's words instead of waiting
  forever. A job Grid Engine could not start (state ``Eqw``) waits for
  someone to act and is reported as blocked.
* ``qsub -terse`` prints ``ID`` (``ID.1-N:1`` for an array); nothing else is
  trusted.
* State: ONE ``qstat -xml -u $user -s prsz`` per poll lists the queued,
  running and recently finished (zombie) tasks of every followed job; the
  job name is checked too, so a recycled job number is never taken for
  ours. Grid Engine forgets a task the moment it ends, so tasks that core
  still wants to hear about (see :meth:`SGESubmitter.scheduler_states`)
  and that ``qstat`` no longer lists are looked up in the history:
  ONE remote command runs ``qacct -j ID`` for each such id and checks the
  job directories for ReproMan's cancel marker (``qacct`` takes one id, and
  ``-j A -j B`` keeps only the last). A task ``qacct`` does not know is
  "ended moments ago" while the qmaster still lists it as a zombie (its
  record may be waiting for the next accounting flush, 15 s by default) and
  forgotten after that, so core declares it lost after its grace period.
* Usage (elapsed, CPU time, peak RSS, node) comes from the same ``qacct``
  records, one command for all finished jobs (:meth:`SGESubmitter.usage`).
* Cancel: the ``cancelled`` marker is written first, then ``qdel``. Queued
  tasks that ``qdel`` removed never reach accounting; the marker is how they
  read as cancelled rather than lost, from any later process.

Memory requests in Grid Engine are per slot and sites name the complex
differently, hence two settings, read from the same config sections as the
job-parameter defaults::

    [submitter-sge]
    memory_complex = h_vmem          # or mem_free, m_mem_free, ...
    parallel_environment = smp       # a PE with allocation_rule $pe_slots

``num_processes`` P becomes ``-pe smp P`` and ``memory`` M becomes
``-l h_vmem=M/P`` (per slot), so a subjob gets M in all. In launcher mode the
one job asks for ``throttle * P`` slots, or without a throttle as many as
the largest queue instance (one host) offers. Jobs are submitted with ``-V``
(the submitting environment travels with the job), as Slurm does by default.
"""

from __future__ import annotations

import logging
import math
import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from reproman.plugins import ConfigError, FailureReason, SchedulerState, SubmissionError, Usage
from reproman.plugins import JobFiles as layout  # only the file names (layout.CANCELLED)
from reproman_submitters.common import (
    OPTION_DIRECTIVE,
    BatchSubmitter,
    check_directive_values,
    chunk_offsets,
    chunks,
    directive_lines,
    ended,
    failed,
    for_launcher,
    hms,
    launcher_body,
    memory_mb,
    put_state,
    quote_option,
    runscript_path,
    split_ids,
    walltime_seconds,
)
from reproman_submitters.hooks import SGE
from reproman_submitters.lookup import Lookup, decide, started
from reproman_submitters.sge_records import (
    MEMORY_ERROR_PATTERN,
    accounting_state,
    expand_tasks,
    parse_qacct,
    parse_qstat_xml,
    parse_qsub_terse,
    parse_queue_slots,
    sge_state,
    usage_of,
)

lgr = logging.getLogger("reproman.submitters.sge")

SGE_PARAMETERS = SGE
#: Settings of this submitter (not job parameters) read from its config sections.
SGE_SETTINGS = {"memory_complex": "h_vmem", "parallel_environment": "smp"}

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
#: What qacct prints when the accounting file does not exist (accounting off, or nothing ever ran).
_NO_ACCOUNTING = "No jobs running since startup"
_CANCELLED_SECTION = "+cancelled"
_STARTED_SECTION = "+started"
_MEMORY_SECTION = "+memory-errors"


@attrs.frozen(kw_only=True)
class _Piece:
    """One Grid Engine job (an array, or the launcher job) of a ReproMan job."""

    job: Any
    params: Mapping[str, Any]
    offset: int
    count: int
    #: Number of subjobs when this is a launcher job (it stands for all of them), else 0.
    launcher: int
    #: The job name Grid Engine must show for it (``-N``).
    name: str
    #: Waits for the previous piece (``-hold_jid``): a split array under one throttle.
    chained: bool = False

    def indices(self, tasks: Sequence[int] | None = None) -> list[int]:
        """Subjob indices of array ``tasks`` (1-based); ``None``: the whole piece."""
        if self.launcher:
            return list(range(self.launcher))
        if tasks is None:
            return list(range(self.offset, self.offset + self.count))
        return [self.offset + t - 1 for t in tasks if 1 <= t <= self.count]

    def indices_of(self, record: Mapping[str, str]) -> list[int]:
        task = record.get("taskid", "undefined")
        return self.indices([int(task)] if task.isdigit() else None)

    def say(self, state: SchedulerState | None) -> SchedulerState | None:
        """What ``state`` of this Grid Engine job says of each of its subjobs."""
        return for_launcher(state) if self.launcher else state


@attrs.frozen(kw_only=True)
class _History:
    """What one accounting command found."""

    #: Grid Engine id -> its ``qacct`` records (every task that ran).
    records: Mapping[str, list[dict[str, str]]]
    #: Ids qacct answered about (records, or "not found"); the others get no verdict this time.
    answered: frozenset[str]
    #: False when the cell keeps no accounting file at all.
    kept: bool
    #: Job directories holding ReproMan's cancel marker.
    cancelled: frozenset[str]
    #: Of the status files asked about, those that exist (the runscript writes one as it starts).
    started: frozenset[str] = frozenset()
    #: Of the stderr files asked about, those reporting a refused allocation.
    memory_errors: frozenset[str] = frozenset()


class SGESubmitter(BatchSubmitter):
    """Submit to Grid Engine with ``qsub``; follow with ``qstat -xml`` (and ``qacct``); cancel with ``qdel``."""

    name: ClassVar[str] = "sge"
    script_name: ClassVar[str] = "submit.sge"
    supported: ClassVar[frozenset[str]] = frozenset(SGE_PARAMETERS)
    probe: ClassVar[str] = "qsub"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_array_size: int | None = None
        #: Queue ('' for any) -> the most slots one of its instances offers (launcher width).
        self._queue_slots: dict[str, int] = {}
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
        # Grid Engine's directive parser has no escape inside a quoted value: it drops quotes of
        # either kind from it, ends the line at '#' and refuses '\' (a#b reads as a, a'b as ab).
        check_directive_values(self.name, {**params, "job directory": job.job_dir}, forbidden='"\'#\\',
                               directive_form=OPTION_DIRECTIVE)
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
            # Refuse at submission a request no queue can ever meet.
            "-w e",
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
        result = self.session.execute_command(["qsub", "-terse", *args], cwd=cwd)
        if result.returncode != 0:
            error = self.command_failed(result, f"qsub for job {job.jobid}")
            if "no suitable queues" in result.stderr + result.stdout:
                error.hint = ("Grid Engine checked the request against every queue (qsub -w e) and none can "
                              "ever run it: ask for fewer slots, less memory or time, or another queue.")
            raise error
        return parse_qsub_terse(result.stdout)

    # -- launcher width --------------------------------------------------------------------------
    def launcher_width(self, job: Any, params: Mapping[str, Any]) -> int:
        """Without a throttle: the slots of the largest queue instance, per subjob's slots.

        The parallel environment puts all of a job's slots on one host
        (``allocation_rule $pe_slots``), so one queue instance's slots is what
        the launcher can use.
        """
        slots = self.queue_slots(str(params.get("queue") or ""))
        return max(1, slots // int(params.get("num_processes", 1)))

    def queue_slots(self, queue: str) -> int:
        """The most slots an instance of ``queue`` ('' for any queue) offers, from one ``qstat -f -xml``."""
        if queue not in self._queue_slots:
            argv = ["qstat", "-f", "-xml", "-u", "$user"] + (["-q", queue] if queue else [])
            result = self.run(argv, "qstat -f (to size the launcher)")
            slots = parse_queue_slots(result.stdout)
            if not slots:
                raise SubmissionError(
                    f"cannot tell how many slots {'queue ' + repr(queue) if queue else 'a queue'} offers a "
                    "launcher (qstat -f lists no queue instance)",
                    hint="Give throttle=N: how many subjobs run at once in the one job.",
                )
            self._queue_slots[queue] = max(slots.values())
        return self._queue_slots[queue]

    # -- follow ----------------------------------------------------------------------------------------
    def scheduler_states(
        self, jobs: Sequence[Any], wanted: Mapping[str, Collection[int]] | None = None
    ) -> Mapping[str, Mapping[int, SchedulerState]]:
        """One ``qstat -xml`` for every task of every job; one accounting command for wanted tasks it no longer lists.

        A wanted task (core has no final status line from it) that is not
        queued or running is looked up in ``qacct`` even while the rest of
        its array still runs: a task killed mid-array is reported at once.
        """
        pieces = self._pieces(jobs)
        if not pieces:
            return {}
        # "$user" is qstat's own placeholder (not the shell's): this user's jobs
        # only, even where a site's sge_qstat file makes "-u *" the default.
        # "-s prsz": pending, running, suspended, and zombies (recently finished).
        result = self.session.execute_command(["qstat", "-xml", "-u", "$user", "-s", "prsz"])
        if result.returncode != 0:
            raise self.command_failed(result, "qstat -xml")
        states: dict[str, dict[int, SchedulerState]] = {}
        recently_ended: dict[str, set[int]] = {}
        for entry in parse_qstat_xml(result.stdout):
            piece = pieces.get(entry.number)
            if piece is None or entry.name != piece.name:
                continue  # not ours, or a recycled job number
            indices = piece.indices(expand_tasks(entry.tasks) if entry.tasks else None)
            if entry.zombie:
                recently_ended.setdefault(entry.number, set()).update(indices)
                continue
            state = sge_state(entry.state, entry.number, held_by_predecessor=piece.chained)
            for index in indices:
                put_state(states, piece.job.jobid, index, piece.say(state))
        lookup: dict[str, list[int]] = {}
        for sid, piece in pieces.items():
            want = None if wanted is None else wanted.get(piece.job.jobid)
            known = states.get(piece.job.jobid, {})
            missing = [i for i in piece.indices() if i not in known and (want is None or i in want)]
            if missing:
                lookup[sid] = missing
        if lookup:
            self._from_history(states, pieces, lookup, recently_ended)
        return states

    def _pieces(self, jobs: Sequence[Any]) -> dict[str, _Piece]:
        """Grid Engine id -> the part of a job it runs."""
        out: dict[str, _Piece] = {}
        for job in jobs:
            ids = split_ids(getattr(job, "submission_id", None))
            params = self._job_params(job)
            n = self.n_subjobs(job)
            name = job_name(job, params)
            launcher = n if params.get("launcher") else 0
            for k, (sid, (offset, count)) in enumerate(zip(ids, chunk_offsets(n, len(ids)))):
                out[sid] = _Piece(job=job, params=params, offset=offset, count=count, launcher=launcher,
                                  name=name, chained=bool(k and params.get("throttle")))
        return out

    def _job_params(self, job: Any) -> Mapping[str, Any]:
        try:
            return self.parameters(job)
        except Exception:  # a job submitted under another configuration
            return job.parameters or {}

    def history(self, sids: Sequence[str], job_dirs: Sequence[str] = (), status_files: Sequence[str] = (),
                stderr_files: Sequence[str] = ()) -> _History:
        """``qacct`` records of ``sids``, the ``job_dirs`` holding a cancel marker, which of
        ``status_files`` exist and which of ``stderr_files`` report a refused allocation, in ONE
        remote command (shell builtins for the files, one ``grep`` for all stderr files)."""
        script = "".join(f"printf '== %s\\n' {shlex.quote(s)}; qacct -j {shlex.quote(s)} 2>&1; " for s in sids)
        script += f"printf '== {_CANCELLED_SECTION}\\n'; "
        script += "".join(
            f"[ -e {shlex.quote(d + '/' + layout.CANCELLED)} ] && printf '%s\\n' {shlex.quote(d)}; " for d in job_dirs
        )
        if status_files:
            script += f"printf '== {_STARTED_SECTION}\\n'; "
            script += "".join(f"[ -e {shlex.quote(f)} ] && printf '%s\\n' {shlex.quote(f)}; " for f in status_files)
        if stderr_files:
            script += f"printf '== {_MEMORY_SECTION}\\n'; "
            script += (f"grep -l -s -E {shlex.quote(MEMORY_ERROR_PATTERN)} "
                       f"{' '.join(shlex.quote(f) for f in stderr_files)}; ")
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
        answered: set[str] = set()
        kept = True
        for sid in sids:
            text = "\n".join(sections.get(sid, []))
            records[sid] = parse_qacct(text)
            if records[sid] or "not found" in text:
                answered.add(sid)
            elif _NO_ACCOUNTING in text:
                answered.add(sid)
                kept = False
            else:
                lgr.warning("qacct -j %s did not answer, will ask again: %s", sid,
                            " / ".join(text.strip().splitlines()[-2:])[:200] or "no output")
        return _History(records=records, answered=frozenset(answered), kept=kept,
                        cancelled=frozenset(sections.get(_CANCELLED_SECTION, [])),
                        started=frozenset(sections.get(_STARTED_SECTION, [])),
                        memory_errors=frozenset(sections.get(_MEMORY_SECTION, [])))

    def _from_history(
        self,
        states: dict[str, dict[int, SchedulerState]],
        pieces: Mapping[str, _Piece],
        lookup: Mapping[str, list[int]],
        recently_ended: Mapping[str, set[int]],
    ) -> None:
        """States of the ``lookup`` tasks, which ``qstat`` no longer lists: qacct, the cancel marker, or forgotten.

        ``qacct`` scans the whole accounting file, so once every task of an id
        that left ``qstat`` is accounted for, its states are remembered and it
        is not asked again.
        """
        asked = [sid for sid in lookup if sid not in self._final]
        for sid in lookup:
            if sid in self._final:
                piece = pieces[sid]
                for index in lookup[sid]:
                    put_state(states, piece.job.jobid, index, self._final[sid].get(index))
        if not asked:
            return
        probes = [_status_file(pieces[sid].job, i) for sid in asked for i in lookup[sid]]
        stderrs = [_stderr_file(pieces[sid].job, i) for sid in asked if "memory" in pieces[sid].params
                   and not pieces[sid].launcher for i in lookup[sid]]
        found = self.history(asked, sorted({str(pieces[sid].job.job_dir) for sid in asked}), probes, stderrs)
        for sid in asked:
            piece = pieces[sid]
            jobid = piece.job.jobid
            cancelled = str(piece.job.job_dir) in found.cancelled
            said: dict[int, SchedulerState] = {}
            for record in found.records.get(sid, []):
                if record.get("jobname", piece.name) != piece.name:
                    continue  # an older job that had the same number
                for index in piece.indices_of(record):
                    said[index] = accounting_state(record, piece.params, cancelled,
                                                   _stderr_file(piece.job, index) in found.memory_errors)
            for index in lookup[sid]:
                state = piece.say(said.get(index))
                if state is None and sid in found.answered:
                    started = _status_file(piece.job, index) in found.started
                    state = self._unaccounted(sid, index, cancelled, recently_ended, started)
                put_state(states, jobid, index, state)
            if not any(i in states.get(jobid, {}) and i not in lookup[sid] for i in piece.indices()) \
                    and set(said) >= set(piece.indices()):
                self._final[sid] = {i: s for i in piece.indices() if (s := piece.say(said[i])) is not None}

    @staticmethod
    def _unaccounted(sid: str, index: int, cancelled: bool, recently_ended: Mapping[str, set[int]],
                     started: bool = True) -> SchedulerState:
        """A task neither ``qstat`` nor ``qacct`` knows.

        Queued tasks removed by ``qdel`` never ran, so accounting never hears
        of them; the qmaster lists them among its zombies like tasks that
        ended. A zombie whose runscript never wrote its status file (its
        first act) did not start: it was removed from the queue. A task the
        qmaster does not list either is forgotten.
        """
        if cancelled:
            return failed(FailureReason.CANCELLED, "cancelled with 'reproman jobs --cancel' before it started")
        if index in recently_ended.get(sid, ()):
            if not started:
                return failed(FailureReason.CANCELLED, "removed from the queue before it started (qdel)")
            # The qmaster says it ended; its accounting record may wait for the next flush.
            return ended("ended moments ago; Grid Engine's accounting has no record of it (yet)", exit_code=None)
        return SchedulerState.forgotten()

    def usage(self, jobs: Sequence[Any]) -> Mapping[str, Mapping[int, Usage]] | None:
        """Elapsed, CPU time, peak RSS and node of the finished tasks of ``jobs``, from ONE accounting command.

        ``None`` when the cell keeps no accounting file; tasks accounting does
        not know (yet, or ever: deleted while queued) are left out.
        """
        pieces = self._pieces(jobs)
        if not pieces:
            return {}
        found = self.history(list(pieces))
        if not found.kept:
            return None
        usage: dict[str, dict[int, Usage]] = {}
        for sid, piece in pieces.items():
            for record in found.records.get(sid, []):
                if record.get("jobname", piece.name) != piece.name:
                    continue
                figures = usage_of(record)
                for index in piece.indices_of(record):
                    # A launcher's one record covers all its subjobs: only where they ran is theirs.
                    usage.setdefault(piece.job.jobid, {})[index] = Usage(node=figures.node) if piece.launcher \
                        else figures
        return usage

    # -- cancel ------------------------------------------------------------------------------------------
    def cancel(self, job: Any) -> None:
        """Write the cancel marker where it can be written, then ``qdel`` every id; ids already gone are not errors.

        ``qdel`` must run whatever became of the job directory (a scratch
        purge, a user's ``rm -rf``): the marker is written in a subshell,
        because a failed redirection of ``:`` (a special built-in) ends a
        POSIX shell such as dash before it reaches ``qdel``. Without the
        marker, core's record of the cancellation names the cause.
        """
        ids = split_ids(getattr(job, "submission_id", None))
        if not ids:
            raise SubmissionError(f"job {job.jobid} has no submission id; nothing to cancel")
        marker = shlex.quote(f"{str(job.job_dir).rstrip('/')}/{layout.CANCELLED}")
        result = self.session.execute_command(f"(: > {marker}) 2>/dev/null; qdel {' '.join(map(shlex.quote, ids))}")
        if result.returncode == 0:
            return
        lines = [ln.strip() for ln in (result.stdout + "\n" + result.stderr).splitlines() if ln.strip()]
        harmless = ("does not exist", "has registered the job", "has deleted job", "is already in deletion")
        if not lines or not all(any(h in ln for h in harmless) for ln in lines):
            raise self.command_failed(result, f"cancelling job {job.jobid}")

    # -- an interrupted submission ---------------------------------------------------------------------------
    def find_submitted(self, job: Any) -> str | None:
        """The Grid Engine ids of the jobs named as :func:`job_name` names ``job``, in ONE remote command.

        ``qstat -xml -s prsz`` lists what is queued or running and the
        qmaster's recently finished jobs (zombies, among them tasks deleted
        while queued, which never reach accounting); ``qacct -o USER -j NAME``
        what ran and left it. The XML, not the plain listing, because plain
        ``qstat`` cuts names to 10 characters. Nothing found is "never
        queued" only where the accounting file exists and no subjob started
        (a job that ended moments ago may wait for the accounting flush
        after the qmaster forgot it, if ``finished_jobs`` is 0). Several ids
        are the pieces of a split array (see :func:`.lookup.decide`).
        """
        params = self._job_params(job)
        name = job_name(job, params)
        n = self.n_subjobs(job)
        need_limit = not params.get("launcher") and n > 1 and params.get("max_array_size") is None \
            and self._max_array_size is None
        lookup = Lookup()
        lookup.add("queue", "qstat -xml -u '$user' -s prsz")
        lookup.add("history", f'qacct -o "$(id -un)" -j {shlex.quote(name)}')
        lookup.add_started(job)
        if need_limit:
            lookup.add("limit", "qconf -sconf global")
        answers = lookup.read(self.session.execute_command(lookup.script()).stdout)
        queue = answers.get("queue")
        if queue is None or not queue.ok:
            raise SubmissionError(f"qstat failed: {queue.last_line() if queue else 'no answer'}")
        if need_limit and "limit" in answers:
            match = re.search(r"^max_aj_tasks\s+(\d+)", answers["limit"].text, re.MULTILINE)
            self._max_array_size = int(match.group(1)) if match else 0
        numbers = {entry.number for entry in parse_qstat_xml(queue.text) if entry.name == name}
        history = answers.get("history")
        would_list: str | None = None
        if history is not None and (records := parse_qacct(history.text)):
            numbers |= {r["jobnumber"] for r in records if r.get("jobname", name) == name}
        elif history is None or "not found" not in history.text:
            would_list = f"qacct cannot say whether it ran ({history.last_line() if history else 'no answer'})"
        found = sorted(numbers, key=lambda x: int(x) if x.isdigit() else 0)  # numbers grow: submission order
        expected = 1 if params.get("launcher") else len(chunks(n, self._array_limit(params, n)))
        return decide(job, "Grid Engine", found, expected, would_list=would_list, job_started=started(answers),
                      cancel=lambda ids: self.session.execute_command(["qdel", *ids]))

    def _array_limit(self, params: Mapping[str, Any], n: int) -> int | None:
        """The largest array :meth:`submit` makes for ``n`` subjobs (None: no limit), without asking again."""
        limit = params.get("max_array_size")
        if limit is None and n > 1:
            limit = self._max_array_size if self._max_array_size is not None else self.site_max_array_size()
        return int(limit) if limit else None


def _stderr_file(job: Any, index: int) -> str:
    return layout.path(str(job.job_dir), f"stderr.{index}")


def _status_file(job: Any, index: int) -> str:
    """``status.INDEX`` in the job directory: the runscript writes it as the subjob starts."""
    return layout.path(str(job.job_dir), f"status.{index}")


def job_name(job: Any, params: Mapping[str, Any]) -> str:
    """The name Grid Engine knows the job by: ReproMan's ``-N``, or the last ``-N`` among the directives."""
    name = f"reproman-{job.jobid}"
    for directive in params.get("directives", []) or []:
        words = str(directive).split()
        if len(words) == 2 and words[0] == "-N":
            name = words[1]
    return name


__all__ = [
    "SGE_PARAMETERS",
    "SGESubmitter",
    "accounting_state",
    "expand_tasks",
    "job_name",
    "parse_qacct",
    "parse_qstat_xml",
    "parse_qsub_terse",
    "sge_state",
]
