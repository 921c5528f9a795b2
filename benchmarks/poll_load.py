"""Benchmark: scheduler queries per hour while following a one-hour job (issue 11).

Runs core's real ``follow()`` and ``poll()`` on a simulated clock against a
simulated resource: status files and a scheduler that answer as a job
running for one hour would. Every :meth:`scheduler_states` call is one
scheduler query (one ``squeue``); they are counted, and so are the status
reads (one remote command each). Three jobs:

* ``single``: one subjob that runs for an hour (nothing changes until the end);
* ``array``: 1,000 subjobs, two at a time, ending evenly over the hour
  (something changes at almost every poll);
* ``pending``: one subjob queued for 50 minutes, then running for 10.

The baseline is the previous follower (at most 3 s between polls, so about
1,200 queries an hour), computed the same way with ``--maximum 3``.

Usage: ``python benchmarks/poll_load.py [--hours 1] [--maximum SECONDS]``
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any
from unittest import mock

from reproman.jobs import follow as follow_module
from reproman.jobs import status as status_module
from reproman.jobs.contracts import SchedulerState, State, Submitter
from reproman.jobs.spec import JobSpec, Subjob
from reproman.resources.session import CommandResult


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return 1_000_000.0 + self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Scenario:
    """When each subjob starts and ends, in simulated seconds."""

    def __init__(self, spans: Sequence[tuple[float, float]]) -> None:
        self.spans = list(spans)

    def line(self, index: int, now: float) -> str | None:
        start, end = self.spans[index]
        if now >= end:
            return "succeeded 0"
        if now >= start:
            return "running"
        return None


class FakeSession:
    """Answers core's status read from the scenario; counts remote commands."""

    def __init__(self, job: JobSpec, scenario: Scenario, clock: Clock) -> None:
        self.job, self.scenario, self.clock = job, scenario, clock
        self.commands = 0

    def execute_command(self, command: Any, *args: Any, **kwargs: Any) -> CommandResult:
        self.commands += 1
        lines = [f"== {self.job.job_dir}", "+exists"]
        for index in range(self.job.n_subjobs):
            line = self.scenario.line(index, self.clock.now)
            if line is not None:
                lines.append(f"{index} {line}")
        return CommandResult(command=str(command), returncode=0, stdout_bytes=("\n".join(lines) + "\n").encode())


class FakeScheduler(Submitter):
    """One query per call, like squeue; says pending or running for what the files do not."""

    name = "simulated"

    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario, self.clock = scenario, clock
        self.queries = 0

    def submission_script(self, job: Any) -> str:
        return ""

    def submit(self, job: Any, script_path: str) -> str:
        return "1"

    def cancel(self, job: Any) -> None:
        pass

    def scheduler_states(self, jobs: Sequence[Any], wanted: Any = None) -> Mapping[str, Mapping[int, SchedulerState]]:
        self.queries += 1
        now = self.clock.now
        result: dict[str, dict[int, SchedulerState]] = {}
        for job in jobs:
            for index, (start, end) in enumerate(self.scenario.spans):
                state = State.PENDING if now < start else State.RUNNING if now < end else State.SUCCEEDED
                result.setdefault(job.jobid, {})[index] = SchedulerState(state=state)
        return result


class FakeConnection:
    def __init__(self, session: FakeSession, scheduler: FakeScheduler) -> None:
        self.session, self._scheduler = session, scheduler

    def submitter(self, name: str) -> FakeScheduler:
        return self._scheduler


def measure(scenario: Scenario, maximum: float | None) -> dict[str, Any]:
    clock = Clock()
    job = JobSpec(jobid="20240101-000000-bench0", command="c", resource_name="sim", resource_type="shell",
                  submitter="simulated", orchestrator="plain", status="submitted", job_dir="/sim/job",
                  subjobs=[Subjob(command="c") for _ in scenario.spans])
    session = FakeSession(job, scenario, clock)
    scheduler = FakeScheduler(scenario, clock)
    with mock.patch.object(follow_module, "time", clock), mock.patch.object(status_module, "time", clock):
        status = follow_module.follow(FakeConnection(session, scheduler), job, maximum=maximum)  # type: ignore[arg-type]
    end = max(e for _s, e in scenario.spans)
    return {
        "finished": status.finished,
        "job_seconds": end,
        "scheduler_queries": scheduler.queries,
        "queries_per_hour": round(scheduler.queries * 3600 / end, 1),
        "status_reads": session.commands,
        "detected_after_end_s": round(clock.now - end, 1),
    }


def scenarios(hours: float) -> dict[str, Scenario]:
    total = 3600.0 * hours
    per = total / 500  # 1,000 subjobs, two at a time
    return {
        "single": Scenario([(1.0, total)]),
        "array": Scenario([(1.0 + (i // 2) * per, 1.0 + (i // 2 + 1) * per) for i in range(1000)]),
        "pending": Scenario([(total * 5 / 6, total)]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--maximum", type=float, default=None,
                        help="max_poll_interval (default: the configured one, 60 s)")
    args = parser.parse_args()
    results = {name: measure(s, args.maximum) for name, s in scenarios(args.hours).items()}
    results["baseline_3s_ceiling"] = {name: measure(s, 3.0) for name, s in scenarios(args.hours).items()}
    print(json.dumps(results, indent=2))
    worst = max(r["queries_per_hour"] for name, r in results.items() if name != "baseline_3s_ceiling")
    print(f"scheduler queries per hour while following (worst case): {worst}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
