"""The CI helper and the benchmark stay runnable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ci_sshd_script_is_idempotent_when_sshd_is_present() -> None:
    from reproman_backend_ssh.testing import find_sshd

    script = ROOT / "tools" / "ci" / "sshd.sh"
    subprocess.run(["sh", "-n", str(script)], check=True)
    if find_sshd() is None:
        pytest.skip("sshd absent: running the script would install packages")
    for _ in range(2):
        result = subprocess.run(["sh", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "ready" in result.stderr


def test_benchmark_runs_small(sshd: object) -> None:
    """A tiny run of benchmarks/ssh_session.py: it must work standalone."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ssh_session.py"), "--commands", "3", "--files", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "execute_command" in result.stdout and "per-file SFTP get" in result.stdout


def test_fetch_and_persistent_benchmarks_run_small(sshd: object) -> None:
    """Tiny runs of benchmarks/ssh_fetch.py and ssh_persistent.py: they must work standalone."""
    fetch = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ssh_fetch.py"), "--counts", "20"],
                           capture_output=True, text=True, timeout=300)
    assert fetch.returncode == 0, fetch.stderr
    assert "get_many, through the session host" in fetch.stdout and "yardstick" in fetch.stdout
    import shutil

    if shutil.which("ssh") is None:
        pytest.skip("no OpenSSH client to compare with")
    timing = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ssh_persistent.py"), "--runs", "1"],
                            capture_output=True, text=True, timeout=300)
    assert timing.returncode == 0, timing.stderr
    assert "A/B =" in timing.stdout and "ControlMaster" in timing.stdout
