"""Job states on a REAL Slurm with accounting (tools/ci/slurm.sh): after the scheduler forgets,
when memory runs out, while a job cannot start, and what it costs the scheduler.

The CI cluster keeps finished jobs in squeue for MinJobAge=5 s (they are
purged within a minute), has slurmdbd accounting, enforces --mem
(OverMemoryKill), and has a ``short`` partition (MaxTime 1 min) and a
``drained`` one (a drained node). Tests that need a cluster without
accounting put a ``sacct`` that answers "accounting storage is disabled"
first on PATH (the ``no_accounting`` fixture).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from submitters_helpers import submit, wait

from reproman import api
from reproman.cli.main import main
from reproman.jobs.commands import RunResult
from reproman.jobs.contracts import FailureReason, State
from reproman.jobs.registry import Registry
from reproman_submitters.slurm import SlurmSubmitter

pytestmark = pytest.mark.usefixtures("slurm")

LOST = "lost (ended without writing its status)"


def run(**kwargs: object) -> RunResult:
    kwargs.setdefault("submitter", "slurm")
    result = api.run(**kwargs)  # type: ignore[arg-type]
    assert isinstance(result, RunResult)
    return result


def states(jobids: list[str]) -> dict[str, list[tuple[str, str | None]]]:
    """Every subjob's (state, reason), polled now: one poll for all jobs, outcomes saved in the records."""
    return {r["jobid"]: [(s["state"], s["reason"]) for s in r["subjobs_status"]["subjobs"]]
            for r in api.jobs(jobids, action="show", status=True)}


