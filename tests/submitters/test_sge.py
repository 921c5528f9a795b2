"""Grid Engine submitter against a REAL single-node Son of Grid Engine (tools/ci/sge.sh).

Every live test needs ``qstat`` to answer: skipped locally without it, a
failure under CI (``CI=true``). The direct tests build the job directory as
core does and follow with core's poller; the end-to-end ones go through
``reproman run --submitter sge`` on the local resource. The parsers are
also checked on their own, with text Grid Engine printed here.
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
from reproman.jobs.contracts import FailureReason, SchedulerState, State
from reproman_submitters.sge import (
    SGESubmitter,
    accounting_state,
    expand_tasks,
    parse_qacct,
    parse_qstat_xml,
    parse_qsub_terse,
    sge_state,
)


@pytest.fixture
def sub(sge_sub: SGESubmitter) -> SGESubmitter:
    return sge_sub


def qstat_j(number: str) -> str:
    return subprocess.run(["qstat", "-j", number], capture_output=True, text=True, check=True).stdout


def qacct_j(number: str) -> str:
    return subprocess.run(["qacct", "-j", number], capture_output=True, text=True).stdout


# -- live -----------------------------------------------------------------------------------------------

def test_single_job(sub, session, jobroot):
    job = submit(session, sub, jobroot, ["echo hello from sge; echo to stderr >&2"])
    assert str(job.submission_id).isdigit()
    status = wait(session, sub, job)
    assert status.ok
    assert Path(job.job_dir, "stdout.0").read_text() == "hello from sge\n"
    assert Path(job.job_dir, "stderr.0").read_text() == "to stderr\n"


def test_array_of_20_with_a_failure(sub, session, jobroot):
    cmds = [f"echo {i}" if i != 13 else "echo bad >&2; exit 7" for i in range(20)]
    job = submit(session, sub, jobroot, cmds)
    status = wait(session, sub, job, timeout=120)
    assert [(s.index, s.exit_code, s.reason) for s in status.failed] == [(13, 7, FailureReason.EXIT_CODE)]
    assert [Path(job.job_dir, f"stdout.{i}").read_text() for i in (0, 19)] == ["0\n", "19\n"]
    assert "-t 1-20" not in Path(job.job_dir, "submit.sge").read_text()  # on the command line only


def test_one_query_per_poll(sub, session, jobroot):
    job = submit(session, sub, jobroot, ["sleep 30"] * 5)
    try:
        session.commands.clear()
        states = sub.scheduler_states([job, job])
        assert session.commands == ["qstat -xml -u $user -s prsz"]
        # 2 slots: two tasks run, three wait as one range "3-5:1" that must be expanded.
        assert set(states[job.jobid]) == {0, 1, 2, 3, 4}
        assert {s.state for s in states[job.jobid].values()} <= {State.PENDING, State.RUNNING}
    finally:
        sub.cancel(job)


def test_cancel_running_and_queued(sub, session, jobroot):
    job = submit(session, sub, jobroot, ["sleep 300"] * 5)
    wait(session, sub, job, until="any-running", timeout=120)
    sub.cancel(job)
    status = wait(session, sub, job, timeout=30)
    # Running tasks were killed (qacct: failed 100); queued ones never ran and
    # are not in accounting at all: both read "cancelled", none "lost".
    assert {s.reason for s in status.subjobs} == {FailureReason.CANCELLED}
    said = sub.scheduler_states([job])[job.jobid]
    assert len(said) == 5 and {s.reason for s in said.values()} == {FailureReason.CANCELLED}
    sub.cancel(job)  # cancelling a finished job is harmless


def test_qdel_by_hand_reads_cancelled_outside_repromans(sub, session, jobroot):
    """qdel outside ReproMan of a running task that asked for no limits: Grid Engine's accounting says its
    shell was killed (failed 100, exit 137) and no limit explains it, so it reads cancelled, as on Slurm,
    with Grid Engine's words and no exit code of the command's own."""
    job = submit(session, sub, jobroot, ["sleep 300"])
    wait(session, sub, job, until="any-running", timeout=120)
    subprocess.run(["qdel", str(job.submission_id)], capture_output=True, check=True)
    status = wait(session, sub, job, timeout=30)
    subjob = status.subjobs[0]
    assert (subjob.state, subjob.reason, subjob.exit_code) == (State.FAILED, FailureReason.CANCELLED, None)
    assert subjob.detail.startswith("cancelled outside ReproMan: qdel (") and "failed 100" in subjob.detail


def test_parameters_reach_sge(sub, session, jobroot):
    params = {"memory": "300M", "num_processes": 2, "queue": "all.q", "walltime": "00:10:00",
              "account": "lab42", "directives": ["-h", '-ac note="from reproman"']}
    job, script = make_job(session, sub, jobroot, ["true"], params)
    text = Path(script).read_text()
    assert "#$ -pe smp 2\n" in text and "#$ -l h_vmem=150M\n" in text and '#$ -wd "' in text
    job.submission_id = sub.submit(job, script)
    try:
        shown = qstat_j(str(job.submission_id))
        for expected in ("h_vmem=150M", "h_rt=600", "account:                    lab42",
                         "parallel environment:  smp range: 2", "hard_queue_list:            all.q",
                         "note=from reproman", f"cwd:                        {job.job_dir}"):
            assert expected in shown, expected
        said = sub.scheduler_states([job])[job.jobid][0]
        assert said.state is State.PENDING and "on hold" in said.detail
    finally:
        sub.cancel(job)


def test_memory_complex_setting(sub, session, jobroot, monkeypatch):
    from reproman.config import reset_config

    monkeypatch.setenv("REPROMAN_SUBMITTER-SGE_MEMORY_COMPLEX", "h_data")
    monkeypatch.setenv("REPROMAN_SUBMITTER-SGE_PARALLEL_ENVIRONMENT", "smp")
    reset_config()
    job, script = make_job(session, sub, jobroot, ["true"], {"memory": "1G", "directives": ["-h"]})
    assert "#$ -l h_data=1024M\n" in Path(script).read_text()
    job.submission_id = sub.submit(job, script)
    try:
        assert "h_data=1024M" in qstat_j(str(job.submission_id))
    finally:
        sub.cancel(job)
    monkeypatch.setenv("REPROMAN_SUBMITTER-SGE_MEMORY_COMPLEX", "h_vmem; rm -rf /")
    reset_config()
    with pytest.raises(ConfigError, match="memory_complex"):
        make_job(session, sub, jobroot, ["true"], {"memory": "1G"})


def test_memory_limit_is_enforced(sub, session, jobroot):
    job = submit(session, sub, jobroot,
                 [f"{sys.executable} -c 'bytearray(400 * 1024 * 1024)'", "echo small"], {"memory": "200M"})
    status = wait(session, sub, job, timeout=60)
    assert [s.index for s in status.failed] == [0]
    assert "MemoryError" in Path(job.job_dir, "stderr.0").read_text()


def test_split_array_with_throttle(sub, session, jobroot):
    cmds = [f"date +%s.%N; sleep 0.5; date +%s.%N; exit {i % 3}" for i in range(7)]
    job = submit(session, sub, jobroot, cmds, {"max_array_size": 3, "throttle": 1})
    ids = str(job.submission_id).split(",")
    assert len(ids) == 3
    qsubs = [c for c in session.commands if c.startswith("qsub")]
    assert "-hold_jid" not in qsubs[0] and f"-tc 1 -hold_jid {ids[0]}" in qsubs[1]
    status = wait(session, sub, job, timeout=120)
    assert [s.exit_code for s in status.subjobs] == [i % 3 for i in range(7)]
    # Throttle 1 across all three arrays: no two subjobs ever overlapped in time.
    spans = sorted(tuple(map(float, Path(job.job_dir, f"stdout.{i}").read_text().split())) for i in range(7))
    assert len(spans) == 7
    assert all(end <= next_start for (_s, end), (next_start, _e) in zip(spans, spans[1:])), spans


def test_launcher_runs_all_in_one_job(sub, session, jobroot):
    job = submit(session, sub, jobroot, [f"echo $JOB_ID {i}" for i in range(6)], {"launcher": True, "throttle": 2})
    assert "," not in str(job.submission_id)
    assert "#$ -pe smp 2\n" in Path(job.job_dir, "submit.sge").read_text()
    status = wait(session, sub, job, timeout=60)
    assert status.ok
    seen = {Path(job.job_dir, f"stdout.{i}").read_text().split()[0] for i in range(6)}
    assert seen == {job.submission_id}


def test_walltime_kill(sub, session, jobroot):
    """Grid Engine takes h_rt in seconds, so this is quick: the task is killed after 3 s."""
    job = submit(session, sub, jobroot, ["sleep 600", "true"], {"walltime": "00:00:03"})
    status = wait(session, sub, job, timeout=60)
    killed = status.subjobs[0]
    assert killed.state is State.FAILED and killed.reason is FailureReason.WALLTIME
    assert "failed 37" in killed.detail
    assert status.subjobs[1].state is State.SUCCEEDED
    # Later, with the job fetched (core's "completed" marker is there), the
    # report still names the walltime, shows the span up to the kill from
    # accounting, and the usage figures.
    Path(job.job_dir, "completed").touch()
    from reproman.report.collect import collect

    data = collect(job)
    row = data.subjobs[0]
    assert (row.state, row.reason) == ("failed", "walltime exceeded")
    assert row.start is not None and row.end is not None and 2 <= row.end - row.start <= 10
    assert row.usage and row.usage["node"] and row.usage["elapsed_s"] >= 3


def test_accounting_is_cached_and_gives_usage(sub, session, jobroot):
    job = submit(session, sub, jobroot, ["sleep 1; echo a", "exit 3"])
    wait(session, sub, job, timeout=60)
    deadline = time.monotonic() + 30
    while len(parse_qacct(qacct_j(str(job.submission_id)))) < 2:  # accounting is written a moment later
        assert time.monotonic() < deadline, "no accounting records"
        time.sleep(0.5)
    fresh = SGESubmitter(session)
    session.commands.clear()
    said = fresh.scheduler_states([job])[job.jobid]
    fresh.scheduler_states([job])
    assert [c.split()[0] for c in session.commands] == ["qstat", "printf", "qstat"]  # qacct once, then remembered
    assert (said[0].state, said[0].exit_code) == (State.SUCCEEDED, 0)
    assert said[1].reason is FailureReason.EXIT_CODE and said[1].detail == "exit status 3"
    assert said[1].exit_code == 3
    usage = fresh.usage([job])
    assert usage is not None and set(usage[job.jobid]) == {0, 1}
    first = usage[job.jobid][0]
    assert first.node and first.elapsed is not None and first.elapsed >= 1 and first.cpu_time is not None


def test_rejections(sub, session, jobroot, monkeypatch):
    for bad in ({"gpus": 1}, {"qos": "high"}, {"num_nodes": 2}):
        with pytest.raises(SubmissionError, match="does not support"):
            make_job(session, sub, jobroot, ["true"], bad)
    monkeypatch.setenv("REPROMAN_SUBMITTER-SGE_BOGUS", "1")
    from reproman.config import reset_config

    reset_config()
    with pytest.raises(ConfigError, match="bogus"):
        make_job(session, sub, jobroot, ["true"])


def test_errors_from_qsub_are_one_line(sub, session, jobroot, monkeypatch):
    monkeypatch.setenv("REPROMAN_SUBMITTER-SGE_QUEUE", "nosuch.q")
    from reproman.config import reset_config

    reset_config()
    job, script = make_job(session, sub, jobroot, ["true"])
    assert "#$ -q nosuch.q\n" in Path(script).read_text()
    with pytest.raises(SubmissionError, match=r"qsub .*failed.*unknown queue \"nosuch.q\"") as info:
        sub.submit(job, script)
    assert "\n" not in str(info.value)


def test_an_id_neither_qstat_nor_qacct_knows_is_forgotten(sub, session, jobroot):
    job, _ = make_job(session, sub, jobroot, ["true"])
    job.submission_id = "9999999"
    assert sub.scheduler_states([job]) == {job.jobid: {0: SchedulerState.forgotten()}}


# -- parsers, on text Grid Engine 8.1.9 printed --------------------------------------------------------

QSTAT_XML = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>4</JB_job_number><JB_name>reproman-x</JB_name><state>r</state>
      <queue_name>all.q@vm</queue_name><slots>1</slots><tasks>2</tasks>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>4</JB_job_number><JB_name>reproman-x</JB_name><state>qw</state><slots>1</slots>
      <tasks>3-9:2,12</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>7</JB_job_number><state>Eqw</state><slots>1</slots>
    </job_list>
    <job_list state="zombie">
      <JB_job_number>9</JB_job_number><JB_name>reproman-y</JB_name><state>z</state><slots>1</slots>
      <tasks>1-4:1</tasks>
    </job_list>
  </job_info>
</job_info>
"""

