"""Numbers in SSH backend parameters: one line and exit 2 at ``create``, nothing recorded.

``port=0`` silently meant port 22, a port of twenty digits ended in an
OverflowError from the socket layer, and ``connect_timeout=0`` or a
timeout no socket can hold reached paramiko.
"""

from __future__ import annotations

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
