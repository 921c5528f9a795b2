"""``reproman jobs --follow`` across a connection that drops for a moment, against a real sshd.

The user's world: a job runs on a login node; while ``jobs --follow`` waits
for it, sshd restarts (every connection it forked is cut, and for a few
seconds nothing listens). Following must retry with backoff, say so on
stderr, and fetch the job once the node answers again; with the node gone
for longer than ``[jobs] retry_for`` it gives up with one line.

The sshd here is this module's own (it is stopped and started again), not
the session-wide one other tests share.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reproman import api


@pytest.fixture(scope="module")
def own_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from reproman_backend_ssh.testing import running_sshd

    yield from running_sshd(tmp_path_factory.mktemp("sshd-restarted"))


@pytest.fixture(params=["yes", "no"], ids=["persistent", "direct"])
def node(request: pytest.FixtureRequest, own_sshd: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An ssh resource 'node' (through a session host, or connecting directly), in a project directory."""
    if own_sshd.process is None:
        own_sshd.start()
    params = {k: str(v) for k, v in own_sshd.session_params().items() if v is not None}
    api.create("node", "ssh", {**params, "persistent": request.param})
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    return own_sshd


def _cut(sshd: Any) -> None:
    """Stop the sshd and every connection it served (sshd's per-connection processes outlive the listener)."""
    connections = sshd.connection_pids()
    sshd.stop()
    for pid in connections:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _follow(jobid: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "reproman", "jobs", "--follow", jobid],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})


def _submit(seconds: int) -> str:
    result = api.run(command=f"sleep {seconds}; echo done > out.txt", resref="node", outputs=["out.txt"])
    return result.job.jobid  # type: ignore[union-attr]


@pytest.mark.timeout(180)
def test_follow_survives_sshd_restart(node: Any) -> None:
    """Before: the first poll after the cut raised, and 'jobs --follow' exited 1 with the job still running."""
    jobid = _submit(8)
    follow = _follow(jobid)
    try:
        time.sleep(2)
        _cut(node)  # every connection cut, nothing listens
        time.sleep(3)
        node.start()
        out, err = follow.communicate(timeout=120)
    finally:
        if follow.poll() is None:
            follow.kill()
    assert follow.returncode == 0, err
    assert "retrying" in err and "Traceback" not in err, err
    assert Path("out.txt").read_text() == "done\n"


@pytest.mark.timeout(180)
def test_follow_gives_up_with_one_line_after_retry_for(node: Any) -> None:
    jobid = _submit(30)
    follow = _follow(jobid, REPROMAN_JOBS_RETRY_FOR="4")
    try:
        time.sleep(2)
        _cut(node)
        cut = time.monotonic()
        _out, err = follow.communicate(timeout=120)
        waited = time.monotonic() - cut
    finally:
        if follow.poll() is None:
            follow.kill()
        node.start()
    # Trial Q, 9: not 1 ("some subjobs failed"): 4, the follow stopped before the end and the job runs on.
    assert follow.returncode == 4, err
    assert waited >= 4, (waited, err)
    errors = [line for line in err.splitlines() if line.startswith("reproman: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert f"reproman jobs --follow {jobid}" in err  # how to wait again
    api.jobs(jobid, action="cancel")


@pytest.mark.timeout(180)
def test_run_follow_that_gives_up_exits_4_and_names_the_job(node: Any) -> None:
    """Trial Q, 9: 'run --follow' giving up on a silent node exited 1, the code for "some subjobs failed"."""
    follow = subprocess.Popen([sys.executable, "-m", "reproman", "run", "-r", "node", "--follow", "-o", "out.txt",
                               "sh", "-c", "sleep 30; echo done > out.txt"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "REPROMAN_JOBS_RETRY_FOR": "3"})
    try:
        time.sleep(4)  # submitted and followed
        _cut(node)
        out, err = follow.communicate(timeout=120)
    finally:
        if follow.poll() is None:
            follow.kill()
        node.start()
    assert follow.returncode == 4, err
    jobid = out.strip()
    assert jobid and f"reproman jobs --follow {jobid}" in err, (out, err)
    api.jobs(jobid, action="cancel")


@pytest.mark.timeout(180)
def test_follow_started_while_the_node_is_down_waits_for_it(node: Any) -> None:
    jobid = _submit(3)
    _cut(node)
    follow = _follow(jobid)
    try:
        time.sleep(3)
        node.start()
        _out, err = follow.communicate(timeout=120)
    finally:
        if follow.poll() is None:
            follow.kill()
    assert follow.returncode == 0, err
    assert "retrying" in err and "answers again" in err, err