QACCT = """==============================================================
qname        all.q
hostname     vm
jobnumber    6
taskid       undefined
qsub_time    Tue Dec  1 10:38:26 2026
start_time   Tue Dec  1 10:38:27 2026
end_time     Tue Dec  1 10:38:31 2026
failed       37  : qmaster enforced h_rt, h_cpu, or h_vmem limit
exit_status  137                  (Killed)
ru_wallclock 4s
cpu          0.010s
maxvmem      3.414MB
==============================================================
qname        all.q
hostname     vm
jobnumber    5
taskid       1
failed       100 : assumedly after job
exit_status  137                  (Killed)
ru_wallclock 2s
maxvmem      3.4MB
"""


def test_parsers():
    assert parse_qsub_terse("123\n") == "123" and parse_qsub_terse("14.1-10:1\n") == "14"
    # A warning qsub printed (here for a second -N) comes with a queued job all the same.
    assert parse_qsub_terse('warning: "-N" option has already been set, overriding previous setting\n15\n') == "15"
    for bad in ("", "Your job 12 (\"x\") has been submitted\n", "12\n13\n"):
        with pytest.raises(SubmissionError):
            parse_qsub_terse(bad)
    assert expand_tasks("3-9:2,12") == [3, 5, 7, 9, 12] and expand_tasks("1-3:1") == [1, 2, 3]
    with pytest.raises(SubmissionError):
        expand_tasks("1-x")
    assert [tuple(e) for e in parse_qstat_xml(QSTAT_XML)] == [
        ("4", "reproman-x", "r", "2"), ("4", "reproman-x", "qw", "3-9:2,12"), ("7", "", "Eqw", ""),
        ("9", "reproman-y", "z", "1-4:1")]
    assert [e.zombie for e in parse_qstat_xml(QSTAT_XML)] == [False, False, False, True]
    with pytest.raises(SubmissionError, match="qstat -xml"):
        parse_qstat_xml("error: commlib error")
    records = parse_qacct(QACCT)
    assert [(r["jobnumber"], r["taskid"]) for r in records] == [("6", "undefined"), ("5", "1")]
    assert parse_qacct("error: job id 5 not found\n") == []


