"""Re-trial D: a killed fetch, fetches racing each other, and commands that are not UTF-8.

Each test starts from what a researcher does: a real YODA dataset (real
DataLad and git-annex), jobs on the local shell resource, the ``reproman``
command line killed with SIGKILL or run twice at once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datalad_testlib import ORCHESTRATORS, body, git, run_job

from reproman_orchestrators_datalad import testing as yoda

#: A command with the byte 0xFF in it, as the shell would pass it to ``reproman run``.
NON_UTF8_COMMAND = b"printf 'caf\xff' > outputs/bytes.txt"


def _cli(*args: str | bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], cwd=cwd, capture_output=True, timeout=300)


@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_a_command_that_is_not_utf8_is_refused_before_it_runs(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    """Re-trial finding 4: never a commit message with the byte altered; one line, nothing run, nothing recorded."""
    heads = {sub: yoda.head(yoda_ds, sub) for sub in (".", "outputs")}
    ran = _cli("run", "--orchestrator", orchestrator, "--jp", f"root_directory={root}", "-o", "outputs/bytes.txt",
               "--follow", NON_UTF8_COMMAND, cwd=yoda_ds)
    err = ran.stderr.decode("utf-8", "backslashreplace")
    assert ran.returncode != 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "command holds bytes that are not valid UTF-8 (0xff at character 12" in lines[0], err
    assert "nothing was submitted" in lines[0] and "Traceback" not in err, err
    assert "printf" in err  # the hint: how to write the byte so it is recorded faithfully
    assert not (yoda_ds / "outputs" / "bytes.txt").exists()
    assert not (root / ".reproman" / "jobs").exists() or not any((root / ".reproman" / "jobs").iterdir())
    assert _cli("jobs", "--all", cwd=yoda_ds).returncode == 0
    assert b"bytes.txt" not in _cli("jobs", "--all", cwd=yoda_ds).stdout
    assert {sub: yoda.head(yoda_ds, sub) for sub in heads} == heads
    yoda.assert_clean(yoda_ds)


def test_the_printf_form_of_the_bytes_is_recorded_as_typed_and_reruns(yoda_ds: Path, root: Path) -> None:
    """What the refusal's hint says works: the command as typed in the record, the byte in the output."""
    command = "printf 'caf\\377' > outputs/bytes.txt"
    result = run_job(root, "datalad-local-run", command, outputs=["outputs/bytes.txt"])
    assert result.status.ok
    assert (yoda_ds / "outputs" / "bytes.txt").read_bytes() == b"caf\xff"
    assert '"cmd": "printf \'caf\\\\377\' > outputs/bytes.txt"' in body(yoda_ds), body(yoda_ds)
    yoda.datalad(yoda_ds, "rerun")
    assert (yoda_ds / "outputs" / "bytes.txt").read_bytes() == b"caf\xff"
    yoda.assert_clean(yoda_ds)


# -- a killed datalad-local-run fetch resumes to exactly one commit --------------------------------------
def _run_commits(ds: Path, jobid: str) -> list[str]:
    """Commits, on any ref, whose run record names the job."""
    return git(ds, "log", "--all", "--format=%H", "--fixed-strings", f'--grep="reproman_jobid": "{jobid}"').split()


def _block_in_hook(ds: Path, hook: str, marker: Path, seconds: int) -> None:
    """The first ``hook`` run in ``ds`` says so in ``marker`` and waits ``seconds`` (later runs pass)."""
    gitdir = Path(git(ds, "rev-parse", "--absolute-git-dir"))
    path = gitdir / "hooks" / hook
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"#!/bin/sh\n[ -e '{marker}' ] && exit 0\n: > '{marker}'\nexec sleep {seconds}\n")
    path.chmod(0o755)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


#: Where the first fetch is killed: in which dataset's git hook (the save commits subdatasets first).
KILL_POINTS = {
    "files-applied-nothing-committed": ("outputs", "pre-commit"),
    "subdataset-committed": ("outputs", "post-commit"),
    "all-committed-no-ref": (".", "post-commit"),
}


