"""A full disk under the job records once the job is submitted (trial O, finding 6).

The job runs on whatever happens to this machine's disk: ``run`` must hand
over its ID, say it keeps running and how to pick it up again, and not exit
with the "some subjobs failed" code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reproman.cli.commands.run import STOPPED_AFTER_SUBMISSION, SUBJOBS_FAILED


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs: a real disk that fills."""
    where = tmp_path / "small-disk"
    where.mkdir()
    mount = shutil.which("mount")
    made = mount and os.geteuid() == 0 and subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True).returncode == 0
    if not made:
        if os.environ.get("CI") == "true":
            pytest.fail("cannot mount a tmpfs (needs root) to fill a real disk")
        pytest.skip("cannot mount a tmpfs (needs root) to fill a real disk")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def _fill(disk: Path) -> None:
    """Write ``disk/filler`` until the file system is full (remove the file to free it)."""
    with open(disk / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError:
            pass


def _reproman(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def _records(data: Path) -> list[Path]:
    return sorted((data / "reproman" / "jobs").glob("*.yaml")) if (data / "reproman" / "jobs").is_dir() else []


def test_a_disk_that_fills_while_following_leaves_the_job_running_and_says_how_to_resume(
        tmp_path: Path, small_disk: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    env = {"XDG_DATA_HOME": str(small_disk)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reproman", "run", "--follow", "--bp", "i=2..4", "-o", "f/{p[i]}", "sh", "-c",
         "mkdir -p f; sleep {p[i]}; echo {p[i]} > f/{p[i]}"],
        cwd=project, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any((yaml.safe_load(p.read_text()) or {}).get("status") == "submitted" for p in _records(small_disk)):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        _fill(small_disk)  # the disk fills while the subjobs run
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    jobid = _records(small_disk)[0].stem
    assert proc.returncode == STOPPED_AFTER_SUBMISSION != SUBJOBS_FAILED, err
    assert out == f"{jobid}\n"
    last = err.strip().splitlines()[-1]
    assert "No space left on device" in last and "Traceback" not in err, err
    assert (f"Job {jobid} was submitted and keeps running on the resource. Once this is fixed, follow it again "
            f"with 'reproman jobs --follow {jobid}'.") in last, err
    (small_disk / "filler").unlink()
    again = _reproman(["jobs", "--follow", jobid], project, env)
    assert again.returncode == 0, again.stderr
    assert [(project / "f" / str(i)).read_text() for i in (2, 3, 4)] == ["2\n", "3\n", "4\n"]


#: ``reproman run`` whose record write right after the submission fails with ENOSPC. Injected: a real
#: disk cannot be made to fill at exactly that write.
_FULL_AFTER_SUBMIT = textwrap.dedent("""
    import errno, sys
    from reproman.jobs import registry
    real = registry.Registry.save
    def save(self, job):
        if job.status == "submitted" and job.submission_id:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path(job.jobid)))
        return real(self, job)
    registry.Registry.save = save
    from reproman.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_job_submitted_as_the_disk_fills_still_hands_over_its_id(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    done = subprocess.run([sys.executable, "-c", _FULL_AFTER_SUBMIT, "run", "--follow", "-o", "out.txt", "sh", "-c",
                           "sleep 1; echo ok > out.txt"], cwd=project, capture_output=True, text=True, timeout=300)
    assert done.returncode == STOPPED_AFTER_SUBMISSION, done.stderr
    jobid = done.stdout.strip()
    assert jobid, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert "No space left on device" in line and f"Job {jobid} was submitted and keeps running" in line, done.stderr
    # Its record still says "submitting"; the next command finds the launcher and follows the job to the end.
    again = _reproman(["jobs", "--follow", jobid], project, {})
    assert again.returncode == 0, again.stderr
    assert (project / "out.txt").read_text() == "ok\n"


def test_a_full_disk_before_submission_says_nothing_was_submitted(tmp_path: Path, small_disk: Path) -> None:
    """Trial P: "cannot write ...: No space left on device" left the user asking whether the job ran."""
    project = tmp_path / "project"
    project.mkdir()
    _fill(small_disk)
    done = _reproman(["run", "--bp", "i=1..3", "-o", "out/{p[i]}", "sh", "-c", "mkdir -p out; echo {p[i]} > out/{p[i]}"],
                     project, {"XDG_DATA_HOME": str(small_disk)})
    assert done.returncode == 1 and done.stdout == "", done
    (line,) = done.stderr.strip().splitlines()
    assert "No space left on device" in line and "Nothing was submitted" in line, line
    time.sleep(1)
    assert not (project / "out").exists()  # and truly nothing ran
    assert _records(small_disk) == []


def test_a_disk_that_fills_under_jobs_follow_exits_4_not_subjobs_failed(tmp_path: Path, small_disk: Path) -> None:
    """wdlock left it open: 'jobs --follow' stopped by a full disk exited 1, which scripts read as "some
    subjobs failed" while the job was still running."""
    project = tmp_path / "project"
    project.mkdir()
    env = {"XDG_DATA_HOME": str(small_disk)}
    submitted = _reproman(["run", "--bp", "i=2..3", "-o", "f/{p[i]}", "sh", "-c",
                           "mkdir -p f; sleep {p[i]}; echo {p[i]} > f/{p[i]}"], project, env)
    assert submitted.returncode == 0, submitted.stderr
    jobid = submitted.stdout.strip()
    proc = subprocess.Popen([sys.executable, "-m", "reproman", "jobs", "--follow", jobid], cwd=project,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        _fill(small_disk)  # the disk fills while it follows
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == STOPPED_AFTER_SUBMISSION, err
    last = err.strip().splitlines()[-1]
    assert "No space left on device" in last and "Traceback" not in err, err
    assert f"Job {jobid} " in last and "'reproman jobs" in last, last
    (small_disk / "filler").unlink()
    again = _reproman(["jobs", "--follow", jobid], project, env)
    assert again.returncode == 0, again.stderr
    assert [(project / "f" / str(i)).read_text() for i in (2, 3)] == ["2\n", "3\n"]
