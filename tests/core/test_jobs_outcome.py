"""Final states are facts: recorded once, refined, never regressed; silence becomes "lost" only after a grace period.

These drive :func:`reproman.jobs.status.interpret` and :mod:`reproman.jobs.outcome`
with what a scheduler could say, including what no real scheduler here can be
made to say on demand (a subjob completed in the scheduler's eyes whose
status file stays silent).
"""

from __future__ import annotations

import pytest

from reproman.jobs import outcome
from reproman.jobs.contracts import FailureReason, SchedulerState, State, SubjobStatus, Usage
from reproman.jobs.follow import MAX_INTERVAL, max_interval, next_interval
from reproman.jobs.spec import JobSpec, Subjob
from reproman.jobs.status import RemoteFiles, interpret


def job_of(n: int = 1, **fields: object) -> JobSpec:
    fields.setdefault("subjobs", [Subjob(command="c", p={"i": i + 1}) for i in range(n)])
    return JobSpec(jobid="20240101-000000-abcdef", command="c", resource_name="local", resource_type="shell",
                   submitter="slurm", orchestrator="plain", status="submitted", job_dir="/j",
                   **fields)  # type: ignore[arg-type]


FILES_RUNNING = RemoteFiles(exists=True, lines={0: "running"})
WALLTIME = SchedulerState(state=State.FAILED, reason=FailureReason.WALLTIME, detail="TIMEOUT")
FORGOTTEN = SchedulerState.forgotten()


def shown(job: JobSpec, files: RemoteFiles, said: SchedulerState | None = None, **kw: object) -> SubjobStatus:
    status = interpret(job, files, {0: said} if said else None, lost_after=60, **kw)  # type: ignore[arg-type]
    outcome.record(job, status)
    return status.subjobs[0]


def test_walltime_stays_walltime_after_the_scheduler_forgets() -> None:
    job = job_of()
    first = shown(job, FILES_RUNNING, WALLTIME)
    assert (first.state, first.reason) == (State.FAILED, FailureReason.WALLTIME)
    # Five minutes later the scheduler has forgotten it and the file still says running.
    later = shown(job, FILES_RUNNING, FORGOTTEN, ages={0: 3600.0}, now=1e10)
    assert (later.state, later.reason) == (State.FAILED, FailureReason.WALLTIME)


def test_running_forever_becomes_lost_once_forgotten_and_silent() -> None:
    job = job_of()
    # Forgotten, status file written 10 s ago: maybe a late filesystem; wait.
    assert shown(job, FILES_RUNNING, FORGOTTEN, ages={0: 10.0}, now=1000.0).state is State.RUNNING
    assert job.unaccounted == {} and outcome.recorded(job, 0) is None
    # Next morning: the status file has been silent for hours.
    late = shown(job, FILES_RUNNING, FORGOTTEN, ages={0: 40000.0}, now=1000.0)
    assert (late.state, late.reason) == (State.FAILED, FailureReason.LOST)
    assert "no longer knows" in late.detail


def test_completed_without_a_final_line_waits_then_is_lost() -> None:
    """The scheduler says it completed, the file says running: wait the grace period from first sight."""
    job = job_of()
    done = SchedulerState(state=State.SUCCEEDED, exit_code=0)
    job.unaccounted["0"] = 1000.0
    assert shown(job, FILES_RUNNING, done, now=1030.0).state is State.RUNNING
    late = shown(job, FILES_RUNNING, done, now=1061.0)
    assert (late.state, late.reason) == (State.FAILED, FailureReason.LOST)
    assert job.unaccounted == {}


def test_own_final_line_replaces_lost_but_not_a_known_cause() -> None:
    job = job_of()
    shown(job, FILES_RUNNING, FORGOTTEN, ages={0: 9999.0})
    assert outcome.recorded(job, 0).reason is FailureReason.LOST  # type: ignore[union-attr]
    # The line shows up after all (a slow shared filesystem): it is the truth.
    late = shown(job, RemoteFiles(exists=True, lines={0: "succeeded 0"}))
    assert late.state is State.SUCCEEDED
    # A failure with a known cause is never replaced.
    other = job_of()
    shown(other, FILES_RUNNING, WALLTIME)
    again = shown(other, RemoteFiles(exists=True, lines={0: "succeeded 0"}))
    assert (again.state, again.reason) == (State.FAILED, FailureReason.WALLTIME)


