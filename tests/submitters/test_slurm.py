"""Slurm submitter against a REAL single-node Slurm (tools/ci/slurm.sh).

Every test needs ``sinfo`` to answer: skipped locally without it, a failure
under CI (``CI=true``). The direct tests build the job directory as core does
and follow with core's poller; the end-to-end ones go through
``reproman run --submitter slurm`` on the local resource.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from submitters_helpers import make_job, submit, wait

from reproman.errors import ConfigError, SubmissionError
from reproman.jobs.contracts import FailureReason, State
from reproman_submitters.slurm import SlurmSubmitter, parse_sbatch_parsable, slurm_state, task_names

pytestmark = pytest.mark.usefixtures("slurm")


@pytest.fixture
def sub(session) -> SlurmSubmitter:
    return SlurmSubmitter(session)


def scontrol(jobid: str) -> str:
    return subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True, check=True).stdout


def test_single_job(sub, session, jobroot):
    job = submit(session, sub, jobroot, ["echo hello from slurm"])
    assert str(job.submission_id).isdigit()
    status = wait(session, sub, job)
    assert status.ok
    assert Path(job.job_dir, "stdout.0").read_text() == "hello from slurm\n"


def test_array_of_20_with_a_failure(sub, session, jobroot):
    cmds = [f"echo {i}" if i != 13 else "echo bad >&2; exit 7" for i in range(20)]
    job = submit(session, sub, jobroot, cmds)
    status = wait(session, sub, job, timeout=120)
    failed = status.failed
    assert [(s.index, s.exit_code, s.reason) for s in failed] == [(13, 7, FailureReason.EXIT_CODE)]
    assert Path(job.job_dir, "stdout.19").read_text() == "19\n"
    assert "--array=0-19" not in Path(job.job_dir, "submit.slurm").read_text()  # on the command line only


def test_one_query_per_poll(sub, session, jobroot):
    job = submit(session, sub, jobroot, ["sleep 30", "sleep 30", "sleep 30"])
    try:
        session.commands.clear()
        states = sub.scheduler_states([job, job])
        assert len(session.commands) == 1 and " squeue " in session.commands[0]
        assert set(states[job.jobid]) == {0, 1, 2}
    finally:
        sub.cancel(job)


def test_cancel(sub, session, jobroot):
    job = submit(session, sub, jobroot, ["sleep 300"] * 4)
    wait(session, sub, job, until="any-running", timeout=30)
    sub.cancel(job)
    status = wait(session, sub, job, timeout=30)
    assert {s.state for s in status.subjobs} == {State.FAILED}
    # Subjobs killed while running wrote "failed 143" first; core asks the
    # scheduler about signal exits, so every subjob reads "cancelled".
    assert {s.reason for s in status.subjobs} == {FailureReason.CANCELLED}
    said = sub.scheduler_states([job])[job.jobid]
    assert {s.reason for s in said.values()} == {FailureReason.CANCELLED}
    sub.cancel(job)  # cancelling a finished job is harmless


def test_parameters_reach_slurm(sub, session, jobroot):
    params = {"memory": "100M", "num_processes": 2, "queue": "other", "walltime": "00:10:00",
              "account": "lab42", "qos": "normal", "num_nodes": 1,
              "directives": ["--hold", '--comment="from reproman"']}
    job, script = make_job(session, sub, jobroot, ["true"], params)
    text = Path(script).read_text()
    assert '#SBATCH --comment="from reproman"\n' in text and "#SBATCH --partition=other\n" in text
    job.submission_id = sub.submit(job, script)
    try:
        shown = scontrol(str(job.submission_id))
        for expected in ("Partition=other", "MinMemoryNode=100M", "CPUs/Task=2", "TimeLimit=00:10:00",
                         "Account=lab42", "Comment=from reproman", "NumNodes=1", "JobState=PENDING"):
            assert expected in shown, expected
        said = sub.scheduler_states([job])[job.jobid][0]
        assert said.state is State.PENDING and "JobHeldUser" in said.detail
    finally:
        sub.cancel(job)


def test_split_array_with_throttle(sub, session, jobroot):
    cmds = [f"echo {i}; exit {i % 3}" for i in range(7)]
    job = submit(session, sub, jobroot, cmds, {"max_array_size": 3, "throttle": 2})
    ids = str(job.submission_id).split(",")
    assert len(ids) == 3
    assert f"Dependency=afterany:{ids[0]}" in scontrol(ids[1]) or "Dependency=(null)" in scontrol(ids[1])
    status = wait(session, sub, job, timeout=120)
    assert [s.exit_code for s in status.subjobs] == [i % 3 for i in range(7)]
    assert Path(job.job_dir, "stdout.6").read_text() == "6\n"


def test_launcher_runs_all_in_one_allocation(sub, session, jobroot):
    job = submit(session, sub, jobroot, [f"echo $SLURM_JOB_ID {i}" for i in range(6)], {"launcher": True, "throttle": 2})
    assert "," not in str(job.submission_id)
    status = wait(session, sub, job, timeout=60)
    assert status.ok
    seen = {Path(job.job_dir, f"stdout.{i}").read_text().split()[0] for i in range(6)}
    assert seen == {job.submission_id}


def test_rejections(sub, session, jobroot, monkeypatch):
    with pytest.raises(SubmissionError, match="container_image|does not support"):
        make_job(session, sub, jobroot, ["true"], {"container_image": "x"})
    monkeypatch.setenv("REPROMAN_SUBMITTER-SLURM_BOGUS", "1")
    from reproman.config import reset_config

    reset_config()
    with pytest.raises(ConfigError, match="bogus"):
        make_job(session, sub, jobroot, ["true"])


def test_config_defaults_and_errors_from_sbatch(sub, session, jobroot, monkeypatch):
    monkeypatch.setenv("REPROMAN_SUBMITTER-SLURM_QUEUE", "nosuchpartition")
    from reproman.config import reset_config

    reset_config()
    job, script = make_job(session, sub, jobroot, ["true"])
    assert "--partition=nosuchpartition" in Path(script).read_text()
    with pytest.raises(SubmissionError, match="sbatch .*failed.*[Pp]artition"):
        sub.submit(job, script)


def test_ids_neither_squeue_nor_sacct_know_are_forgotten(sub, session, jobroot):
    job, _ = make_job(session, sub, jobroot, ["true"])
    job.submission_id = "99999999"
    said = sub.scheduler_states([job])[job.jobid][0]
    assert said.known is False


@pytest.mark.slow
def test_walltime_kill(sub, session, jobroot):
    """Slurm's smallest limit is one minute and it checks limits about every 30 s: 60-100 s."""
    job = submit(session, sub, jobroot, ["sleep 600"], {"walltime": "00:01:00"})
    status = wait(session, sub, job, timeout=150)
    assert status.subjobs[0].state is State.FAILED
    assert status.subjobs[0].reason is FailureReason.WALLTIME
    said = sub.scheduler_states([job])[job.jobid][0]
    assert said.reason is FailureReason.WALLTIME and "TIMEOUT" in said.detail