def wait_until(predicate: object, timeout: float, what: object) -> None:
    """Poll ``predicate`` every second; ``what`` (text, or a callable giving it) explains a timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what() if callable(what) else what}: not within {timeout} s")
        time.sleep(1)


def squeue_knows(job_id: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%i"], capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


def forget_outcomes(jobid: str) -> None:
    """The record as it would be had nobody polled before the scheduler forgot (checking back next morning)."""
    registry = Registry()
    job = registry.load(jobid)
    for subjob in job.subjobs:
        subjob.outcome = None
    registry.save(job)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_states_stay_true_after_squeue_forgets(project, monkeypatch, tmp_path):
    """Walltime kill, scancel behind ReproMan's back, 'jobs --cancel' and a SIGKILLed runscript,
    checked while squeue knows them, after it forgot them, with and without accounting."""
    def first_running(jobid: str) -> bool:
        return states([jobid])[jobid][0][0] == "running"

    # One after the other: the CI node has two CPUs, shared with other tests.
    walltime = run(command="sleep 600", job_parameters=["walltime=00:01:00"]).job.jobid
    scancelled = run(command="sleep 600").job.jobid
    wait_until(lambda: first_running(scancelled), 180, "scancelled job starting")
    subprocess.run(["scancel", str(Registry().load(scancelled).submission_id)], check=True)
    cancelled = run(command="sleep 600", batch_parameters=["i=1,2"]).job.jobid
    wait_until(lambda: first_running(cancelled), 180, "cancelled job starting")
    assert api.jobs(cancelled, action="cancel") == [{"jobid": cancelled, "cancelled": True}]
    killed = run(command="kill -9 $PPID").job.jobid
    jobids = [walltime, scancelled, cancelled, killed]
    expected = {
        walltime: [("failed", "walltime exceeded")],
        scancelled: [("failed", "cancelled")],
        cancelled: [("failed", "cancelled")] * 2,
        killed: [("failed", "non-zero exit")],
    }
    wait_until(lambda: states(jobids) == expected, 240, lambda: f"final states {states(jobids)}")
    assert "signal 9" in api.jobs(killed, action="show", status=True)[0]["subjobs_status"]["subjobs"][0]["detail"]

    ids = [str(Registry().load(j).submission_id) for j in jobids]
    wait_until(lambda: not any(squeue_knows(i) for i in ids), 120, "squeue forgetting the jobs")
    # The records keep what was seen, with and without accounting.
    assert states(jobids) == expected
    # Nobody looked before squeue forgot: accounting is the source.
    for jobid in jobids:
        forget_outcomes(jobid)
    assert states(jobids) == expected
    # ...and without accounting, silence is "lost", never "running" (the cancelled job stays cancelled).
    for jobid in jobids:
        forget_outcomes(jobid)
    bindir = tmp_path / "no-acct"
    bindir.mkdir()
    (bindir / "sacct").write_text("#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n")
    (bindir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    # squeue forgets a job 5-60 s after it ends: a shorter grace than the default 60 s.
    monkeypatch.setenv("REPROMAN_JOBS_LOST_AFTER", "2")
    from reproman.config import reset_config

    reset_config()
    blind = states(jobids)
    assert blind[walltime] == [("failed", LOST)]
    assert blind[cancelled] == [("failed", "cancelled")] * 2
    assert blind[killed] == [("failed", LOST)]
    assert blind[scancelled][0] in (("failed", LOST), ("failed", "non-zero exit"))
    # Fetching works and the exit code says subjobs failed.
    assert main(["jobs", walltime]) == 1


def test_out_of_memory_is_reported_from_accounting(session, jobroot):
    """A subjob over --mem is killed by Slurm (OverMemoryKill, no cgroups: FAILED 0:9); sacct's MaxRSS at
    the allocated memory is the evidence it was memory. A SIGKILL without that evidence is not called
    out of memory."""
    sub = SlurmSubmitter(session)
    hog = ("python3 -c 'b = bytearray(300 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
           "import time; time.sleep(5)'")
    job = submit(session, sub, jobroot, [hog, "kill -9 $PPID"], {"memory": "100M"})
    status = wait(session, sub, job, timeout=90)
    oom, killed = status.subjobs
    # Slurm killed the whole step, runscript included: no exit code of the command's own to show.
    assert (oom.state, oom.reason, oom.exit_code) == (State.FAILED, FailureReason.OUT_OF_MEMORY, None)
    assert "MaxRSS" in oom.detail and oom.usage is not None and oom.usage.max_rss > 100 * 2**20  # type: ignore[operator]
    assert (killed.state, killed.reason, killed.exit_code) == (State.FAILED, FailureReason.EXIT_CODE, 137)


def test_usage_in_show_and_json(project, capsys):
    """Elapsed, CPU time, MaxRSS and node of each subjob, from one sacct query, kept in the record."""
    assert main(["run", "--submitter", "slurm", "--follow", "--bp", "i=1,2", "sh", "-c",
                 "sleep 1; python3 -c 'b = bytearray(50 * 2**20); import time; time.sleep(2)'"]) == 0
    jobid = capsys.readouterr().out.strip()
    usage = api.jobs(jobid, action="show")[0]["usage"]
    assert isinstance(usage, list) and [u["subjob"] for u in usage] == ["i=1", "i=2"], usage
    for row in usage:
        assert row["elapsed"] >= 3 and row["node"] and row["cpu_time"] is not None
    record = Registry().load(jobid)
    assert all(s.outcome and s.outcome["usage"]["elapsed"] >= 3 for s in record.subjobs)
    kept = json.loads(Path(project, ".reproman", "jobs", "local", jobid, "spec.yaml").read_text())
    assert [s["outcome"]["usage"]["node"] for s in kept["subjobs"]] == [usage[0]["node"]] * 2  # with the results
    assert main(["jobs", "--show", "--json", jobid]) == 0
    assert json.loads(capsys.readouterr().out)[0]["usage"] == usage
    assert main(["jobs", "--show", jobid]) == 0
    assert "elapsed:" in capsys.readouterr().out


def test_without_accounting_everything_works_and_usage_is_unavailable(project, no_accounting, capsys):
    assert main(["run", "--submitter", "slurm", "--follow", "--bp", "i=1,2", "echo {p[i]}"]) == 0
    jobid = capsys.readouterr().out.strip()
    shown = api.jobs(jobid, action="show")[0]
    assert shown["outcome"] == "2 succeeded" and shown["usage"].startswith("unavailable")


def test_pending_reason_of_a_drained_node(project, capsys):
    job = run(command="true", job_parameters=["queue=drained"]).job
    try:
        assert main(["jobs", "--status", job.jobid]) == 0
        out = capsys.readouterr().out
        # Slurm says either, depending on when its scheduler last looked at the job.
        assert ("#0: pending (Nodes required for job are DOWN, DRAINED" in out
                or "#0: pending (ReqNodeNotAvail, UnavailableNodes:ghost)" in out), out
        assert "can never start" not in out  # a drain ends: waiting is right
    finally:
        api.jobs(job.jobid, action="cancel")


@pytest.mark.timeout(120)
def test_request_that_can_never_start_fails_follow(project, capsys):
    """More time than the partition allows (PartitionTimeLimit): 'run --follow' exits 3 with Slurm's reason."""
    code = main(["run", "--submitter", "slurm", "--jp", "queue=short", "--jp", "walltime=00:10:00", "--follow",
                 "true"])
    out, err = capsys.readouterr()
    jobid = out.strip()
    try:
        assert code == 3, err
        assert "can never start as submitted" in err
        assert "the scheduler says 'PartitionTimeLimit'" in err or "the scheduler says 'PartitionConfig'" in err
        assert main(["jobs", "--status", jobid]) == 0
        assert "can never start as submitted" in capsys.readouterr().out
    finally:
        api.jobs(jobid, action="cancel")


