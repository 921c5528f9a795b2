"""PBS submitter against a FAKE qsub/qstat/qdel (reproman/testing/fakesched.py).

NOT run against a live PBS Pro, OpenPBS or Torque server: none can be
installed here. The fake checks directives and answers ``qstat -f`` in the
documented format (array parents, subjobs ``123[4].server``, finished jobs
with ``-x``/``C``, unknown ids), and really runs each subjob.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from submitters_helpers import fake_calls, fake_options, make_job, submit, wait

from reproman.errors import ConfigError, SubmissionError
from reproman.jobs.contracts import FailureReason, State
from reproman_submitters.pbs import PBSSubmitter, parse_qstat_f, parse_qsub_output, pbs_state


@pytest.fixture
def pbs(session, fake_scheduler) -> PBSSubmitter:
    return PBSSubmitter(session)


@pytest.fixture
def torque(session, fake_scheduler, monkeypatch, tmp_path) -> PBSSubmitter:
    monkeypatch.setenv("FAKE_PBS_FLAVOR", "torque")
    monkeypatch.setenv("REPROMAN_SUBMITTER-PBS_FLAVOR", "torque")
    from reproman.config import reset_config

    reset_config()
    sub = PBSSubmitter(session)
    assert sub.flavor == "torque"
    return sub


CMDS = ["echo zero", "echo one", "echo two >&2; exit 3", "echo three", "echo four"]


def check_results(status, failing=2, code=3):
    assert status.finished
    for s in status.subjobs:
        if s.index == failing:
            assert (s.state, s.exit_code, s.reason) == (State.FAILED, code, FailureReason.EXIT_CODE)
        else:
            assert (s.state, s.exit_code) == (State.SUCCEEDED, 0)


@pytest.mark.parametrize("flavor", ["pbs", "torque"])
def test_array_runs_every_subjob(flavor, request, session, jobroot, fake_scheduler):
    sub = request.getfixturevalue(flavor)
    job = submit(session, sub, jobroot, CMDS, {"memory": "1G", "num_processes": 2, "walltime": "1:00:00",
                                               "queue": "short", "account": "lab"})
    assert job.submission_id == "100[].fakeserver"
    check_results(wait(session, sub, job))
    job_dir = Path(job.job_dir)
    assert (job_dir / "stdout.1").read_text() == "one\n"
    options = fake_options(fake_scheduler, str(job.submission_id))
    assert options["-q"] == "short" and options["-A"] == "lab"
    if flavor == "pbs":
        assert options["resources"] == ["select=1:ncpus=2:mem=1024mb", "walltime=1:00:00"]
        assert fake_calls(fake_scheduler, "qsub")[0][:2] == ["-J", "0-4"]
    else:
        assert options["resources"] == ["nodes=1:ppn=2,mem=1024mb", "walltime=1:00:00"]
        assert fake_calls(fake_scheduler, "qsub")[0][:2] == ["-t", "0-4"]
    # Every poll asked qstat once, for all subjobs.
    qstats = fake_calls(fake_scheduler, "qstat")
    assert qstats and all(c[:3] == ["-f", "-t", "-x"] if flavor == "pbs" else c[:2] == ["-f", "-t"] for c in qstats)


def test_single_subjob_is_not_an_array(pbs, session, jobroot, fake_scheduler):
    job = submit(session, pbs, jobroot, ["echo only"])
    assert job.submission_id == "100.fakeserver"
    status = wait(session, pbs, job)
    assert status.ok
    assert "-J" not in fake_calls(fake_scheduler, "qsub")[0]


def test_split_array_with_throttle(pbs, session, jobroot, fake_scheduler):
    job = submit(session, pbs, jobroot, CMDS, {"max_array_size": 2, "throttle": 1})
    ids = str(job.submission_id).split(",")
    assert ids == ["100[].fakeserver", "101[].fakeserver", "102.fakeserver"]
    calls = fake_calls(fake_scheduler, "qsub")
    assert calls[0][:2] == ["-J", "0-1%1"]
    assert ["-v", "REPROMAN_OFFSET=2"] == calls[1][2:4] and "depend=afterany:100[].fakeserver" in calls[1]
    assert "REPROMAN_OFFSET=4" in calls[2]
    check_results(wait(session, pbs, job))


def test_cancel_queued_and_states(pbs, session, jobroot, fake_scheduler, monkeypatch):
    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    job = submit(session, pbs, jobroot, CMDS[:3])
    said = pbs.scheduler_states([job])
    assert {i: s.state for i, s in said[job.jobid].items()} == {0: State.PENDING, 1: State.PENDING, 2: State.PENDING}
    pbs.cancel(job)
    status = wait(session, pbs, job, timeout=10)
    assert all(s.reason is FailureReason.CANCELLED for s in status.subjobs)
    pbs.cancel(job)  # a second cancel of a finished job is not an error


def test_unknown_ids_are_forgotten_not_an_error(pbs, session, jobroot):
    job, _ = make_job(session, pbs, jobroot, ["true"])
    job.submission_id = "999[].fakeserver"
    assert pbs.scheduler_states([job])[job.jobid][0].known is False


def test_launcher_one_allocation(pbs, session, jobroot, fake_scheduler):
    job = submit(session, pbs, jobroot, CMDS, {"launcher": True, "throttle": 2, "num_processes": 1})
    assert job.submission_id == "100.fakeserver"
    script = Path(job.job_dir, "submit.pbs").read_text()
    assert "xargs -n 1 -P 2" in script and "-J" not in fake_calls(fake_scheduler, "qsub")[0]
    assert fake_options(fake_scheduler, str(job.submission_id))["resources"] == ["select=1:ncpus=2"]
    check_results(wait(session, pbs, job))


@pytest.mark.parametrize("where", ["configuration", "job"])
def test_launcher_is_followed_as_one_allocation(where, pbs, session, jobroot, fake_scheduler, monkeypatch):
    """``[submitter-pbs] launcher = yes`` is honoured as ``--jp launcher=true`` is: script AND queue reading.

    Held in the queue, the one launcher job stands for every subjob: all
    pending, none unknown to the scheduler (which core would call lost).
    """
    from reproman.config import reset_config

    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    parameters: dict[str, object] = {"throttle": 2}
    if where == "configuration":
        monkeypatch.setenv("REPROMAN_SUBMITTER-PBS_LAUNCHER", "yes")
        reset_config()
    else:
        parameters["launcher"] = True
    job = submit(session, pbs, jobroot, CMDS, parameters)
    assert job.submission_id == "100.fakeserver"
    assert "xargs -n 1 -P 2" in Path(job.job_dir, "submit.pbs").read_text()
    states = pbs.scheduler_states([job])[job.jobid]
    assert sorted(states) == list(range(len(CMDS)))
    assert {(s.state, s.known) for s in states.values()} == {(State.PENDING, True)}


def test_directives_verbatim_and_bad_ones_fail(pbs, session, jobroot):
    job, script = make_job(session, pbs, jobroot, ["true"], {"directives": ["-l place=scatter"]})
    assert "#PBS -l place=scatter\n" in Path(script).read_text()
    with pytest.raises(SubmissionError, match="Illegal attribute"):
        pbs.submit(job, script)


def test_qos_is_rejected(pbs, session, jobroot):
    with pytest.raises(SubmissionError, match="does not support the job parameter 'qos'"):
        make_job(session, pbs, jobroot, ["true"], {"qos": "high"})


def test_bad_flavor(session, monkeypatch):
    monkeypatch.setenv("REPROMAN_SUBMITTER-PBS_FLAVOR", "lsf")
    with pytest.raises(ConfigError, match="flavor"):
        _ = PBSSubmitter(session).flavor


def test_qsub_output_is_parsed_strictly():
    assert parse_qsub_output("1234.pbs01.example.org\n") == "1234.pbs01.example.org"
    assert parse_qsub_output("77[].server\n") == "77[].server"
    for bad in ("", "qsub: job submitted as 12.server\n", "12.server\n13.server\n"):
        with pytest.raises(SubmissionError):
            parse_qsub_output(bad)


QSTAT_PRO = """Job Id: 12[3].pbs
    Job_Name = rm20250101
    job_state = F
    Exit_status = -29
    comment = Job run at Mon Jan 01 at 10:00 on (node1:ncpus=1) and finished
    array_index = 3

Job Id: 12[4].pbs
    job_state = X
    Exit_status = -27
    array_index = 4

Job Id: 12[5].pbs
    job_state = F
    Exit_status = 271
    array_index = 5

Job Id: 12[6].pbs
    job_state = X
    Exit_status = -1
    comment = Not Running: could not run job on node1: a very long comment that\n\twraps onto the next line
    array_index = 6
"""


def test_failure_reasons_from_qstat():
    records = parse_qstat_f(QSTAT_PRO)
    assert records[3]["comment"].endswith("thatwraps onto the next line")
    reasons = [pbs_state(r).reason for r in records]  # type: ignore[union-attr]
    assert reasons == [FailureReason.WALLTIME, FailureReason.OUT_OF_MEMORY, FailureReason.CANCELLED,
                       FailureReason.NODE_FAILURE]
    assert pbs_state({"job_state": "F", "Exit_status": "0"}).state is State.SUCCEEDED  # type: ignore[union-attr]
    assert pbs_state({"job_state": "Q"}).state is State.PENDING  # type: ignore[union-attr]
    assert pbs_state({"job_state": "C", "exit_status": "2"}).reason is FailureReason.EXIT_CODE  # type: ignore[union-attr]
