"""Command-line words that are not UTF-8 reach the job byte for byte: command words, --bp and --jp env values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def reproman_bytes(*args: bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, b"-m", b"reproman", *args], cwd=cwd, capture_output=True, timeout=120)


def test_run_command_word_batch_and_env_values_arrive_byte_exact(workdir: Path) -> None:
    result = reproman_bytes(b"run", b"--follow", b"--bp", b"v=\xff", b"--jp", b"env=A=\xfe", b"-o", b"out",
                            b"sh", b"-c", b'printf "%s|%s|%s" {p[v]} "$A" \xfd > out', cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr
    assert (workdir / "out").read_bytes() == b"\xff|\xfe|\xfd"


def test_follow_echo_of_a_non_utf8_word(workdir: Path) -> None:
    result = reproman_bytes(b"run", b"--follow", b"echo", b"\xff", cwd=workdir)
    assert result.returncode == 0, result.stderr
    jobid = result.stdout.decode().split()[0]
    (stdout,) = (workdir / ".reproman" / "jobs" / "local" / jobid).glob("stdout.0")
    assert stdout.read_bytes() == b"\xff\n"


def test_execute_on_the_local_resource_is_byte_exact(workdir: Path) -> None:
    result = reproman_bytes(b"execute", b"printf", b"%s", b"\xff\x80", cwd=workdir)
    assert (result.returncode, result.stdout) == (0, b"\xff\x80"), result.stderr


def test_a_run_that_fails_before_submission_leaves_no_directory(workdir: Path) -> None:
    """The job directory cannot be written (a file named .reproman in the root): no working directory stays."""
    root = workdir.parent / "root"
    root.mkdir()
    (root / ".reproman").write_text("in the way\n")
    (workdir / "in.txt").write_text("x")
    result = reproman_bytes(b"run", b"--jp", f"root_directory={root}".encode(), b"-i", b"in.txt", b"true",
                            cwd=workdir)
    assert result.returncode == 1 and b"Traceback" not in result.stderr, result.stderr
    assert sorted(p.name for p in root.iterdir()) == [".reproman"]
    listed = reproman_bytes(b"jobs", b"--json", cwd=workdir)
    assert listed.stdout.strip() == b"[]"