def test_state_normalisation():
    assert slurm_state("OUT_OF_MEMORY", "OutOfMemory").reason is FailureReason.OUT_OF_MEMORY  # type: ignore[union-attr]
    assert slurm_state("NODE_FAIL", "NodeDown").reason is FailureReason.NODE_FAILURE  # type: ignore[union-attr]
    assert slurm_state("PREEMPTED").reason is FailureReason.PREEMPTED  # type: ignore[union-attr]
    assert slurm_state("CANCELLED by 0").reason is FailureReason.CANCELLED  # type: ignore[union-attr]
    assert slurm_state("TIMEOUT").reason is FailureReason.WALLTIME  # type: ignore[union-attr]
    assert slurm_state("COMPLETED", exit_code="0:0").state is State.SUCCEEDED  # type: ignore[union-attr]
    assert parse_sbatch_parsable("123\n") == "123" and parse_sbatch_parsable("5;cluster1\n") == "5"
    # sacct groups array tasks that never started: each one gets the group's state.
    assert task_names("12_[2-4,7%2]") == ["12_2", "12_3", "12_4", "12_7"] and task_names("12_5") == ["12_5"]
    for bad in ("", "Submitted batch job 12\n", "12\n13\n"):
        with pytest.raises(SubmissionError):
            parse_sbatch_parsable(bad)


# -- end to end through `reproman run` ------------------------------------------------------------

def reproman(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=240, env={**os.environ})


def test_run_follow_end_to_end(tmp_path):
    work = tmp_path / "my project"
    work.mkdir()
    root = tmp_path / "remote root"
    result = reproman("run", "--submitter", "slurm", "--jp", f"root_directory={root}", "--jp", "memory=50M",
                      "--bp", "n=1,2,3,4", "--follow", "--json", "sh", "-c", "echo {p[n]}; exit $(( {p[n]} == 3 ))",
                      cwd=work)
    assert result.returncode != 0, result.stderr  # subjob 2 (n=3) failed
    data = json.loads(result.stdout)
    record = data[0] if isinstance(data, list) else data
    text = json.dumps(record)
    assert '"failed": 1' in text.replace(" ", " ") or "failed" in text
    outs = sorted(p.read_text() for p in (work / ".reproman" / "jobs").rglob("stdout.*"))
    assert outs == ["1\n", "2\n", "3\n", "4\n"]


