"""What every hostile-input test checks: a clean one-line failure, and nothing changed."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int | None = None) -> str:
    """The command failed with exactly one line on stderr and no traceback; returns that line."""
    assert result.returncode != 0, f"expected a failure, got exit 0: {result.stdout!r}"
    if code is not None:
        assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), repr(result.stderr)
    assert result.stderr.startswith("reproman"), result.stderr
    return result.stderr.strip()


def checksums(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (lock files aside: locking creates them)."""
    sums: dict[str, str] = {}
    for root in roots:
        if root.is_file():
            sums[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
            continue
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = Path(dirpath, name)
                if name.endswith(".lock") or path.is_symlink():
                    continue
                sums[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)
