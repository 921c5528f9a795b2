"""The ``serial`` submitter: the subjobs of a job run one after another, in index order, detached.

For a machine where one run at a time may use the GPU or the disk. The
status files the runscript writes decide completion; this class only
starts the loop, tells core when the loop died without finishing, and
cancels it.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Collection, Mapping, Sequence

from reproman.plugins import FailureReason, JobFiles, JobSpec, SchedulerState, State, SubmissionError, Submitter

LOG = "serial.log"


class SerialSubmitter(Submitter):
    name = "serial"
    script_name = "submit.serial"
    writes_completion_marker = True  # the script ends with ': > completed' (see below)

    def submission_script(self, job: JobSpec) -> str:
        jobdir = shlex.quote(job.job_dir)
        return (
            "#!/bin/sh\n"
            f"# ReproMan serial launcher for job {job.jobid}: {job.n_subjobs} subjob(s), one at a time.\n"
            f"jobdir={jobdir}\n"
            f'printf "%s\\n" "$$" > "$jobdir/{JobFiles.SUBMISSION_ID}"\n'
            f"i=0; while [ $i -lt {int(job.n_subjobs)} ]; do\n"
            f'  sh "$jobdir/{JobFiles.RUNSCRIPT}" "$i"\n'
            "  i=$((i + 1))\n"
            "done\n"
            f': > "$jobdir/{JobFiles.COMPLETED}"\n'
        )

    def submit(self, job: JobSpec, script_path: str) -> str:
        # setsid: the loop leads a process group of its own, so cancel() reaches every subjob
        # with one signal, and closing the user's terminal or connection reaches none.
        log = shlex.quote(posixpath.join(job.job_dir, LOG))
        result = self.session.execute_command(
            f"setsid sh {shlex.quote(script_path)} </dev/null >{log} 2>&1 & echo $!"
        )
        pid = result.stdout.strip()
        if result.returncode != 0 or not pid.isdigit():
            raise SubmissionError(f"serial submitter could not start job {job.jobid}: "
                                  f"{result.stderr.strip() or 'no process id'}")
        return pid

    def scheduler_states(
        self, jobs: Sequence[JobSpec], wanted: Mapping[str, Collection[int]] | None = None
    ) -> Mapping[str, Mapping[int, SchedulerState]]:
        """One command for all jobs: which loops are gone, and were they cancelled?

        A live loop says nothing (the status files speak for its subjobs). A
        loop that is gone without its ``completed`` marker was killed: its
        unfinished subjobs are cancelled if ``cancel`` left its marker, else
        forgotten, and core calls them lost once their status files stay silent.
        """
        if not jobs:
            return {}
        checks = []
        for job in jobs:
            d = shlex.quote(job.job_dir)
            checks.append(
                f'pid=$(cat {d}/{JobFiles.SUBMISSION_ID} 2>/dev/null); '
                f'if [ -n "$pid" ] && kill -0 "-$pid" 2>/dev/null; then :; '
                f"elif [ -e {d}/{JobFiles.CANCELLED} ]; then echo {shlex.quote(job.jobid)} cancelled; "
                f"elif [ ! -e {d}/{JobFiles.COMPLETED} ]; then echo {shlex.quote(job.jobid)} gone; fi"
            )
        result = self.session.execute_command("; ".join(checks) + "; true")
        by_id = {job.jobid: job for job in jobs}
        states: dict[str, dict[int, SchedulerState]] = {}
        for line in result.stdout.splitlines():
            jobid, _, verdict = line.partition(" ")
            if jobid not in by_id:
                continue
            state = (SchedulerState(state=State.FAILED, reason=FailureReason.CANCELLED, detail="cancelled")
                     if verdict == "cancelled" else SchedulerState.forgotten())
            states[jobid] = {i: state for i in range(by_id[jobid].n_subjobs)}
        return states

    def cancel(self, job: JobSpec) -> None:
        """Mark the job cancelled first, then stop the whole group: no subjob is left running.

        The marker comes first so that a subjob killed by the signal, which
        may still write ``failed 143``, reads as cancelled rather than lost.
        """
        d = shlex.quote(job.job_dir)
        result = self.session.execute_command(
            f": > {d}/{JobFiles.CANCELLED}; pid=$(cat {d}/{JobFiles.SUBMISSION_ID} 2>/dev/null); "
            '[ -z "$pid" ] || kill -TERM "-$pid" 2>/dev/null; true'
        )
        if result.returncode != 0:
            raise SubmissionError(f"could not cancel job {job.jobid}: {result.stderr.strip()}")
