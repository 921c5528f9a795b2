"""Job states on PBS Pro, Torque, HTCondor and LSF, through ``reproman run`` and ``reproman jobs``.

NOT run against live PBS, HTCondor or LSF (none can be installed here): the
fake tools in :mod:`reproman.testing.fakesched` answer as the vendors document for
finished, removed and cancelled jobs, history commands included, and forget
finished jobs the way each scheduler does (``FAKE_SCHED_FORGET_AFTER``). The
cases are the ones users hit: cancelling, removing a job behind ReproMan's
back, checking back after the scheduler forgot, a request that can never
start, and directives whose meaning must not depend on site defaults.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from submitters_helpers import fake_calls, fake_options

from reproman import api
from reproman.cli.main import main
from reproman.config import reset_config
from reproman.jobs.commands import RunResult
from reproman.jobs.registry import Registry

FLAVOURS = ["pbs", "torque", "condor", "lsf"]
#: Each scheduler's own cancel command, as a user types it behind ReproMan's back.
NATIVE_CANCEL = {"pbs": "qdel", "torque": "qdel", "condor": "condor_rm", "lsf": "bkill"}


@pytest.fixture(autouse=True)
def _fakes(fake_scheduler: Path) -> Path:
    return fake_scheduler


def use(flavour: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The submitter name for ``flavour``, with Torque configured where asked."""
    if flavour == "torque":
        monkeypatch.setenv("FAKE_PBS_FLAVOR", "torque")
        monkeypatch.setenv("REPROMAN_SUBMITTER-PBS_FLAVOR", "torque")
        reset_config()
        return "pbs"
    return flavour


def run(**kwargs: object) -> RunResult:
    result = api.run(**kwargs)  # type: ignore[arg-type]
    assert isinstance(result, RunResult)
    return result


def subjob_states(jobid: str) -> list[tuple[str, str | None]]:
    row = api.jobs(jobid, action="show", status=True)[0]
    return [(s["state"], s["reason"]) for s in row["subjobs_status"]["subjobs"]]


def wait_states(jobid: str, done: object, timeout: float = 20) -> list[tuple[str, str | None]]:
    deadline = time.monotonic() + timeout
    while True:
        states = subjob_states(jobid)
        if done(states):  # type: ignore[operator]
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"job {jobid}: {states}")
        time.sleep(0.2)


def scheduler_id(job_id: str) -> str:
    job = Registry().load(job_id)
    return str(job.submission_id).split(".")[0]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_cancelled_stays_cancelled_after_the_scheduler_forgets(flavour, project, monkeypatch):
    """jobs --cancel: "cancelled" on every submitter, also once the scheduler has forgotten the job
    (before, PBS, Torque and LSF said "lost" and HTCondor "running" forever)."""
    sub = use(flavour, monkeypatch)
    job = run(command="sleep 30", batch_parameters=["i=1,2"], submitter=sub).job
    wait_states(job.jobid, lambda s: s[0][0] == "running")
    assert api.jobs(job.jobid, action="cancel") == [{"jobid": job.jobid, "cancelled": True}]
    cancelled = [("failed", "cancelled")] * 2
    assert wait_states(job.jobid, lambda s: s == cancelled) == cancelled
    monkeypatch.setenv("FAKE_SCHED_FORGET_AFTER", "0")
    monkeypatch.setenv("FAKE_CONDOR_HISTORY", "0")
    assert subjob_states(job.jobid) == cancelled
    assert main(["jobs", job.jobid]) == 1
    assert Registry().load(job.jobid).was_fetched
    assert api.jobs(job.jobid, action="list")[0]["outcome"] == "2 cancelled"


@pytest.mark.parametrize("flavour", ["pbs", "lsf"])
def test_cancelled_job_the_scheduler_forgot_at_once_is_cancelled_not_lost(flavour, project, monkeypatch):
    """Nobody polls between 'jobs --cancel' and the scheduler forgetting (PBS Pro without job history
    forgets at once): the cancellation kept in the record still names the cause."""
    sub = use(flavour, monkeypatch)
    job = run(command="sleep 30", submitter=sub).job
    wait_states(job.jobid, lambda s: s[0][0] == "running")
    monkeypatch.setenv("FAKE_SCHED_FORGET_AFTER", "0")
    monkeypatch.setenv("REPROMAN_JOBS_LOST_AFTER", "0")
    reset_config()
    assert api.jobs(job.jobid, action="cancel") == [{"jobid": job.jobid, "cancelled": True}]
    assert wait_states(job.jobid, lambda s: s[0][0] == "failed") == [("failed", "cancelled")]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_removed_behind_reprommans_back_is_cancelled(flavour, project, monkeypatch):
    """qdel / condor_rm / bkill typed by the user: the scheduler's memory of finished jobs says so."""
    sub = use(flavour, monkeypatch)
    job = run(command="sleep 30", submitter=sub).job
    wait_states(job.jobid, lambda s: s[0][0] == "running")
    import subprocess

    subprocess.run([NATIVE_CANCEL[flavour], scheduler_id(job.jobid)], capture_output=True, check=False)
    assert wait_states(job.jobid, lambda s: s[0][0] == "failed") == [("failed", "cancelled")]
    if flavour == "condor":
        # The removed proc left the queue: only condor_history knew.
        assert fake_calls(project.parent / "fake-state", "condor_history")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_silent_subjob_the_scheduler_forgot_is_lost_not_running(flavour, project, monkeypatch):
    """The runscript is killed before its final line and the scheduler keeps no memory of it:
    "lost" once silent for [jobs] lost_after seconds, never "running" forever."""
    sub = use(flavour, monkeypatch)
    monkeypatch.setenv("FAKE_SCHED_FORGET_AFTER", "0")
    monkeypatch.setenv("FAKE_CONDOR_HISTORY", "0")
    monkeypatch.setenv("REPROMAN_JOBS_LOST_AFTER", "1")
    reset_config()
    job = run(command="kill -9 $PPID", submitter=sub).job
    states = wait_states(job.jobid, lambda s: s[0][0] == "failed", timeout=30)
    assert states == [("failed", "lost (ended without writing its status)")]


