"""Fake PBS (Pro and Torque), HTCondor and LSF commands first on ``PATH``, for schedulers a test machine lacks.

The tools are :mod:`reproman.testing.fakesched`: NOT schedulers, but
stand-ins that check every directive and answer the status commands the
way each vendor documents (see that module for what they model). Tests that
use them must say so: they show that a submitter speaks the documented
command-line dialect, not that it works on a live cluster.

In a plugin's ``conftest.py``::

    from reproman.testing.fake_schedulers import fake_scheduler  # noqa: F401 (a fixture)

A test asking for ``fake_scheduler`` gets the fake tools first on ``PATH``
and the directory where they keep their state (see :func:`fake_calls` and
:func:`fake_options` to read it). ``FAKE_PBS_FLAVOR=torque`` makes ``qsub``
and ``qstat`` answer as Torque; ``FAKE_SCHED_HOLD=1`` keeps new jobs queued.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

#: The fake program; each tool is a two-line wrapper that runs it with the tool's name.
FAKESCHED = Path(__file__).with_name("fakesched.py")
#: Scheduler commands the fake answers for.
FAKE_TOOLS = ("qsub", "qstat", "qdel", "qselect", "condor_submit", "condor_q", "condor_history", "condor_rm",
              "bsub", "bjobs", "bkill", "bparams")


def install_fake_tools(bindir: Path, state: Path) -> dict[str, str]:
    """Write the tool wrappers into ``bindir``; the environment variables that put them to use.

    ``state`` is where the fake records jobs and every call (``calls.log``).
    """
    bindir.mkdir(parents=True, exist_ok=True)
    for tool in FAKE_TOOLS:
        wrapper = bindir / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKESCHED}" {tool} "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return {"PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "FAKE_SCHED_STATE": str(state)}


def stop_fake_jobs(state: Path) -> None:
    """Stop what the fake started under ``state``, by the process groups it recorded, and nothing else."""
    for record in state.glob("[0-9]*.json"):
        if record.name.endswith(".options.json"):
            continue
        pid = json.loads(record.read_text()).get("runner")
        if pid:
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def fake_scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Fake qsub/qstat/qdel, condor_*, bsub/bjobs/bkill first on PATH; yields their state directory."""
    state = tmp_path / "fake-state"
    env: Mapping[str, str] = install_fake_tools(tmp_path / "fake-bin", state)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield state
    stop_fake_jobs(state)


def fake_calls(state: Path, tool: str) -> list[list[str]]:
    """The argument lists ``tool`` was called with, oldest first."""
    log = state / "calls.log"
    if not log.exists():
        return []
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return [c[1:] for c in calls if c[0] == tool]


def fake_options(state: Path, submission_id: str) -> dict[str, Any]:
    """What the fake parsed from the script and command line of one submission."""
    number = re.match(r"^(\d+)", submission_id)
    assert number is not None, f"not a fake scheduler id: {submission_id!r}"
    data: dict[str, Any] = json.loads((state / f"{number.group(1)}.options.json").read_text())
    return data
