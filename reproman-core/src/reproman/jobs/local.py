"""The ``local`` submitter: run the subjobs on the resource itself, detached.

The submission script is a POSIX ``sh`` launcher: it records its PID, starts
N worker shells that share the subjobs out among themselves, and writes the
``completed`` marker once every worker is done, so completion never depends
on a subjob waiting for the others. A worker claims a subjob by creating its
``started.INDEX`` file exclusively (``set -C``, an ``O_EXCL`` open): the next
free subjob goes to whichever worker is free first, as with ``xargs -P``, but
without a new shell per subjob (a fork only) and with the runscript parsed
once per worker (it defines functions when sourced so), which is most of what
a batch of short subjobs costs beyond the commands. The subjob's subshell
becomes the command (``exec``) unless the environment capture has work for
it afterwards, and the worker writes the final status from the subshell's
exit status: one process fewer per subjob. No GNU parallel needed. ``submit`` starts it in a new
session (``setsid``; ``set -m`` + ``nohup`` where there is no ``setsid``) with
its standard streams on files: closing the terminal, killing the CLI or
dropping an SSH connection does not reach it, and ``cancel`` can stop the
launcher and every subjob at once by signalling its process group. Every
subjob runs in that group too, so a subjob's own ``kill 0`` (as in the
cleanup idiom ``trap 'kill 0' EXIT``) signals all of it: the launcher and
its workers then stop only when ``cancel`` marked the job first (or its
directory is gone), and otherwise go on with the rest of the batch.

A subjob may ignore or trap SIGTERM (``trap '' TERM``, a slow cleanup), so
``cancel`` escalates: with the SIGTERM it starts a small killer on the
resource, detached from the command that started it (its own session, as
the launcher), which sends SIGKILL to the same process group once
``[jobs] kill_after`` seconds have passed and the group is still there.
Until the group is gone the job's subjobs read "running" ("cancelling"),
never "cancelled": they may still be writing into the working directory.
"""

from __future__ import annotations

import logging
import posixpath
import shlex
from collections.abc import Collection, Mapping, Sequence

from reproman.errors import SubmissionError
from reproman.jobs import layout
from reproman.jobs.contracts import FailureReason, SchedulerState, State, Submitter
from reproman.jobs.spec import JobSpec

lgr = logging.getLogger(__name__)

LAUNCHER_LOG = "launcher.log"
#: What a lost subjob says. Only the launcher is known to be gone: a subjob's own command may have run to
#: its end after its launcher and worker were killed (kill -9 of them alone), so nothing claims it was killed.
LOST_DETAIL = "its launcher was killed and none of its processes remain"
#: What cancel waits for its SIGTERM to end the job, in steps of 0.1 s.
_TERM_WAIT_STEPS = 20
#: What the cancel command says when the job's process group outlived that wait.
_STILL_ALIVE = "reproman-still-alive"
#: Default of ``[jobs] kill_after``: seconds between a cancel's SIGTERM and its SIGKILL.
KILL_AFTER = 10
#: What a cancelled subjob whose processes are still alive reads (state ``running``).
CANCELLING_DETAIL = "cancelling: processes of the job are still running"


def kill_after_seconds() -> int:
    """``[jobs] kill_after``: seconds a cancelled job's processes get to end on SIGTERM before SIGKILL.

    Rounded up to whole seconds: the killer on the resource counts with POSIX ``sleep 1``.
    """
    import math

    from reproman.config import config_number, get_config

    raw = get_config().get("jobs", "kill_after")
    return math.ceil(config_number(raw, "[jobs] kill_after", default=KILL_AFTER, seconds=True))


def _signal_group(signal: str, *, or_leader: bool = True) -> str:
    """Shell code sending ``signal`` to the process group led by ``$pid`` (``or_leader``: else to ``$pid``)."""
    # dash's kill takes no "--"; bash's and others' may need it.
    code = f'kill -{signal} "-$pid" 2>/dev/null || kill -{signal} -- "-$pid" 2>/dev/null'
    return code + (f' || kill -{signal} "$pid" 2>/dev/null' if or_leader else "")


#: The cancel's killer, run as ``sh -c KILLER sh PID SECONDS``: while the group lives, wait up to
#: SECONDS, then SIGKILL it. It looks once a second and leaves as soon as the group is gone, and
#: signals only the group (never a lone process): a number freed by the job and taken by another
#: process is never signalled (a group's number is not reused while the group lives).
_KILLER = (
    'pid=$1; t=$2; '
    'while [ "$t" -gt 0 ]; do '
    + _signal_group("0", or_leader=False) + " || exit 0; "
    'sleep 1; t=$((t - 1)); done; '
    + _signal_group("KILL", or_leader=False) + "; true"
)