@pytest.mark.parametrize(("point", "group", "moved"), [
    *[pytest.param(point, group, False, id=f"{point}-{'process-group' if group else 'cli-only'}")
      for point in KILL_POINTS for group in (True, False)],
    # The user committed while the job ran: the fetch commits on the job's starting commits, detached.
    *[pytest.param(point, True, True, id=f"{point}-user-committed")
      for point in ("subdataset-committed", "all-committed-no-ref")],
])
def test_killed_local_run_fetch_resumes_to_one_commit(
    yoda_ds: Path, root: Path, point: str, group: bool, moved: bool
) -> None:
    """Re-trial finding 1: kill -9 of ``reproman jobs JOB`` while it commits; fetching again makes ONE commit.

    ``group`` kills the reproman process with its ``datalad save`` (half-way);
    otherwise the reproman process alone is killed and the save goes on.
    """

    sub, hook = KILL_POINTS[point]
    command = "sh code/count.sh inputs/s00.csv outputs/summary.txt && echo top > top.txt"
    result = run_job(root, "datalad-local-run", command, inputs=[yoda.CODE, "inputs/s00.csv"],
                     outputs=["outputs/summary.txt", "top.txt"], message="count", follow=False)
    jobid = result.job.jobid
    status = Path(result.job.job_dir, "status.0")
    deadline = time.monotonic() + 60
    while not (status.exists() and status.read_text().startswith("succeeded")):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.2)
    heads = {s: yoda.head(yoda_ds, s) for s in (".", "outputs")}
    branch = git(yoda_ds, "symbolic-ref", "--short", "HEAD")
    if moved:
        (yoda_ds / "notes.txt").write_text("my notes\n")
        yoda.datalad(yoda_ds, "save", "-m", "notes, while the job ran")
    mine = yoda.head(yoda_ds)
    marker = root.parent / f"hook-{point}"
    # Killed with the group, the hook dies at once; the orphaned save of ``cli-only`` goes on after it.
    _block_in_hook(yoda_ds / sub, hook, marker, 120 if group else 10)

    cli = subprocess.Popen([sys.executable, "-m", "reproman", "jobs", jobid], cwd=yoda_ds, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not marker.exists():
            assert cli.poll() is None and time.monotonic() < deadline, "the fetch never reached the commit"
            time.sleep(0.05)
        if group:
            os.killpg(cli.pid, signal.SIGKILL)
        else:
            cli.kill()
        cli.wait()

        again = _cli("jobs", jobid, cwd=yoda_ds)
        assert again.returncode == 0, again.stderr.decode()
        listing = _cli("jobs", "--all", cwd=yoda_ds)
        assert listing.returncode == 0, listing.stderr.decode()
        # What the killed fetch left running (its datalad save) ends before the dataset is judged.
        while _group_alive(cli.pid):
            assert time.monotonic() < deadline + 60, "the orphaned save never ended"
            time.sleep(0.2)
    finally:
        try:  # whatever of the first fetch still runs (only processes this test started)
            os.killpg(cli.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert len(_run_commits(yoda_ds, jobid)) == 1, git(yoda_ds, "log", "--all", "--oneline", "-6")
    assert len(_run_commits(yoda_ds / "outputs", jobid)) == 1, git(yoda_ds / "outputs", "log", "--all", "--oneline")
    job_commit = git(yoda_ds, "rev-parse", f"refs/reproman/{jobid}")
    assert git(yoda_ds, "rev-parse", f"{job_commit}^") == heads["."]
    if moved:  # merged with the user's commit, which is kept
        assert git(yoda_ds, "rev-parse", "HEAD^1") == mine and git(yoda_ds, "rev-parse", "HEAD^2") == job_commit
        assert (yoda_ds / "notes.txt").read_text() == "my notes\n"
    else:
        assert job_commit == git(yoda_ds, "rev-parse", "HEAD")
    assert git(yoda_ds, "symbolic-ref", "--short", "HEAD") == branch
    assert git(yoda_ds / "outputs", "rev-parse", "HEAD^") == heads["outputs"]
    assert (yoda_ds / "top.txt").read_text() == "top\n"
    assert yoda.rows(yoda_ds / "outputs" / "summary.txt") == yoda.expected_rows("s00")
    assert f"{jobid}/spec.yaml" in git(yoda_ds, "ls-files", ".reproman/jobs")
    yoda.assert_clean(yoda_ds)
    # Fetching once more changes nothing.
    assert _cli("jobs", jobid, cwd=yoda_ds).returncode == 0
    assert len(_run_commits(yoda_ds, jobid)) == 1
    yoda.assert_clean(yoda_ds)


# -- fetches racing each other commit a complete record --------------------------------------------------
@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-pair-run"])
def test_concurrent_fetches_commit_the_record_with_its_checksums(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    """Re-trial finding 2: six ``reproman jobs JOB`` at once; the one commit's record has every output's checksum.

    Core's collection of checksums on the resource used to run before the
    orchestrator's lock, so racing fetches truncated each other's checksum
    files (and a late one hashed outputs the save had made annex links).
    """
    import hashlib

    from reproman.plugins import load_record

    command = ("mkdir -p outputs/df && head -c 5000000 /dev/urandom > outputs/df/a && echo b > outputs/df/b "
               "&& echo c > outputs/df/c")
    result = run_job(root, orchestrator, command, outputs=["outputs/df"], follow=False)
    job = result.job
    status = Path(job.job_dir, "status.0")
    deadline = time.monotonic() + 60
    while not (status.exists() and status.read_text().startswith("succeeded")):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.2)
    # Outputs that take a while to hash (gigabytes, a slow file system): a sha256sum that starts late.
    slow = root.parent / "slow-bin"
    slow.mkdir()
    (slow / "sha256sum").write_text(f"#!/bin/sh\nsleep 1\nexec {shutil.which('sha256sum')} \"$@\"\n")
    (slow / "sha256sum").chmod(0o755)
    env = {**os.environ, "PATH": f"{slow}{os.pathsep}{os.environ['PATH']}"}
    clis = []
    for _ in range(6):  # started a little apart, so each collection overlaps another's at a different step
        clis.append(subprocess.Popen([sys.executable, "-m", "reproman", "jobs", job.jobid], cwd=yoda_ds, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        time.sleep(0.15)
    said = [cli.communicate(timeout=300) for cli in clis]
    assert [cli.returncode for cli in clis] == [0] * 6, said

    committed = load_record(git(yoda_ds, "show", f"HEAD:.reproman/jobs/{job.resource_name}/{job.jobid}/spec.yaml"),
                            "spec.yaml")
    sums = committed.get("checksums") or {}
    assert sorted(sums) == ["outputs/df/a", "outputs/df/b", "outputs/df/c"], sums
    for rel, entry in sums.items():
        data = (yoda_ds / rel).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data), rel
    yoda.assert_clean(yoda_ds)
