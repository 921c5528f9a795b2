"""Helpers for the DataLad orchestrator tests: run a job to the end, read git."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ORCHESTRATORS = ["datalad-pair", "datalad-pair-run", "datalad-no-remote", "datalad-local-run"]

def sh(cwd: Path | str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command in ``cwd`` and return its output (tests read git and datalad through this)."""
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
    return proc


def git(cwd: Path | str, *args: str) -> str:
    return sh(cwd, "git", *args).stdout.strip()


def run_job(
    root: Path,
    orchestrator: str,
    command: str,
    *,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    message: str | None = None,
    batch: Sequence[str] | None = None,
    follow: bool = True,
    keep_remote: bool = False,
) -> Any:
    """``reproman run`` on the local shell resource, followed to the end (fetched) unless ``follow`` is off."""
    from reproman import api

    return api.run(
        command=command,
        message=message,
        orchestrator=orchestrator,
        inputs=list(inputs),
        outputs=list(outputs),
        batch_parameters=list(batch) if batch else None,
        job_parameters=[f"root_directory={root}"],
        follow=follow,
        keep_remote=keep_remote,
    )


def clean(ds: Path) -> bool:
    return git(ds, "status", "--porcelain") == ""


def subject(ds: Path, rev: str = "HEAD") -> str:
    return git(ds, "log", "-1", "--format=%s", rev)


def body(ds: Path, rev: str = "HEAD") -> str:
    return git(ds, "log", "-1", "--format=%B", rev)


def fetch_when_done(jobid: str, timeout: float = 60) -> dict[str, Any]:
    """``reproman jobs JOBID`` until the job is finished and the fetch was tried; the last row."""
    from reproman import api

    deadline = time.monotonic() + timeout
    while True:
        row = api.jobs([jobid], action="fetch")[0]
        if row.get("fetched") or "error" in row or time.monotonic() > deadline:
            return row
        time.sleep(0.3)
