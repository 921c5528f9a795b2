"""Job spec merging and job parameter validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from reproman.errors import UsageError
from reproman.jobs.options import deep_merge, resolve_job_parameters
from reproman.plugins.records import SubmitterType

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
