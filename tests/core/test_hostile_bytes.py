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


def test_output_names_holding_line_breaks_other_than_newline_are_fetched(workdir: Path) -> None:
    """Trial O, 3: a subject list saved with CRLF line ends gives values ending in CR. Python's splitlines()
    also splits at CR, VT, FF, \\x1c-\\x1e, U+0085, U+2028 and U+2029, so such outputs were made on the resource,
    never fetched, called "not produced", and their checksums dropped. A newline is refused at submission."""
    import hashlib
    import json

    values = ["sub-01\r", "v\x0bt", "f\x0cf", "g\x1cs", "n\u0085l", "l\u2028s", "p\u2029s"]
    spec = b",".join(v.encode() for v in values)
    result = reproman_bytes(b"run", b"--follow", b"--bp", b"s=" + spec, b"-o", b"out/{p[s]}.txt",
                            b"sh", b"-c", b"mkdir -p out; printf %s {p[s]!q} > out/{p[s]!q}.txt", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert b"not produced" not in result.stderr and b"stay on the resource" not in result.stderr, result.stderr
    for value in values:
        assert (workdir / "out" / f"{value}.txt").read_bytes() == value.encode()
    jobid = result.stdout.decode().split()[0]
    shown = subprocess.run([sys.executable, "-m", "reproman", "jobs", "--show", "--json", jobid], cwd=workdir,
                           capture_output=True, text=True, timeout=120)
    (record,) = json.loads(shown.stdout)
    sums = record.get("checksums") or {}
    for value in values:
        expected = hashlib.sha256(value.encode()).hexdigest()
        assert sums[f"out/{value}.txt"]["sha256"] == expected, sorted(sums)


def test_warnings_show_control_characters_of_names_escaped(workdir: Path) -> None:
    """Trial O, 3 and 7: a warning naming an output that holds a CR or an escape sequence printed it raw: the CR
    overwrote the line on the terminal, an escape sequence acted on it. Log lines show them escaped."""
    result = reproman_bytes(b"run", b"--follow", b"-o", b"gone\r\x1b]0;title\x07.txt", b"true", cwd=workdir)
    assert b"not produced" in result.stderr, result.stderr
    assert b"\r" not in result.stderr and b"\x1b" not in result.stderr and b"\x07" not in result.stderr, result.stderr
    assert b"gone\\r\\x1b]0;title\\x07.txt" in result.stderr, result.stderr
