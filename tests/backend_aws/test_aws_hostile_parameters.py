"""Timeouts of the aws-ec2 backend: 0, negative or past a day is one line and exit 2 at ``create``.

They went unchecked to botocore and paramiko (a timeout of 0 fails every
connection at once; 1e20 seconds does not fit a socket timeout). Refused
before any call to EC2, so no moto server is needed.
"""

from __future__ import annotations

import pytest

from reproman.testing.cli import run_cli


@pytest.mark.parametrize(("parameter", "said"), [
    ("connect_timeout=0", "'connect_timeout': must be at least 1, got 0"),
    ("connect_timeout=99999999999999999999", "'connect_timeout': must be at most 86,400"),
    ("wait_timeout=-1", "'wait_timeout': must be at least 1, got -1"),
    ("wait_timeout=99999999999999999999", "'wait_timeout': must be at most 86,400"),
])
def test_bad_timeouts_are_refused_at_create(parameter: str, said: str) -> None:
    result = run_cli(["create", "box", "-t", "aws-ec2", "-b", parameter], timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert said in result.stderr, result.stderr
    assert "box" not in run_cli(["ls"]).stdout