def test_known_cause_refines_a_signal_exit_and_usage_is_added() -> None:
    rec = outcome.merge(None, SubjobStatus(index=0, state=State.FAILED, exit_code=143,
                                           reason=FailureReason.EXIT_CODE))
    assert rec is not None
    # 'reproman jobs --cancel' after the fact stopped nothing of it: no relabelling, usage still added.
    ours = outcome.merge(rec, SubjobStatus(index=0, state=State.FAILED, reason=FailureReason.CANCELLED,
                                           detail=outcome.CANCEL_DETAIL, usage=Usage(elapsed=3.0)))
    assert ours is not None and (ours.reason, ours.exit_code, ours.usage) == (
        FailureReason.EXIT_CODE, 143, Usage(elapsed=3.0))
    # An exit code that is not a signal's is its own explanation.
    plain = outcome.merge(None, SubjobStatus(index=0, state=State.FAILED, exit_code=3, reason=FailureReason.EXIT_CODE))
    assert outcome.merge(plain, SubjobStatus(index=0, state=State.FAILED, reason=FailureReason.WALLTIME)) == plain
    refined = outcome.merge(rec, SubjobStatus(index=0, state=State.FAILED, reason=FailureReason.WALLTIME,
                                              detail="TIMEOUT", usage=Usage(elapsed=3.0)))
    assert refined is not None
    assert (refined.reason, refined.exit_code, refined.usage) == (FailureReason.WALLTIME, 143, Usage(elapsed=3.0))
    # ...and a later "lost" or "non-zero exit" does not undo it.
    for weaker in (FailureReason.LOST, FailureReason.EXIT_CODE):
        assert outcome.merge(refined, SubjobStatus(index=0, state=State.FAILED, reason=weaker)) == refined
    # A succeeded subjob stays succeeded, whatever is said later.
    ok = outcome.merge(None, SubjobStatus(index=0, state=State.SUCCEEDED, exit_code=0))
    assert outcome.merge(ok, SubjobStatus(index=0, state=State.FAILED, reason=FailureReason.CANCELLED)) == ok


def test_cancelled_job_reads_cancelled_even_after_the_scheduler_forgot() -> None:
    job = job_of(2, cancelled="2024-01-01T00:00:00")
    files = RemoteFiles(exists=True, lines={0: "failed 143", 1: "running"})
    status = interpret(job, files, {0: FORGOTTEN, 1: FORGOTTEN}, ages={0: 999.0, 1: 999.0}, lost_after=60)
    assert [(s.state, s.reason) for s in status.subjobs] == [(State.FAILED, FailureReason.CANCELLED)] * 2


def test_killed_subjob_waits_for_the_schedulers_verdict() -> None:
    """A signal exit while the scheduler still ends the job is not final: its cause comes next poll."""
    job = job_of()
    files = RemoteFiles(exists=True, lines={0: "failed 143"})
    ending = SchedulerState(state=State.RUNNING, detail="completing")
    assert shown(job, files, ending).state is State.RUNNING
    assert shown(job, files, WALLTIME).reason is FailureReason.WALLTIME


def test_pending_reason_and_blocked_reach_the_status() -> None:
    job = job_of(2)
    said = {0: SchedulerState(state=State.PENDING, detail="PartitionConfig", blocked=True),
            1: SchedulerState(state=State.PENDING, detail="Resources")}
    status = interpret(job, RemoteFiles(exists=True), said)
    assert status.pending_reasons() == {"PartitionConfig": 1, "Resources": 1}
    assert not status.stuck  # one of them may still start
    said[1] = SchedulerState(state=State.PENDING, detail="PartitionConfig", blocked=True)
    status = interpret(job, RemoteFiles(exists=True), said)
    assert status.stuck and "2 pending (PartitionConfig)" == status.summary()
    assert status.to_dict()["subjobs"][0]["subjob"] == "i=1"


def test_outcome_text_and_labels() -> None:
    job = job_of(3)
    assert outcome.outcome_text(job) == "3 not checked"
    outcome.record(job, interpret(job, RemoteFiles(exists=True, lines={0: "succeeded 0", 1: "failed 2"})))
    assert outcome.outcome_text(job) == "1 succeeded, 1 failed, 1 not checked"
    outcome.record(job, interpret(job, RemoteFiles(exists=True, lines={2: "succeeded 0"})))
    assert outcome.outcome_text(job) == "2 succeeded, 1 failed"
    assert [r["subjob"] for r in outcome.failure_rows(job, outcome.statuses_from_record(job))] == ["i=2"]
    assert outcome.subjob_label(job_of(1, subjobs=[Subjob(command="c")]), 0) == "#0"


