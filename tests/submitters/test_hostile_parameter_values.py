"""Scheduler job parameters that no scheduler should get: refused in one line (exit 2) before any job exists.

``memory=0`` became a 1 MB request, ``walltime=0`` is "no limit at all" to
Slurm (and "end at once" to PBS), and numbers far past any machine reached
``sbatch``, which refused them after a "submission failed" job record had
been written. Through ``reproman run`` against the real Slurm.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reproman.testing.cli import run_cli

HUGE = "9" * 400


@pytest.mark.parametrize(("parameter", "said"), [
    ("memory=0", "memory must be more than zero"),
    ("memory=0G", "memory must be more than zero"),
    ("memory=2P", "is more than the 1P a subjob may ask for"),
    (f"memory={HUGE}G", "is more than the 1P a subjob may ask for"),
    ("memory=lots", "cannot read memory 'lots'"),
    ("walltime=0", "walltime must be more than zero"),
    ("walltime=00:00:00", "walltime must be more than zero"),
    ("walltime=400-00:00:00", "is more than the year a subjob may ask for"),
    (f"walltime={HUGE}", "cannot read walltime"),
    ("walltime=\u00b2", "cannot read walltime"),
    ("num_nodes=99999999999999999999", "must be at most 1,000,000"),
    ("gpus=1000000000000", "must be at most 1,000,000"),
    ("throttle=99999999999999999999", "must be at most 1,000,000"),
])
def test_bad_values_are_usage_errors_before_any_job(project: Path, slurm: None, parameter: str, said: str) -> None:
    result = run_cli(["run", "--submitter", "slurm", "--jp", parameter, "echo", "never"], cwd=project, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert said in result.stderr and len(result.stderr) < 300, result.stderr
    listed = run_cli(["jobs", "--list", "--json"], cwd=project)
    assert listed.returncode == 0 and json.loads(listed.stdout or "[]") == [], listed.stdout
