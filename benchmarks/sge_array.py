"""Benchmark: a 500-subjob array on the local Grid Engine cell (start it with tools/ci/sge.sh).

Figures (issue 16): submission time, from the last subjob's end to
``reproman run --follow`` returned, and scheduler queries per poll.

Two measurements:

1. **direct**: the job directory is written as core writes it, the
   :class:`~reproman_submitters.sge.SGESubmitter` submits, and core's poller
   (:func:`reproman.jobs.status.poll`: one status read plus one scheduler
   query) is driven at core's own adaptive interval
   (:func:`reproman.jobs.follow.next_interval`). Every command the session
   runs is counted: ``qstat`` calls and accounting commands (``qacct``, made
   only for tasks without a final status line that ``qstat`` no longer
   lists, e.g. one that ended between the status read and the ``qstat`` of
   the same poll) per poll are measured, not assumed.
2. **end to end**: ``reproman run --submitter sge --follow`` with 500 batch
   values, timed from outside; "end" is the newest status file's mtime.

The cell's queue has one slot per CPU (2 here), so 500 subjobs run two at a
time; the run time says more about Grid Engine's per-task start-up than
about ReproMan, and none of the measured latencies depends on it.

Usage: ``python benchmarks/sge_array.py [--subjobs 500] [--skip-e2e]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reproman.jobs.follow import next_interval
from reproman.jobs.layout import render_runscript
from reproman.jobs.spec import JobSpec, Subjob, new_jobid
from reproman.jobs.status import poll
from reproman.resources.session import CommandResult
from reproman.resources.shell import ShellSession
from reproman_submitters.sge import SGESubmitter


class CountingSession(ShellSession):
    def __init__(self) -> None:
        super().__init__()
        self.commands: list[str] = []

    def execute_command(self, command: Any, env: Any = None, cwd: Any = None, *, check: bool = False,
                        stdin: bytes | None = None) -> CommandResult:
        self.commands.append(command if isinstance(command, str) else " ".join(map(str, command)))
        return super().execute_command(command, env, cwd, check=check, stdin=stdin)


def last_status_mtime(job_dir: Path) -> float:
    return max(p.stat().st_mtime for p in job_dir.glob("status.*") if not p.name.endswith(".tmp"))


def direct(n: int, root: Path) -> dict[str, Any]:
    session = CountingSession()
    submitter = SGESubmitter(session)
    jobid = new_jobid()
    job_dir = root / "jobs" / jobid
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    commands = [f"echo {i}" for i in range(n)]
    job = JobSpec(jobid=jobid, command="echo", resource_name="local", resource_type="shell", submitter="sge",
                  orchestrator="plain", subjobs=[Subjob(command=c) for c in commands],
                  working_directory=str(work), job_dir=str(job_dir), status="submitted")
    session.mkdir(str(job_dir), parents=True)
    session.put_text(render_runscript(jobid=jobid, jobdir=str(job_dir), working_directory=str(work),
                                      commands=commands), str(job_dir / "runscript"))
    script = str(job_dir / submitter.script_name)
    session.put_text(submitter.submission_script(job), script)

    before = len(session.commands)
    t0 = time.monotonic()
    job.submission_id = submitter.submit(job, script)
    submit_s = time.monotonic() - t0
    submit_commands = session.commands[before:]

    qstat_per_poll: list[int] = []
    qacct_per_poll: list[int] = []
    interval = 0.05
    last_counts = None
    started = time.time()
    while True:
        before = len(session.commands)
        status = poll(session, submitter, [job])[job.jobid]
        issued = session.commands[before:]
        qstat_per_poll.append(sum(1 for c in issued if c.startswith("qstat")))
        qacct_per_poll.append(sum(1 for c in issued if "qacct -j" in c))
        if status.finished:
            known = time.time()
            break
        if time.time() - started > 3600:
            raise SystemExit(f"benchmark: job not finished after 60 min: {status.summary()}")
        counts = status.counts()
        interval = next_interval(interval, last_counts is not None and counts != last_counts)
        last_counts = counts
        time.sleep(interval)
    latency = known - last_status_mtime(job_dir)
    scheduler = [a + b for a, b in zip(qstat_per_poll, qacct_per_poll)]
    return {
        "subjobs": n,
        "submission_id": job.submission_id,
        "submit_seconds": round(submit_s, 3),
        "submit_commands": [c.split()[0] for c in submit_commands],
        "run_seconds": round(known - started, 1),
        "end_to_known_seconds": round(latency, 3),
        "polls": len(scheduler),
        "qstat_per_poll_max": max(qstat_per_poll),
        "qacct_commands_total": sum(qacct_per_poll),
        "scheduler_queries_per_poll_max": max(scheduler),
        "scheduler_queries_per_poll_mean": round(sum(scheduler) / len(scheduler), 3),
        "ok": status.ok,
    }


def end_to_end(n: int, root: Path) -> dict[str, Any]:
    work = root / "e2e project"
    work.mkdir(parents=True, exist_ok=True)
    remote = root / "e2e remote root"
    env = {**os.environ, "XDG_DATA_HOME": str(root / "xdg-data"), "XDG_CONFIG_HOME": str(root / "xdg-config")}
    argv = [sys.executable, "-m", "reproman", "run", "--submitter", "sge", "--jp", f"root_directory={remote}",
            "--bp", "i=" + ",".join(str(i) for i in range(n)), "--follow", "echo", "{p[i]}"]
    t0 = time.time()
    result = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
    returned = time.time()
    if result.returncode != 0:
        raise SystemExit(f"benchmark: reproman run failed ({result.returncode}): {result.stderr[-2000:]}")
    job_dirs = list((remote / ".reproman" / "jobs").glob("*/*"))
    if len(job_dirs) != 1:
        raise SystemExit(f"benchmark: expected one job directory under {remote}, found {job_dirs}")
    fetched = list((work / ".reproman" / "jobs").rglob("stdout.*"))
    return {
        "subjobs": n,
        "run_follow_seconds": round(returned - t0, 1),
        "end_to_return_seconds": round(returned - last_status_mtime(job_dirs[0]), 3),
        "fetched_stdout_files": len(fetched),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjobs", type=int, default=500)
    parser.add_argument("--skip-e2e", action="store_true", help="only the direct measurement")
    args = parser.parse_args()
    if subprocess.run(["qstat"], capture_output=True).returncode != 0:
        print("benchmark: Grid Engine is not running; start it with tools/ci/sge.sh (as root)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="reproman-bench-") as tmp:
        results = {"direct": direct(args.subjobs, Path(tmp) / "direct")}
        print(json.dumps(results["direct"]), file=sys.stderr)
        if not args.skip_e2e:
            results["end_to_end"] = end_to_end(args.subjobs, Path(tmp))
    targets = {
        "one qstat per poll": results["direct"]["qstat_per_poll_max"] == 1,
        "every subjob succeeded": results["direct"]["ok"],
    }
    results["checks"] = targets
    print(json.dumps(results, indent=2))
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