def test_jobs_cancel_end_to_end(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    result = reproman("run", "--submitter", "slurm", "--jp", f"root_directory={tmp_path / 'r r'}",
                      "sleep", "300", cwd=work)
    assert result.returncode == 0, result.stderr
    jobid = result.stdout.strip().splitlines()[-1].split()[0]
    time.sleep(1)
    cancelled = reproman("jobs", "--cancel", jobid, cwd=work)
    assert cancelled.returncode == 0, cancelled.stderr
    squeue = subprocess.run(["squeue", "-h", "-t", "all", "-n", f"reproman-{jobid}", "-o", "%T"],
                            capture_output=True, text=True).stdout.split()
    assert squeue and set(squeue) <= {"CANCELLED", "COMPLETING"}


def test_refused_submission_is_final_and_deletable(tmp_path):
    """sbatch refuses the partition: the job is final (every subjob failed), reported once by --all, deletable."""
    work = tmp_path / "w"
    work.mkdir()
    root = tmp_path / "root"
    result = reproman("run", "--submitter", "slurm", "--jp", f"root_directory={root}", "--jp", "queue=nosuchpart",
                      "--bp", "n=1,2", "true", cwd=work)
    assert result.returncode == 1 and "partition" in result.stderr, result.stderr
    listed = reproman("jobs", "--json", cwd=work)
    (row,) = json.loads(listed.stdout)
    jobid = row["jobid"]
    assert row["outcome"] == "submission failed"
    status = reproman("jobs", "--status", jobid, cwd=work)
    assert status.returncode == 0, status.stderr
    assert "2 failed" in status.stdout and "pending" not in status.stdout
    assert "n=1: failed (submission failed" in status.stdout
    fetched = reproman("jobs", jobid, cwd=work)
    assert fetched.returncode == 1 and "submission failed" in fetched.stderr and "partition" in fetched.stderr
    first = reproman("jobs", "--all", cwd=work)
    assert first.returncode == 0 and "whose submission failed" in first.stderr, first.stderr
    cancelled = reproman("jobs", "--cancel", jobid, cwd=work)
    assert cancelled.returncode == 0 and "already finished" in cancelled.stderr, cancelled.stderr
    deleted = reproman("jobs", "--delete", jobid, cwd=work)
    assert deleted.returncode == 0, deleted.stderr
    assert not list(root.rglob(jobid)) and reproman("jobs", "--json", cwd=work).stdout.strip() == "[]"


def test_refused_submission_reported_once_by_all(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    result = reproman("run", "--submitter", "slurm", "--jp", f"root_directory={tmp_path / 'root'}",
                      "--jp", "queue=nosuchpart", "true", cwd=work)
    assert result.returncode == 1
    first = reproman("jobs", "--all", cwd=work)
    assert first.returncode == 1 and "submission failed" in first.stderr, (first.stdout, first.stderr)
    again = reproman("jobs", "--all", cwd=work)
    assert again.returncode == 0 and "Skipped 1 job(s) whose submission failed" in again.stderr, again.stderr


def test_configured_defaults_are_recorded_and_bad_values_create_nothing(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    root = tmp_path / "root"
    env = {**os.environ, "REPROMAN_SUBMITTER-SLURM_QUEUE": "debug", "REPROMAN_SUBMITTER_SLURM_NUM_PROCESSES": "1"}
    ran = subprocess.run([sys.executable, "-m", "reproman", "run", "--submitter", "slurm", "--jp",
                          f"root_directory={root}", "true"], cwd=work, capture_output=True, text=True, env=env,
                         timeout=120)
    assert ran.returncode == 0, ran.stderr
    (job,) = json.loads(reproman("jobs", "--show", "--json", cwd=work).stdout)
    assert job["parameters"] == {"queue": "debug", "num_processes": 1, "root_directory": str(root)}
    script = next(root.rglob("submit.slurm")).read_text()
    assert "--partition=debug" in script
    # A value only the scheduler module can judge is refused (a usage error) before any record or directory exists.
    other = tmp_path / "other root"
    refused = reproman("run", "--submitter", "slurm", "--jp", f"root_directory={other}", "--jp", "memory=lots",
                       "true", cwd=work)
    assert refused.returncode == 2 and "memory" in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr
    assert not other.exists()
    assert len(json.loads(reproman("jobs", "--json", cwd=work).stdout)) == 1