def test_launcher_without_throttle_asks_for_what_the_node_has(session, jobroot):
    """1,000 subjobs in launcher mode: --ntasks is the node's CPUs, not 1,000, and the job runs."""
    sub = SlurmSubmitter(session)
    job = submit(session, sub, jobroot, [f"echo {i}" for i in range(1000)], {"launcher": True})
    cpus = subprocess.run(["sinfo", "-h", "-N", "-p", "debug", "-o", "%c"], capture_output=True,
                          text=True).stdout.split()[0]
    script = Path(job.job_dir, "submit.slurm").read_text()
    assert f"#SBATCH --ntasks={cpus}\n" in script and f"-P {cpus} " in script
    status = wait(session, sub, job, timeout=180)
    assert status.ok and Path(job.job_dir, "stdout.999").read_text() == "999\n"


def test_array_throttle_reaches_slurm(session, jobroot):
    sub = SlurmSubmitter(session)
    job = submit(session, sub, jobroot, ["sleep 1"] * 5, {"throttle": 2})
    shown = subprocess.run(["scontrol", "show", "job", str(job.submission_id)], capture_output=True,
                           text=True).stdout
    assert "ArrayTaskThrottle=2" in shown
    assert wait(session, sub, job, timeout=60).ok


def test_jobs_all_makes_one_squeue_for_50_jobs(project, tmp_path, monkeypatch, capsys):
    """'jobs --all', 'jobs --status' and 'jobs --cancel --all' over 50 jobs: one squeue each."""
    for _ in range(50):
        run(command="true", job_parameters=["directives=--hold"])
    bindir = tmp_path / "counting-bin"
    bindir.mkdir()
    log = tmp_path / "squeue.log"
    real = subprocess.run(["sh", "-c", "command -v squeue"], capture_output=True, text=True).stdout.strip()
    (bindir / "squeue").write_text(f'#!/bin/sh\necho x >> "{log}"\nexec {real} "$@"\n')
    (bindir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")

    def calls() -> int:
        return len(log.read_text().splitlines()) if log.exists() else 0

    assert main(["jobs", "--all"]) == 3  # held: not finished
    assert calls() == 1
    assert main(["jobs", "--status"]) == 0
    assert calls() == 2
    assert "50 pending (JobHeldUser)" not in capsys.readouterr().out  # one line per job, each "1 pending"
    assert main(["jobs", "--cancel", "--all"]) == 0
    assert calls() == 3


def subjob_rows(jobid: str) -> list[dict]:
    return api.jobs(jobid, action="show", status=True)[0]["subjobs_status"]["subjobs"]


@pytest.mark.timeout(400)
def test_cancel_labels_only_what_it_stopped(project, capsys):
    """i=0 dies by SIGKILL, i=1 is scancelled behind ReproMan's back, then 'jobs --cancel' stops i=2:
    the recorded outcomes of i=0 and i=1 stay as they were, and only i=2 says 'reproman jobs --cancel'."""
    job = run(command="if [ {p[i]} = 0 ]; then sleep 2; kill -9 $$; fi; sleep 300",
              batch_parameters=["i=0,1,2"]).job
    try:
        wait_until(lambda: [s["state"] for s in subjob_rows(job.jobid)][:2] == ["failed", "running"], 240,
                   lambda: f"i=0 failed and i=1 running: {subjob_rows(job.jobid)}")
        subprocess.run(["scancel", f"{job.submission_id}_1"], check=True)
        wait_until(lambda: subjob_rows(job.jobid)[1]["state"] == "failed", 120, "i=1 cancelled")
        before = Registry().load(job.jobid).subjobs[0].outcome
        assert before is not None and (before["reason"], before["exit_code"]) == ("non-zero exit", 137)
        assert api.jobs(job.jobid, action="cancel") == [{"jobid": job.jobid, "cancelled": True}]
        wait_until(lambda: all(s["state"] == "failed" for s in subjob_rows(job.jobid)), 120, "i=2 cancelled")
        rows = subjob_rows(job.jobid)
        assert Registry().load(job.jobid).subjobs[0].outcome == before
        assert (rows[0]["reason"], rows[0]["exit_code"]) == ("non-zero exit", 137)
        assert (rows[1]["reason"], rows[1]["exit_code"]) == ("cancelled", None)
        assert rows[1]["detail"].startswith("cancelled outside ReproMan"), rows[1]
        assert (rows[2]["reason"], rows[2]["exit_code"], rows[2]["detail"]) == (
            "cancelled", None, "cancelled with 'reproman jobs --cancel'")
        capsys.readouterr()
        assert main(["jobs", "--status", job.jobid]) == 0
        out = capsys.readouterr().out
        assert "by 0" not in out and "exit code 0" not in out, out
        assert "i=0: failed (killed by SIGKILL, exit code 137)" in out, out
    finally:
        subprocess.run(["scancel", str(job.submission_id)], capture_output=True)


@pytest.mark.timeout(120)
def test_pending_task_scancelled_behind_repromans_back_reads_cancelled_at_once(project):
    """scancel of one pending array task: it leaves squeue and never reaches sacct. It reads cancelled
    within seconds (not 'lost' after the 60 s grace); its held siblings stay pending."""
    job = run(command="true", batch_parameters=["i=0,1"], job_parameters=["directives=--hold"]).job
    try:
        wait_until(lambda: [s["state"] for s in subjob_rows(job.jobid)] == ["pending"] * 2, 30, "pending")
        subprocess.run(["scancel", f"{job.submission_id}_1"], check=True)
        started = time.monotonic()
        wait_until(lambda: subjob_rows(job.jobid)[1]["state"] == "failed", 20,
                   lambda: f"i=1 cancelled: {subjob_rows(job.jobid)}")
        assert time.monotonic() - started < 20
        pending_, gone = subjob_rows(job.jobid)
        assert (gone["reason"], gone["exit_code"], gone["detail"]) == (
            "cancelled", None, "cancelled outside ReproMan: removed from the queue before it started"), gone
        assert pending_["state"] == "pending"
    finally:
        subprocess.run(["scancel", str(job.submission_id)], capture_output=True)


@pytest.mark.timeout(180)
def test_job_directory_removed_while_running_never_reads_pending(project, capsys):
    """rm -rf of the job directory mid-run: the subjob never falls back to 'pending'; once Slurm says it
    completed, 'reproman jobs JOB' says so in one line, with what to do next."""
    import shutil

    job = run(command="sleep 6; echo ok > r.txt", outputs=["r.txt"]).job
    try:
        wait_until(lambda: subjob_rows(job.jobid)[0]["state"] == "running", 120, "running")
        shutil.rmtree(job.job_dir)
        seen = []
        for _ in range(60):
            row = subjob_rows(job.jobid)[0]
            seen.append((row["state"], row["detail"]))
            if "the scheduler says succeeded" in (row["detail"] or ""):
                break
            time.sleep(0.5)
        assert all(state != "pending" for state, _ in seen), seen
        assert seen[-1][0] == "unknown" and seen[-1][1].startswith("its job directory is gone; "), seen
        capsys.readouterr()
        assert main(["jobs", job.jobid]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.count(f"job {job.jobid}:") == 1, err
        assert "the scheduler says succeeded, exit code 0" in err and f"--delete {job.jobid}" in err, err
        assert job.working_directory in err
    finally:
        subprocess.run(["scancel", str(job.submission_id)], capture_output=True)


@pytest.mark.timeout(240)
def test_ctrl_c_then_jobs_follow_resumes_and_fetches(project):
    """Ctrl-C detaches 'run --follow' and names 'reproman jobs --follow JOB'; that waits, fetches, and exits
    as 'run --follow' would (1: a subjob failed)."""
    import pexpect

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = pexpect.spawn(sys.executable, ["-m", "reproman", "run", "--submitter", "slurm", "--follow", "--bp",
                                           "i=0,1", "-o", "out.{p[i]}", "sh", "-c",
                                           "sleep 15; echo {p[i]} > out.{p[i]}; test {p[i]} = 0"],
                          cwd=str(project), env=env, encoding="utf-8", timeout=120)
    wait_until(lambda: any(j.status == "submitted" for j in Registry().entries()), 60, "submission")
    jobid = Registry().entries()[0].jobid
    time.sleep(1)
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    said = " ".join((child.before or "").split())
    assert child.exitstatus == 130, said
    assert f"reproman jobs --follow {jobid}" in said, said
    resumed = subprocess.run([sys.executable, "-m", "reproman", "jobs", "--follow", jobid], cwd=project,
                             capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 1, resumed.stderr
    assert "1 succeeded, 1 failed" in resumed.stderr and "subjob i=1 failed" in resumed.stderr, resumed.stderr
    assert (project / "out.0").read_text() == "0\n" and (project / "out.1").read_text() == "1\n"
    assert Registry().load(jobid).was_fetched


@pytest.mark.timeout(240)
def test_crate_carries_failure_reasons_and_times(project, tmp_path):
    """The RO-Crate says why each subjob failed (out of memory from Slurm's accounting, an exit code 3) and
    when each ran: startTime/endTime on every CreateAction."""
    from reproman.jobs.export import export

    hog = "python3 -c 'b = bytearray(300 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\nimport time; time.sleep(5)'"
    assert main(["run", "--submitter", "slurm", "--follow", "--jp", "memory=100M", "--bp", "i=0,1,2", "sh", "-c",
                 f"if [ {{p[i]}} = 0 ]; then {hog}; elif [ {{p[i]}} = 1 ]; then exit 3; fi; true"]) == 1
    jobid = Registry().entries()[0].jobid
    metadata = export(jobid, str(tmp_path / "crate"))
    graph = {e["@id"]: e for e in json.loads(Path(metadata).read_text())["@graph"]}
    actions = [graph[f"#subjob-{i}"] for i in range(3)]
    # The recorded reason, as 'jobs --status' shows it. Out of memory needs Slurm's MaxRSS sample at the
    # limit, which a loaded node may miss (then it is a SIGKILL: 'non-zero exit, exit code 137').
    recorded = Registry().load(jobid).subjobs[0].outcome
    assert recorded is not None and actions[0]["error"].startswith(recorded["reason"]), (recorded, actions[0])
    if recorded["reason"] == "out of memory":
        assert actions[0]["error"].startswith("out of memory (killed by signal 9 with MaxRSS"), actions[0]
        assert actions[0]["error"].count("signal 9") == 1, actions[0]  # said once, not twice
    assert actions[1]["error"] == "non-zero exit, exit code 3", actions[1]
    assert "error" not in actions[2]
    for action in actions:
        assert action["startTime"] <= action["endTime"], action


@pytest.mark.timeout(240)
def test_log_shows_slurms_own_words_for_that_subjob(project, capsys):
    """'jobs --log JOB i=1' after a cancel: Slurm's '*** JOB N ... CANCELLED AT ... ***' line of that task
    (Slurm names the task's own job id, not ARRAY_TASK), and not its sibling's."""
    job = run(command="sleep 300", batch_parameters=["i=0,1"]).job
    try:
        wait_until(lambda: [s["state"] for s in subjob_rows(job.jobid)] == ["running"] * 2, 180, "both running")
        api.jobs(job.jobid, action="cancel")
        wait_until(lambda: all(s["state"] == "failed" for s in subjob_rows(job.jobid)), 60, "cancelled")
        log = Path(job.job_dir, "slurm.log")
        wait_until(lambda: log.read_text().count("CANCELLED AT") == 2, 30, lambda: log.read_text())
        ids = {}
        for line in log.read_text().splitlines():
            if line.startswith("reproman: subjob "):
                ids[int(line.split()[2])] = line.split()[-1]
        capsys.readouterr()
        assert main(["jobs", "--log", job.jobid, "i=1"]) == 0
        out = capsys.readouterr().out
        assert f"==> the scheduler's words on subjob i=1 (on the resource: {log}) <==" in out, out
        assert f"*** JOB {ids[1]} ON " in out and "CANCELLED AT" in out, out
        assert f"JOB {ids[0]} " not in out, out
    finally:
        subprocess.run(["scancel", str(job.submission_id)], capture_output=True)


@pytest.mark.timeout(240)
def test_usage_of_the_subjob_that_traced_the_environment_is_marked_and_kept_out_of_totals(project):
    """The first subjob on a cold node traces its packages while its command runs (about a second of CPU,
    tens of MB): its usage row says so, and the report's totals leave it out."""
    from reproman.report.collect import collect
    from reproman.report.render import render_html as render

    assert main(["run", "--submitter", "slurm", "--follow", "--bp", "i=0,1,2", "sh", "-c", "sleep 2"]) == 0
    jobid = Registry().entries()[0].jobid
    job = Registry().load(jobid)
    usage = api.jobs(jobid, action="show")[0]["usage"]
    marked = [row for row in usage if "includes" in row]
    assert len(marked) == 1 and "environment capture" in marked[0]["includes"], usage
    assert marked[0]["cpu_time"] == max(row["cpu_time"] for row in usage), usage
    data = collect(job)
    assert [r.index for r in data.subjobs if r.captured] == [int(marked[0]["subjob"].split("=")[1])]
    page = render(data)
    assert "traced the node&#x27;s environment for ReproMan" in page and "left out of the totals" in page


@pytest.mark.timeout(120)
def test_follow_says_once_when_nothing_starts_for_long(project, monkeypatch, caplog):
    """A job on a drained partition waits (a drain ends); following it says once, after LONG_WAIT, what
    Slurm gives as the reason and what the user can do, instead of showing 'pending' forever in silence."""
    from reproman.errors import JobError
    from reproman.jobs import follow as following
    from reproman.jobs.connection import Connection

    monkeypatch.setattr(following, "LONG_WAIT", 3.0)
    job = run(command="true", job_parameters=["queue=drained"]).job
    try:
        with Connection.for_job(job) as connection, pytest.raises(JobError, match="did not finish within"):
            following.follow(connection, job, maximum=1.0, timeout=12)
        said = [r.getMessage() for r in caplog.records if "nothing has started" in r.getMessage()]
        assert len(said) == 1, said
        assert ("ReqNodeNotAvail" in said[0] or "Nodes required for job are DOWN" in said[0]) and \
            f"reproman jobs --cancel {job.jobid}" in said[0], said
    finally:
        api.jobs(job.jobid, action="cancel")
