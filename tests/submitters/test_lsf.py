"""LSF submitter against a FAKE bsub/bjobs/bkill (reproman/testing/fakesched.py).

NOT run against a live LSF cluster (proprietary; not installable here). The
fake reads the script from stdin as bsub does, checks ``#BSUB`` lines and
command-line options, runs each array element with ``LSB_JOBINDEX`` (from 1),
prints ``Job <N> is submitted to ... queue <Q>.`` and answers
``bjobs -a -noheader -o "... delimiter='|'"`` including DONE/EXIT elements.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from submitters_helpers import fake_calls, fake_options, make_job, submit, wait

from reproman.errors import SubmissionError
from reproman.jobs.contracts import FailureReason, State
from reproman_submitters.lsf import LSFSubmitter, lsf_state, parse_bsub_output

CMDS = ["echo zero", "echo one", "exit 5", "echo three", "echo four"]


@pytest.fixture
def lsf(session, fake_scheduler) -> LSFSubmitter:
    return LSFSubmitter(session)


def check(status):
    assert status.finished
    assert [s.state for s in status.subjobs] == [State.SUCCEEDED] * 2 + [State.FAILED] + [State.SUCCEEDED] * 2
    assert status.subjobs[2].exit_code == 5


def test_array(lsf, session, jobroot, fake_scheduler):
    job = submit(session, lsf, jobroot, CMDS, {"memory": "1G", "num_processes": 2, "walltime": "01:30:30",
                                                "queue": "normal", "account": "proj", "gpus": 1})
    assert job.submission_id == "100"
    check(wait(session, lsf, job))
    assert Path(job.job_dir, "stdout.4").read_text() == "four\n"
    options = fake_options(fake_scheduler, "100")
    assert options["-J"].endswith("[1-5]") and options["-M"] == "1024MB" and options["-W"] == "1:31"
    assert options["-n"] == "2" and "span[hosts=1]" in options["R"] and options["-gpu"] == "num=1"
    assert options["-cwd"] == job.job_dir and options["-P"] == "proj"


def test_split_array(lsf, session, jobroot, fake_scheduler):
    job = submit(session, lsf, jobroot, CMDS, {"max_array_size": 2, "throttle": 2})
    assert job.submission_id == "100,101,102"
    calls = fake_calls(fake_scheduler, "bsub")
    assert calls[0][1].endswith("[1-2]%2") and calls[1][2:] == ["-w", "ended(100)"]
    check(wait(session, lsf, job))
    assert len(fake_calls(fake_scheduler, "bjobs")) >= 1


def test_cancel(lsf, session, jobroot, monkeypatch):
    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    job = submit(session, lsf, jobroot, CMDS[:2])
    lsf.cancel(job)
    status = wait(session, lsf, job, timeout=10)
    assert [s.reason for s in status.subjobs] == [FailureReason.CANCELLED] * 2
    lsf.cancel(job)  # already finished: fine


def test_launcher(lsf, session, jobroot, fake_scheduler):
    job = submit(session, lsf, jobroot, CMDS, {"launcher": True, "throttle": 3})
    assert "[" not in fake_options(fake_scheduler, str(job.submission_id))["-J"]
    check(wait(session, lsf, job))


def test_bsub_output_parsed_strictly():
    assert parse_bsub_output("Job <42> is submitted to default queue <normal>.\n") == "42"
    assert parse_bsub_output("Warning: x\nJob <7> is submitted to queue <gpu>.\n") == "7"
    for bad in ("", "Job <42> is submitted\n", "Job <1> is submitted to queue <a>.\nJob <2> is submitted to queue <a>.\n"):
        with pytest.raises(SubmissionError):
            parse_bsub_output(bad)


def test_exit_reasons():
    assert lsf_state("EXIT", "140", "TERM_RUNLIMIT: job killed after reaching LSF run time limit").reason is FailureReason.WALLTIME  # type: ignore[union-attr]
    assert lsf_state("EXIT", "137", "TERM_MEMLIMIT: job killed after reaching LSF memory usage limit").reason is FailureReason.OUT_OF_MEMORY  # type: ignore[union-attr]
    assert lsf_state("EXIT", "-", "TERM_PREEMPT: job killed after preemption").reason is FailureReason.PREEMPTED  # type: ignore[union-attr]
    assert lsf_state("EXIT", "1", "-").reason is FailureReason.EXIT_CODE  # type: ignore[union-attr]
    assert lsf_state("DONE").state is State.SUCCEEDED  # type: ignore[union-attr]
    assert lsf_state("PEND").state is State.PENDING  # type: ignore[union-attr]


def test_unsupported_qos(lsf, session, jobroot):
    with pytest.raises(SubmissionError, match="qos"):
        make_job(session, lsf, jobroot, ["true"], {"qos": "x"})
