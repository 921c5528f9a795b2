"""Jobs on a container whose ``-o`` path is itself not UTF-8, as a user runs them with the CLI.

The Engine's archive endpoint takes the path in its URL, which cannot carry
such a name: fetching used to end in a traceback every time (``jobs JOB``,
``--follow``, ``--all``), so the results could never be brought back, and
``jobs --all`` stopped before the other finished jobs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_testlib import TEST_LABEL, unique_name

BAD = b"x\xff.txt"
#: Writes bytes that are not text either into the file named BAD.
WRITE_BAD = b"printf 'a\\000\\377' > \"$(printf 'x\\377.txt')\""


def _reproman(*args: str | bytes, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "reproman", *args], capture_output=True, timeout=180, cwd=cwd)


@pytest.fixture
def box(docker_client: Any, debian_image: str) -> Iterator[str]:
    name = unique_name("rmt-bytes")
    created = _reproman("create", name, "-t", "docker-container", "-b", f"image={debian_image}",
                        "-b", f"labels={TEST_LABEL}")
    assert created.returncode == 0, created.stderr
    try:
        yield name
    finally:
        docker_client.api.remove_container(name, force=True)


def _submit(project: Path, box: str, *args: str | bytes) -> str:
    proc = _reproman("run", "-r", box, *args, cwd=project)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().strip()


def _wait_finished(project: Path, jobid: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        proc = _reproman("jobs", "--status", "--json", jobid, cwd=project)
        assert proc.returncode == 0, proc.stderr
        if json.loads(proc.stdout)[0]["subjobs_status"]["finished"]:
            return
        time.sleep(0.5)
    pytest.fail(f"job {jobid} did not finish")


def _recorded_sha(project: Path, jobid: str, name: bytes) -> str:
    """The SHA-256 the job's record holds for output ``name`` (as taken on the resource)."""
    proc = _reproman("jobs", "--show", "--json", jobid, cwd=project)
    assert proc.returncode == 0, proc.stderr
    checksums = json.loads(proc.stdout)[0]["checksums"]
    return str(checksums[os.fsdecode(name)]["sha256"])


def test_all_fetches_a_non_utf8_output_and_goes_on_past_a_job_it_cannot_fetch(box: str, tmp_path: Path) -> None:
    import hashlib

    project = tmp_path / "project"
    project.mkdir()
    (project / "clash.txt").mkdir()  # the user's directory where a job makes a file: that job cannot land
    (project / "clash.txt" / "mine").write_text("mine\n")
    bad = _submit(project, box, "-o", BAD, "sh", "-c", WRITE_BAD)
    clash = _submit(project, box, "-o", "clash.txt", "sh", "-c", "echo job > clash.txt")
    ok = _submit(project, box, "-o", "ok.txt", "sh", "-c", "echo ok > ok.txt")
    for jobid in (bad, clash, ok):
        _wait_finished(project, jobid)

    proc = _reproman("jobs", "--all", cwd=project)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    assert proc.returncode == 1  # the clash is an error; the other two were fetched
    said = [line for line in proc.stderr.decode(errors="replace").splitlines() if clash in line]
    assert said and "clash.txt" in said[0], proc.stderr
    assert (project / os.fsdecode(BAD)).read_bytes() == b"a\x00\xff"
    assert (project / "ok.txt").read_text() == "ok\n"
    assert (project / "clash.txt" / "mine").read_text() == "mine\n"
    assert _recorded_sha(project, bad, BAD) == hashlib.sha256(b"a\x00\xff").hexdigest()


def test_follow_of_a_batch_over_non_utf8_names(box: str, tmp_path: Path) -> None:
    """``{p[f]}`` expanding to such a name, followed to the end: every output back, byte for byte."""
    project = tmp_path / "project"
    (project / "in").mkdir(parents=True)
    names = [b"bad\xff\xfename.txt", b"plain.txt", "caf\u00e9.txt".encode()]
    for name in names:
        (project / "in" / os.fsdecode(name)).write_bytes(b"\x00" + name)
    proc = _reproman("run", "-r", box, "--follow", "--bp", "f=in/*", "-i", "{p[f]}", "-o", "{p[f]}.out",
                     "sh", "-c", "cat {p[f]!q} {p[f]!q} > {p[f]!q}.out", cwd=project)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, proc.stderr
    for name in names:
        assert (project / "in" / os.fsdecode(name + b".out")).read_bytes() == (b"\x00" + name) * 2
