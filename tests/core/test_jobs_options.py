"""Job spec merging and job parameter validation."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error

from reproman.errors import UsageError
from reproman.jobs.options import deep_merge, resolve_job_parameters
from reproman.plugins.records import SubmitterType
from reproman.testing.cli import run_cli

LOCAL = SubmitterType(name="local", description="", factory="x:y", job_parameters=("num_processes",))
SLURM = SubmitterType(name="slurm", description="", factory="x:y", job_parameters=("queue", "memory", "walltime"))


def test_deep_merge_later_wins_nested_merged() -> None:
    assert deep_merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}, "c": 4}) == {
        "a": {"x": 1, "y": 3}, "b": 1, "c": 4,
    }


def test_specs_merge_and_parameters_win(tmp_path: Path) -> None:
    first = tmp_path / "one.yaml"
    first.write_text("num_processes: 1\nenv: {A: '1', B: '2'}\nroot_directory: /r1\n")
    second = tmp_path / "two.yaml"
    second.write_text("env: {B: '3'}\nroot_directory: /r2\n")
    values = resolve_job_parameters([str(first), str(second)], ["num_processes=4"], LOCAL)
    assert values == {"num_processes": 4, "env": {"A": "1", "B": "3"}, "root_directory": "/r2"}


def test_env_from_command_line() -> None:
    assert resolve_job_parameters(None, ["env=A=1,B=x y"], LOCAL) == {"env": {"A": "1", "B": "x y"}}


def test_unknown_parameter_suggests() -> None:
    with pytest.raises(UsageError, match="unknown job parameter 'num_proceses'.*num_processes"):
        resolve_job_parameters(None, ["num_proceses=2"], LOCAL)


def test_unsupported_parameter_names_the_submitter() -> None:
    with pytest.raises(UsageError, match="'queue' is not supported by submitter 'local'"):
        resolve_job_parameters(None, ["queue=short"], LOCAL)
    assert resolve_job_parameters(None, ["queue=short", "container=img.sif"], SLURM) == {
        "queue": "short", "container": "img.sif",
    }


def test_bad_value_and_bad_spec(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="num_processes"):
        resolve_job_parameters(None, ["num_processes=many"], LOCAL)
    spec = tmp_path / "list.yaml"
    spec.write_text("- a\n")
    with pytest.raises(UsageError, match="mapping"):
        resolve_job_parameters([str(spec)], None, LOCAL)
    with pytest.raises(UsageError, match="KEY=VALUE"):
        resolve_job_parameters(None, ["novalue"], LOCAL)


# -- configured defaults, the same mechanism for every submitter (trial D) ------------------------------

def _config(home: Path, text: str) -> None:
    path = home / ".config" / "reproman" / "reproman.cfg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _nothing_created(workdir: Path) -> None:
    home = Path(os.environ["HOME"])
    assert not (home / ".reproman").exists(), list((home / ".reproman").rglob("*"))
    assert run_cli(["jobs", "--json"], cwd=workdir).stdout.strip() == "[]"


def test_local_submitter_honours_and_records_configured_defaults(workdir: Path, isolated_user: Path) -> None:
    root = workdir.parent / "configured root"
    _config(isolated_user, f"[submitter-local]\nnum_processes = 4\nroot_directory = {root}\n"
                           "[submitter-local:local]\nnum_processes = 1\n")
    result = run_cli(["run", "--follow", "--bp", "i=1,2", "-o", "log", "sh", "-c",
                      "echo start {p[i]} >> log; sleep 0.5; echo end {p[i]} >> log"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    # One at a time: each subjob ends before the next starts.
    assert [line.split()[0] for line in (workdir / "log").read_text().splitlines()] == ["start", "end"] * 2
    (job,) = json.loads(run_cli(["jobs", "--show", "--json"], cwd=workdir).stdout)
    assert job["parameters"] == {"num_processes": 1, "root_directory": str(root)}
    assert job["root_directory"] == str(root)


def test_environment_variable_default_for_the_local_submitter(workdir: Path) -> None:
    result = run_cli(["run", "true"], cwd=workdir, env={"REPROMAN_SUBMITTER_LOCAL_NUM_PROCESSES": "3"})
    assert result.returncode == 0, result.stderr
    (job,) = json.loads(run_cli(["jobs", "--show", "--json"], cwd=workdir).stdout)
    assert job["parameters"]["num_processes"] == 3


@pytest.mark.parametrize(("config", "expected"), [
    ("[submitter-local]\nnum_processes = abc\n", "[submitter-local] num_processes = 'abc': expected an integer"),
    ("[submitter-local]\nbogus = 1\n", "[submitter-local] bogus: not a job parameter the local submitter takes"),
    ("[submitter-local:local]\nnum_processes = 0\n", "[submitter-local:local] num_processes = '0': must be at least 1"),
])
def test_bad_configured_defaults_refused_before_anything_exists(workdir: Path, isolated_user: Path, config: str,
                                                                 expected: str) -> None:
    _config(isolated_user, config)
    line = assert_one_line_error(run_cli(["run", "true"], cwd=workdir), code=1)
    assert expected in line
    _nothing_created(workdir)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_bad_poll_interval_is_a_usage_error_before_submission(workdir: Path, value: str) -> None:
    marker = workdir / "ran"
    line = assert_one_line_error(run_cli(["run", "--jp", f"max_poll_interval={value}", "--follow", "touch", str(marker)],
                                         cwd=workdir), code=2)
    assert "max_poll_interval" in line
    time.sleep(0.5)
    assert not marker.exists()
    _nothing_created(workdir)
