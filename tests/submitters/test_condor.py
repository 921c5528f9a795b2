"""HTCondor submitter against a FAKE condor_submit/condor_q/condor_rm (reproman/testing/fakesched.py).

NOT run against a live HTCondor pool: its daemons cannot be installed here.
The fake parses the submit description (unknown commands fail), prints
``condor_submit -terse`` output, runs ``/bin/sh runscript $(Process)`` per proc
and answers ``condor_q -json`` (completed procs leave the queue, removed ones
show JobStatus 3).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from submitters_helpers import fake_calls, fake_options, make_job, submit, wait

from reproman.errors import SubmissionError
from reproman.jobs.contracts import FailureReason, State
from reproman_submitters.condor import CondorSubmitter, condor_arg, condor_state, parse_terse

CMDS = ["echo zero", "echo one", "exit 4", "echo 'it''s'"]


@pytest.fixture
def condor(session, fake_scheduler) -> CondorSubmitter:
    return CondorSubmitter(session)


def test_cluster_runs_every_proc(condor, session, jobroot, fake_scheduler):
    job = submit(session, condor, jobroot, CMDS, {"memory": "2G", "num_processes": 2, "gpus": 1,
                                                   "walltime": "00:10:00", "account": "group_physics",
                                                   "throttle": 2, "directives": ["requirements = (OpSys == \"LINUX\")"]})
    assert job.submission_id == "100"
    status = wait(session, condor, job)
    assert [s.state for s in status.subjobs] == [State.SUCCEEDED, State.SUCCEEDED, State.FAILED, State.SUCCEEDED]
    assert status.subjobs[2].exit_code == 4
    submitted = fake_options(fake_scheduler, "100")["submit"]
    assert submitted["request_memory"] == "2048" and submitted["request_cpus"] == "2"
    assert submitted["allowed_execute_duration"] == "600" and submitted["max_materialize"] == "2"
    assert submitted["accounting_group"] == "group_physics" and submitted["request_gpus"] == "1"
    assert submitted["initialdir"] == job.job_dir  # a path with a space, unquoted as condor wants
    assert "queue 4" in Path(job.job_dir, "submit.condor").read_text()
    assert all(c[0] == "-json" for c in fake_calls(fake_scheduler, "condor_q"))


def test_cancel(condor, session, jobroot, monkeypatch):
    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    job = submit(session, condor, jobroot, CMDS[:2])
    assert {s.state for s in condor.scheduler_states([job])[job.jobid].values()} == {State.PENDING}
    condor.cancel(job)
    status = wait(session, condor, job, timeout=10)
    assert [s.reason for s in status.subjobs] == [FailureReason.CANCELLED] * 2


@pytest.mark.parametrize("param", [{"queue": "short"}, {"num_nodes": 2}, {"max_array_size": 10},
                                   {"launcher": True}, {"qos": "high"}])
def test_unsupported_parameters_are_errors(condor, session, jobroot, param):
    with pytest.raises(SubmissionError, match="does not support"):
        make_job(session, condor, jobroot, ["true"], param)


def test_terse_output_parsed_strictly():
    assert parse_terse("4711.0 - 4711.9\n") == ("4711", 0, 9)
    for bad in ("", "Submitting job(s)..........\n10 job(s) submitted to cluster 4711.\n", "1.0 - 2.3\n"):
        with pytest.raises(SubmissionError):
            parse_terse(bad)


def test_arguments_quoting():
    assert condor_arg("/a b/it's \"x\"") == "'/a b/it''s \"\"x\"\"'"


def test_hold_reasons():
    assert condor_state({"JobStatus": 5, "HoldReasonCode": 34, "HoldReason": "memory"}).reason is FailureReason.OUT_OF_MEMORY  # type: ignore[union-attr]
    assert condor_state({"JobStatus": 5, "HoldReasonCode": 47}).reason is FailureReason.WALLTIME  # type: ignore[union-attr]
    held = condor_state({"JobStatus": 5, "HoldReasonCode": 1, "HoldReason": "via condor_hold"})
    assert held is not None and held.state is State.PENDING and "condor_hold" in held.detail
    assert condor_state({"JobStatus": 4, "ExitCode": 0}).state is State.SUCCEEDED  # type: ignore[union-attr]
    assert condor_state({"JobStatus": 2}).state is State.RUNNING  # type: ignore[union-attr]