def test_poll_interval_backs_off_with_age_up_to_the_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    # Young and moving: around a second; young and idle: at most 3 s.
    assert next_interval(0.5, changed=True, elapsed=10) == pytest.approx(0.5)
    assert next_interval(0.5, changed=True, elapsed=60) == pytest.approx(0.625)
    assert next_interval(2.5, changed=False, elapsed=30) == 3.0
    # An hour in, idle: a minute between polls; busy: the age keeps it from polling every second.
    assert next_interval(50.0, changed=False, elapsed=3600) == MAX_INTERVAL
    assert next_interval(50.0, changed=True, elapsed=3600) == MAX_INTERVAL
    assert next_interval(50.0, changed=False, maximum=20.0, elapsed=3600) == 20.0
    assert max_interval({"max_poll_interval": 15.0}) == 15.0
    monkeypatch.setenv("REPROMAN_JOBS_MAX_POLL_INTERVAL", "30")
    from reproman.config import reset_config

    reset_config()
    assert max_interval({}) == 30.0
    monkeypatch.setenv("REPROMAN_JOBS_MAX_POLL_INTERVAL", "soon")
    reset_config()
    from reproman.errors import ConfigError

    with pytest.raises(ConfigError, match="max_poll_interval"):
        max_interval({})


def test_a_signal_exit_not_yet_recorded_asks_the_scheduler() -> None:
    """'failed 143' in the status file: the poll must ask the scheduler why (walltime, cancel...) before recording."""
    job = job_of()
    files = RemoteFiles(exists=True, lines={0: "failed 143"})
    assert interpret(job, files).unsettled == {0}
    assert interpret(job, RemoteFiles(exists=True, lines={0: "failed 1"})).unsettled == frozenset()
    shown(job, files, WALLTIME)
    assert interpret(job, files).unsettled == frozenset()  # recorded: no more questions


def test_one_summary_for_listing_status_and_follow() -> None:
    """The listing (record alone) and 'jobs --status'/--follow (a poll) say the same of a job:
    cancelled subjobs are counted as cancelled, not as failed, in both."""
    job = job_of(4, cancelled="2024-01-01T00:00:00")
    job.cancelled_subjobs = [2, 3]
    files = RemoteFiles(exists=True, lines={0: "succeeded 0", 1: "failed 3", 2: "failed 143", 3: "running"})
    status = interpret(job, files, {3: FORGOTTEN}, ages={3: 999.0}, lost_after=60)
    outcome.record(job, status)
    assert status.summary() == "1 succeeded, 1 failed, 2 cancelled"
    assert outcome.outcome_text(job) == status.summary()
    assert status.counts() == {"pending": 0, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 2, "unknown": 0}


def test_a_scheduler_kill_shows_no_exit_code_of_its_own() -> None:
    """Slurm's TIMEOUT is 'ExitCode 0:0': a walltime kill before the command ended has no exit code to show;
    a plain failure the scheduler reports keeps its code."""
    job = job_of(2)
    said = {0: SchedulerState(state=State.FAILED, reason=FailureReason.WALLTIME, detail="TIMEOUT", exit_code=0),
            1: SchedulerState(state=State.FAILED, reason=FailureReason.EXIT_CODE, detail="FAILED", exit_code=137)}
    status = interpret(job, RemoteFiles(exists=True, lines={0: "running", 1: "running"}), said)
    assert [(s.reason, s.exit_code) for s in status.subjobs] == [
        (FailureReason.WALLTIME, None), (FailureReason.EXIT_CODE, 137)]


def test_failure_under_a_memory_limit_waits_for_late_accounting_for_the_grace_period_only() -> None:
    """The scheduler saw it end, its accounting has no record yet: the cause (a refused allocation) may be
    in that record, so the failure is not recorded yet, but for no longer than the grace period."""
    job = job_of(1, parameters={"memory": "100M"})
    files = RemoteFiles(exists=True, lines={0: "failed 1"})
    moments_ago = SchedulerState(state=State.SUCCEEDED, exit_code=None, detail="ended moments ago")
    waiting = interpret(job, files, {0: moments_ago}, now=1000.0, lost_after=60).subjobs[0]
    assert waiting.state is State.RUNNING and "waiting for the scheduler's accounting" in waiting.detail
    job.unaccounted["0"] = 1000.0
    assert interpret(job, files, {0: moments_ago}, now=1030.0, lost_after=60).subjobs[0].state is State.RUNNING
    late = interpret(job, files, {0: moments_ago}, now=1061.0, lost_after=60).subjobs[0]
    assert (late.state, late.reason, late.exit_code) == (State.FAILED, FailureReason.EXIT_CODE, 1)
    # Still listed as running (ending), or not listed at all yet: the same wait.
    job.unaccounted.clear()
    for said in (SchedulerState(state=State.RUNNING), FORGOTTEN):
        assert interpret(job, files, {0: said}, now=1000.0, lost_after=60).subjobs[0].state is State.RUNNING
    # Not asked (reading the status files alone): the file's word stands.
    assert interpret(job, files).subjobs[0].state is State.FAILED
    # Without a memory limit an exit code 1 is its own explanation: recorded at once.
    plain = interpret(job_of(1), files, {0: moments_ago}, now=1000.0, lost_after=60).subjobs[0]
    assert (plain.state, plain.exit_code) == (State.FAILED, 1)