@pytest.mark.timeout(60)
def test_request_that_can_never_run_stops_follow(project, monkeypatch, capsys):
    """PBS Pro says "Can Never Run" for more CPUs than any node has: run --follow exits 3 with the reason."""
    code = main(["run", "--submitter", "pbs", "--jp", "num_processes=64", "--follow", "true"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "can never start as submitted" in err and "Can Never Run: Insufficient amount of resource: ncpus" in err
    (job,) = Registry().entries()
    assert not job.was_fetched  # type: ignore[union-attr]
    assert main(["jobs", job.jobid]) == 3  # still not finished, and says why
    assert "Can Never Run" in capsys.readouterr().err


def test_lsf_pending_reason_is_shown(project, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    job = run(command="true", submitter="lsf").job
    assert main(["jobs", "--status", job.jobid]) == 0
    assert "#0: pending (New job is waiting for scheduling)" in capsys.readouterr().out


def test_memory_means_the_same_whatever_the_site_defaults(project, monkeypatch):
    """memory=1G with num_processes=2 asks for 1 GB for the subjob, on every scheduler.

    LSF (IBM Spectrum LSF 10.1 docs, "Enabling per-task memory reservation" and
    the 10.1.0.9 release notes): a plain ``rusage[mem=512]`` is reserved per
    host by default but per task where lsb.params sets
    RESOURCE_RESERVE_PER_TASK=y, and ``-M`` is per process unless
    LSB_JOB_MEMLIMIT=y. ``rusage[mem=1024MB/job]`` names its method, so it
    reserves 1 GB once whatever the site says; ``-M 1024MB`` is right in both
    -M modes. With num_nodes memory is per node, as Slurm's ``--mem`` and PBS
    Pro's chunk ``mem``: ``/host``.
    PBS Pro: ``mem`` in a select chunk is per chunk (one per node). Torque:
    ``mem`` is for the whole job, so it is multiplied by the nodes.
    """
    state = project.parent / "fake-state"
    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    lsf = run(command="true", submitter="lsf", job_parameters=["memory=1G", "num_processes=2"]).job
    options = fake_options(state, str(lsf.submission_id))
    assert options["-M"] == "1024MB" and options["-n"] == "2"
    assert options["R"] == ["span[hosts=1]", "rusage[mem=1024MB/job]"]
    spread = run(command="true", submitter="lsf", job_parameters=["memory=1G", "num_nodes=2"]).job
    options = fake_options(state, str(spread.submission_id))
    assert options["-M"] == "2048MB" and "rusage[mem=1024MB/host]" in options["R"]
    pro = run(command="true", submitter="pbs", job_parameters=["memory=1G", "num_nodes=2"]).job
    assert fake_options(state, str(pro.submission_id))["resources"] == ["select=2:ncpus=1:mem=1024mb"]
    use("torque", monkeypatch)
    torque = run(command="true", submitter="pbs", job_parameters=["memory=1G", "num_nodes=2"]).job
    assert fake_options(state, str(torque.submission_id))["resources"] == ["nodes=2:ppn=1,mem=2048mb"]


@pytest.mark.parametrize("flavour", ["pbs", "lsf"])
def test_launcher_without_throttle_is_refused_not_n_wide(flavour, project, monkeypatch, capsys):
    code = main(["run", "--submitter", flavour, "--jp", "launcher=true", "--bp", "i=1,2,3", "true"])
    assert code == 1
    assert f"launcher mode on {flavour} needs throttle=N" in capsys.readouterr().err


def test_jobs_all_asks_the_scheduler_once(project, monkeypatch, capsys):
    """Twenty unfinished PBS jobs: 'jobs --all' and 'jobs --status' each make ONE qstat call."""
    monkeypatch.setenv("FAKE_SCHED_HOLD", "1")
    for _ in range(20):
        run(command="true", submitter="pbs")
    state = project.parent / "fake-state"
    before = len(fake_calls(state, "qstat"))
    assert main(["jobs", "--all"]) == 3
    assert len(fake_calls(state, "qstat")) - before == 1
    assert main(["jobs", "--status"]) == 0
    assert len(fake_calls(state, "qstat")) - before == 2
    capsys.readouterr()


def test_usage_recorded_from_the_schedulers_memory(project, monkeypatch, capsys):
    job = run(command="sleep 1", submitter="pbs", follow=True).job
    shown = api.jobs(job.jobid, action="show")[0]
    (usage,) = shown["usage"]
    # The fake reports the wall time it saw (at least the command's second; more on a loaded machine).
    assert usage["elapsed"] >= 1.0 and usage["cpu_time"] == usage["elapsed"]
    # The only subjob traced the node's environment (a cold cache): its row says its figures include that.
    assert {k: usage[k] for k in ("subjob", "max_rss", "node", "includes")} == {
        "subjob": "#0", "max_rss": 3904 * 1024, "node": "fakenode",
        "includes": "ReproMan's environment capture (it traced the node's packages)"}
    assert os.path.exists(Path(job.local_directory, ".reproman", "jobs", "local", job.jobid, "spec.yaml"))
