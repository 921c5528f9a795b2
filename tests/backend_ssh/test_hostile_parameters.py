"""Numbers in SSH backend parameters: one line and exit 2 at ``create``, nothing recorded.

``port=0`` silently meant port 22, a port of twenty digits ended in an
OverflowError from the socket layer, and ``connect_timeout=0`` or a
timeout no socket can hold reached paramiko.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reproman.testing.cli import run_cli

HUGE = "9" * 30


@pytest.mark.parametrize(("parameter", "said"), [
    ("port=0", "'port': must be at least 1, got 0"),
    ("port=65536", "'port': must be at most 65,535, got 65536"),
    (f"port={HUGE}", "'port': must be at most 65,535"),
    ("port=ssh", "'port': expected an integer"),
    ("connect_timeout=0", "'connect_timeout': must be at least 1"),
    ("connect_timeout=-4", "'connect_timeout': must be at least 1"),
    (f"connect_timeout={HUGE}", "'connect_timeout': must be at most 86,400"),
])
def test_bad_numbers_are_refused_at_create(parameter: str, said: str) -> None:
    result = run_cli(["create", "box", "-t", "ssh", "-b", "host=127.0.0.1", "-b", parameter], timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert said in result.stderr, result.stderr
    listed = run_cli(["ls"])
    assert "box" not in listed.stdout, listed.stdout


@pytest.mark.parametrize(("entry", "said"), [
    ("Port abc", "ssh_config Port of host odd must be a whole number, at least 1; got 'abc'"),
    ("Port 0", "ssh_config Port of host odd must be a whole number, at least 1; got '0'"),
    ("Port 99999999999", "ssh_config Port of host odd must be at most 65,535"),
    ("ConnectTimeout soon", "ssh_config ConnectTimeout of host odd must be a whole number"),
    ("ConnectTimeout 0", "ssh_config ConnectTimeout of host odd must be a whole number, at least 1"),
])
def test_bad_numbers_in_ssh_config_name_the_key(entry: str, said: str) -> None:
    """Fabric read them with int(): "ValueError: invalid literal for int()", or port 0 tried as given."""
    ssh = Path.home() / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "config").write_text(f"Host odd\n  HostName 127.0.0.1\n  {entry}\n")
    result = run_cli(["create", "box", "-t", "ssh", "-b", "host=odd"], timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert said in result.stderr and "ValueError" not in result.stderr, result.stderr
    assert "box" not in run_cli(["ls"]).stdout