def test_state_normalisation():
    assert sge_state("qw", "1").state is State.PENDING
    assert "qrls 1" in sge_state("hqw", "1").detail
    eqw = sge_state("Eqw", "8")
    assert eqw.state is State.PENDING and eqw.blocked and "qstat -j 8" in eqw.detail
    assert not sge_state("hqw", "1").blocked and not sge_state("qw", "1").blocked
    chained = sge_state("hqw", "9", held_by_predecessor=True)
    assert "previous array" in chained.detail and "qrls" not in chained.detail
    assert sge_state("r", "1").state is State.RUNNING and sge_state("dr", "1").state is State.RUNNING
    assert "suspended" in sge_state("s", "1").detail
    assert sge_state("zz", "1").state is State.UNKNOWN
    h_rt, qdel = parse_qacct(QACCT)

    def reason(record: dict[str, str], params: dict[str, str], cancelled: bool = False) -> FailureReason | None:
        return accounting_state(record, params, cancelled).reason

    assert reason(h_rt, {"walltime": "0:0:3"}) is FailureReason.WALLTIME
    # Code 37 covers h_vmem too: peak memory at the requested limit says which.
    assert reason({**h_rt, "maxvmem": "100MB"}, {"memory": "100M"}) is FailureReason.OUT_OF_MEMORY
    assert reason(qdel, {}, cancelled=True) is FailureReason.CANCELLED
    # failed 100 within every limit asked for: the job's shell was killed, that is qdel.
    assert reason(qdel, {}) is FailureReason.CANCELLED
    assert accounting_state(qdel, {}, False).detail.startswith("qdel (Grid Engine: failed 100")
    assert reason({**qdel, "ru_wallclock": "60s"}, {"walltime": "00:01:00"}) is FailureReason.WALLTIME
    # h_vmem refuses the allocation (no kill): a failure under a memory limit, with the evidence, reads so.
    refused = {"failed": "0", "exit_status": "1", "maxvmem": "99.5MB"}
    assert reason(refused, {"memory": "100M"}) is FailureReason.OUT_OF_MEMORY
    assert accounting_state({**refused, "maxvmem": "20MB"}, {"memory": "100M"}, False, True).reason \
        is FailureReason.OUT_OF_MEMORY  # stderr said MemoryError
    assert reason({**refused, "maxvmem": "20MB"}, {"memory": "100M"}) is FailureReason.EXIT_CODE
    assert reason(refused, {}) is FailureReason.EXIT_CODE
    clean = {"failed": "0", "exit_status": "0"}
    ok = accounting_state(clean, {}, False)
    assert (ok.state, ok.exit_code, ok.reason) == (State.SUCCEEDED, 0, None)
    assert accounting_state(h_rt, {"walltime": "0:0:3"}, False).exit_code == 137
    assert reason({**clean, "exit_status": "3"}, {}) is FailureReason.EXIT_CODE
    setup = {"failed": "28  : changing into working directory", "exit_status": "0"}
    said = accounting_state(setup, {}, False)
    assert said.reason is FailureReason.NODE_FAILURE and "changing into working" in said.detail