class LocalSubmitter(Submitter):
    """Subjobs as background processes on the resource, ``num_processes`` at a time."""

    name = "local"
    script_name = "submit"
    writes_completion_marker = True

    def submission_script(self, job: JobSpec) -> str:
        procs = job.parameters.get("num_processes")
        jobdir = shlex.quote(job.job_dir)
        return f"""#!/bin/sh
# ReproMan local launcher for job {job.jobid}: {job.n_subjobs} subjob(s),
# num_processes at a time (default: the CPUs of this machine).
jobdir={jobdir}
n={int(job.n_subjobs)}
procs={shlex.quote(str(procs)) if procs else '""'}
reproman_umask=$(umask); umask 077
# The runscript restores the caller's umask for the command; handing it over saves a process per subjob.
REPROMAN_UMASK=$reproman_umask; export REPROMAN_UMASK
printf '%s\\n' "$$" > "$jobdir/{layout.SUBMISSION_ID}"
if [ -z "$procs" ]; then
  procs=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
fi
# Each worker walks the indices and runs the subjobs whose started.INDEX it
# creates first (noclobber: an exclusive create, so no subjob runs twice). The
# runscript is parsed once here (with {layout.WORKER_FLAG} it only defines its
# functions); a subjob runs in a subshell (reproman_run), which becomes the
# command when nothing is left to do after it, the worker then writing its
# final status: whatever it does (exit, exec redirections, cd, a signal) ends
# there, and the worker takes the next one.
set -- {layout.WORKER_FLAG}; . "$jobdir/{layout.RUNSCRIPT}"; set --
# A SIGTERM or SIGHUP reaches this whole process group, also when a subjob runs
# 'kill 0' (a common cleanup idiom): it ends the subjobs running at that moment,
# but the launcher and its workers stop only for a cancel (its marker is written
# before the signal) or a job directory that is gone; otherwise they carry on.
reproman_signalled() {{
  if [ -e "$jobdir/{layout.CANCELLED}" ] || [ ! -d "$jobdir" ]; then exit 143; fi
}}
reproman_worker() {{
  trap reproman_signalled TERM HUP
  w_i=0
  while [ "$w_i" -lt "$n" ]; do
    if {{ set -C; true > "$jobdir/{layout.STARTED}.$w_i"; }} 2>/dev/null; then
      set +C
      reproman_run "$w_i"
    else
      set +C
    fi
    w_i=$((w_i + 1))
  done
}}
case "$procs" in ""|*[!0-9]*|0) procs=1 ;; esac
[ "$procs" -le "$n" ] || procs=$n
w=0
while [ "$w" -lt "$procs" ]; do
  reproman_worker </dev/null &
  w=$((w + 1))
done
trap reproman_signalled TERM HUP
# A trapped signal ends 'wait' early (status > 128); it returns 0 once every worker is done.
while ! wait; do :; done
: > "$jobdir/{layout.COMPLETED}"
"""

    def submit(self, job: JobSpec, script_path: str) -> str:
        jobdir = shlex.quote(job.job_dir)
        script = shlex.quote(script_path)
        log = shlex.quote(posixpath.join(job.job_dir, LAUNCHER_LOG))
        start = f"sh {script} </dev/null >{log} 2>&1 &"
        command = (
            f"cd {jobdir} || exit 1; (umask 077; : > {log}); "
            f"if command -v setsid >/dev/null 2>&1; then setsid {start} "
            f"else set -m; nohup {start} fi; echo $!"
        )
        result = self.session.execute_command(command)
        pid = result.stdout.strip().splitlines()[-1:] if result.stdout.strip() else []
        if result.returncode != 0 or not pid or not pid[0].isdigit():
            raise SubmissionError(
                f"local submitter could not start job {job.jobid}: "
                f"{result.stderr.strip() or result.stdout.strip() or 'no process id'}"
            )
        return pid[0]

    def find_submitted(self, job: JobSpec) -> str | None:
        """The launcher's PID if it started (it writes ``submission-id`` first thing), asked on the resource.

        A launcher that has not written it may still be starting (the remote
        command can outlive the CLI that sent it): None, not "never queued".
        """
        path = shlex.quote(posixpath.join(job.job_dir, layout.SUBMISSION_ID))
        result = self.session.execute_command(f"cat {path} 2>/dev/null; true")
        said = result.stdout.strip()
        return said if said.isdigit() else None

    def scheduler_states(
        self, jobs: Sequence[JobSpec], wanted: Mapping[str, Collection[int]] | None = None
    ) -> Mapping[str, Mapping[int, SchedulerState]]:
        """Ask, in one command, whether anything of each job's launcher is still alive.

        The launcher leads its own process group (``setsid``), and its workers
        and every subjob run in it: while any process of the group lives, the
        job is going (a launcher killed alone leaves the workers starting the rest),
        and a cancelled one is still being cancelled (``RUNNING`` with
        :attr:`SchedulerState.cancelling`): a subjob that ignores SIGTERM or
        cleans up slowly may still write into the working directory.
        A group that is gone without the launcher writing ``completed`` was
        killed (SIGKILL, OOM killer, reboot): its unfinished subjobs are
        cancelled (``cancel`` left a marker) or lost. The ``completed`` test
        comes after the liveness test, so a launcher that finishes between
        the two is not taken for dead.
        """
        if not jobs:
            return {}
        lines = []
        for job in jobs:
            d = shlex.quote(job.job_dir)
            fallback = shlex.quote(str(job.submission_id or ""))
            lines.append(
                f"pid=; IFS= read -r pid < {d}/{layout.SUBMISSION_ID} 2>/dev/null; pid=${{pid:-{fallback}}}; "
                f'if [ -z "$pid" ]; then :; '
                f'elif kill -0 "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null; then '
                f"[ -e {d}/{layout.CANCELLED} ] && echo {shlex.quote(job.jobid)} cancelling; "
                f"elif [ -e {d}/{layout.CANCELLED} ]; then echo {shlex.quote(job.jobid)} cancelled; "
                f"elif [ -e {d}/{layout.COMPLETED} ]; then :; "
                # Without its directory, no 'completed' can be read: core says unknown, not lost.
                f"elif [ ! -d {d} ]; then :; "
                f"else echo {shlex.quote(job.jobid)} lost; fi"
            )
        result = self.session.execute_command("; ".join(lines) + "; true")
        states: dict[str, dict[int, SchedulerState]] = {}
        by_id = {j.jobid: j for j in jobs}
        for line in result.stdout.splitlines():
            jobid, _, verdict = line.partition(" ")
            found = by_id.get(jobid)
            if found is None:
                continue
            if verdict == "cancelling":
                state = SchedulerState(state=State.RUNNING, detail=CANCELLING_DETAIL, cancelling=True)
            else:
                reason = FailureReason.CANCELLED if verdict == "cancelled" else FailureReason.LOST
                detail = ("cancelled with 'reproman jobs --cancel'" if verdict == "cancelled"
                          else LOST_DETAIL)
                state = SchedulerState(state=State.FAILED, reason=reason, detail=detail)
            states[jobid] = {i: state for i in range(found.n_subjobs)}
        return states

    def cancel(self, job: JobSpec) -> None:
        """Mark the job cancelled, signal the launcher's process group (all subjobs), and escalate.

        The signal must go out whatever became of the job directory: the
        marker is written in a subshell (a failed redirection of ``:`` ends
        a POSIX shell such as dash), and the recorded launcher PID stands in
        for the one the launcher wrote there. SIGTERM goes out now; SIGKILL
        follows ``[jobs] kill_after`` seconds later if anything of the group
        is still alive, sent by a killer started here in its own session
        (``setsid``, else ``nohup``) with its streams off the connection: the
        CLI does not wait for it, and neither the command's end nor a
        dropped SSH connection stops it. The command waits only a moment
        (~2 s) for the SIGTERM to end the job, as it does for most, and the
        user is warned when it did not.
        """
        d = shlex.quote(job.job_dir)
        fallback = shlex.quote(str(job.submission_id or ""))
        grace = kill_after_seconds()
        killer = f"sh -c {shlex.quote(_KILLER)} sh \"$pid\" {grace} </dev/null >/dev/null 2>&1 &"
        command = (
            f"(: > {d}/{layout.CANCELLED}) 2>/dev/null; "
            f"pid=; IFS= read -r pid < {d}/{layout.SUBMISSION_ID} 2>/dev/null; pid=${{pid:-{fallback}}}; "
            '[ -n "$pid" ] || exit 0; '
            + _signal_group("TERM") + "; "
            f"if command -v setsid >/dev/null 2>&1; then setsid {killer} else nohup {killer} fi; "
            # Most jobs end on SIGTERM in a moment: wait for that (at most ~2 s, less where
            # sleep takes no fraction), so the usual cancel reads cancelled as soon as it returns.
            f"n=0; while [ $n -lt {_TERM_WAIT_STEPS} ] && {{ {_signal_group('0', or_leader=False)}; }}; do "
            f"sleep 0.1 2>/dev/null || {{ sleep 1; n={_TERM_WAIT_STEPS}; }}; n=$((n + 1)); done; "
            f"if {_signal_group('0', or_leader=False)}; then echo {_STILL_ALIVE}; fi; true"
        )
        result = self.session.execute_command(command)
        if result.returncode != 0:
            raise SubmissionError(f"could not cancel job {job.jobid}: {result.stderr.strip()}")
        if _STILL_ALIVE in result.stdout.split():
            lgr.warning("job %s: some of its processes did not end on SIGTERM; they get SIGKILL %d s after the "
                        "SIGTERM ([jobs] kill_after), and until they are gone its subjobs read running (cancelling)",
                        job.jobid, grace)
