"""Numbers users type (job parameters, job specs, configuration): every bad one is one line, nothing submitted.

Zero, negative, text, NaN, infinity, and numbers no machine has (a billion
CPUs, a poll interval of 1e300 seconds that ``time.sleep`` cannot take, a
YAML integer of 400 digits that ``float()`` overflows on) are refused
before a job record or a job directory exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error

from reproman.testing.cli import run_cli

HUGE = "9" * 400


def _no_jobs(workdir: Path) -> None:
    listed = run_cli(["jobs", "--list"], cwd=workdir)
    assert listed.returncode == 0 and "echo" not in listed.stdout, listed.stdout


@pytest.mark.parametrize(("value", "said"), [
    ("0", "must be at least 1"),
    ("-3", "must be at least 1"),
    ("many", "expected an integer"),
    ("nan", "expected an integer"),
    ("2.5", "expected an integer"),
    ("1000000000", "must be at most 1,000,000"),
    (HUGE, "must be at most 1,000,000"),
])
def test_local_num_processes_is_refused_at_submission(workdir: Path, value: str, said: str) -> None:
    line = assert_one_line_error(run_cli(["run", "--jp", f"num_processes={value}", "echo", "never"], cwd=workdir),
                                 code=2)
    assert "num_processes" in line and said in line, line
    assert len(line) < 300, line
    _no_jobs(workdir)


def test_local_num_processes_in_range_still_runs(workdir: Path) -> None:
    ran = run_cli(["run", "--follow", "--jp", "num_processes=1000000", "--bp", "i=1,2", "-o", "o{p[i]}",
                   "sh", "-c", "echo {p[i]} > o{p[i]}"], cwd=workdir)
    assert ran.returncode == 0, ran.stderr
    assert (workdir / "o1").read_text() == "1\n" and (workdir / "o2").read_text() == "2\n"


@pytest.mark.parametrize(("text", "said"), [
    (f"max_poll_interval: {HUGE}\n", "expected a finite number"),
    ("max_poll_interval: 1e300\n", "must be at most 31,536,000"),
    ("max_poll_interval: .inf\n", "expected a finite number"),
    (f"num_processes: {HUGE}\n", "must be at most 1,000,000"),
])
def test_job_spec_numbers_are_one_line_naming_the_file(workdir: Path, text: str, said: str) -> None:
    spec = workdir / "spec.yaml"
    spec.write_text(text)
    line = assert_one_line_error(run_cli(["run", "--js", str(spec), "echo", "never"], cwd=workdir), code=2)
    assert f"job spec {spec}" in line and said in line, line
    assert len(line) < 300, line
    _no_jobs(workdir)


@pytest.mark.parametrize(("value", "said"), [
    ("nan", "must be a finite number of seconds"),
    ("-5", "must be a finite number of seconds"),
    (HUGE, "must be a finite number of seconds"),
    ("1e12", "must be at most 31,536,000 seconds"),
])
def test_lost_after_is_checked(workdir: Path, value: str, said: str) -> None:
    """``[jobs] lost_after`` went through a bare float(): nan and negatives became 0 (lost at once), inf never.

    The job still runs, so the status asks its resource (a fetched and freed one is shown from its record)."""
    ran = run_cli(["run", "sh", "-c", "sleep 5"], cwd=workdir)
    assert ran.returncode == 0, ran.stderr
    line = assert_one_line_error(run_cli(["jobs", "--status"], cwd=workdir,
                                         env={"REPROMAN_JOBS_LOST_AFTER": value}))
    assert "lost_after" in line and said in line, line
    assert len(line) < 300, line


def test_configured_whole_number_of_hundreds_of_digits(workdir: Path) -> None:
    """``config_number(whole=True)`` overflowed in ``float(int(...))``: a traceback."""
    line = assert_one_line_error(run_cli(["ls", "--refresh"], cwd=workdir,
                                         env={"REPROMAN_GENERAL_MAX_CONNECTIONS": HUGE}))
    assert "max_connections must be a whole number" in line and "(400 characters)" in line, line