# -- end to end through `reproman run` ------------------------------------------------------------------

def reproman(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=240, env={**os.environ})


def test_run_follow_end_to_end(sge, tmp_path):
    work = tmp_path / "my project"
    work.mkdir()
    root = tmp_path / "remote root"
    result = reproman("run", "--submitter", "sge", "--jp", f"root_directory={root}", "--jp", "memory=200M",
                      "--bp", "n=1,2,3,4", "--follow", "--json", "sh", "-c", "echo {p[n]}; exit $(( {p[n]} == 3 ))",
                      cwd=work)
    assert result.returncode != 0, result.stderr  # subjob 2 (n=3) failed
    data = json.loads(result.stdout)
    record = data[0] if isinstance(data, list) else data
    assert [(f["index"], f["exit_code"]) for f in record["failed"]] == [(2, 1)]
    outs = sorted(p.read_text() for p in (work / ".reproman" / "jobs").rglob("stdout.*"))
    assert outs == ["1\n", "2\n", "3\n", "4\n"]


def test_jobs_cancel_end_to_end(sge, tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    result = reproman("run", "--submitter", "sge", "--jp", f"root_directory={tmp_path / 'r r'}",
                      "sleep", "300", cwd=work)
    assert result.returncode == 0, result.stderr
    jobid = result.stdout.strip().splitlines()[-1].split()[0]
    cancelled = reproman("jobs", "--cancel", jobid, cwd=work)
    assert cancelled.returncode == 0, cancelled.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = subprocess.run(["qstat", "-xml"], capture_output=True, text=True, check=True).stdout
        if f"reproman-{jobid}" not in listed:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"job reproman-{jobid} still in qstat after qdel")
    shown = reproman("jobs", "--show", "--status", "--json", jobid, cwd=work)
    assert shown.returncode == 0, shown.stderr
    assert '"cancelled"' in shown.stdout


def test_pbs_submitter_on_grid_engine_takes_its_job_back(sge, session, jobroot):
    """Grid Engine's qsub accepts a PBS script; the job would run untracked, so it is deleted and said so."""
    from reproman_submitters.pbs import PBSSubmitter

    pbs = PBSSubmitter(session)
    job, script = make_job(session, pbs, jobroot, ["sleep 30"])
    with pytest.raises(SubmissionError) as info:
        pbs.submit(job, script)
    message = str(info.value)
    assert "Grid Engine" in message and "--submitter sge" in message and "\n" not in message
    number = message.split("queued job ")[1].split(",")[0]
    deadline = time.monotonic() + 30
    while subprocess.run(["qstat", "-j", number], capture_output=True).returncode == 0:  # gone from the queue
        assert time.monotonic() < deadline, qstat_j(number)
        time.sleep(0.5)
