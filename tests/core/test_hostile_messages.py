"""Smaller findings of trial D: messages a CLI user can act on, in one line, in CLI words."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error

from reproman.resources.inventory import Inventory, inventory_path
from reproman.testing.cli import run_cli


def test_empty_resource_name_in_cli_words() -> None:
    line = assert_one_line_error(run_cli(["execute", "-r", "", "true"]), code=2)
    assert "the resource name is empty" in line and "got str" not in line


def test_config_parse_error_is_one_readable_line(tmp_path: Path) -> None:
    config = tmp_path / "c1.cfg"
    config.write_text("[general\nx = 1\n")
    line = assert_one_line_error(run_cli(["-c", str(config), "ls"]), code=1)
    assert "\\n" not in line and f"cannot parse config file {config}:1" in line


def test_a_record_without_type_points_to_force() -> None:
    assert run_cli(["create", "box", "-t", "shell"]).returncode == 0
    with Inventory().edit() as records:
        del records["box"]["type"]
    line = assert_one_line_error(run_cli(["delete", "-y", "box"]), code=1)
    assert "has no type" in line and "delete -f" in line and "'None'" not in line
    assert run_cli(["delete", "-y", "-f", "box"]).returncode == 0
    assert "box" not in Inventory(inventory_path()).load()


def test_not_confirmed_names_the_option_not_the_api_argument() -> None:
    run_cli(["create", "box", "-t", "shell"])
    line = assert_one_line_error(run_cli(["delete", "box"]), code=1)
    assert "-y" in line and "skip_confirmation" not in line


def test_empty_output_and_huge_input_paths(workdir: Path) -> None:
    line = assert_one_line_error(run_cli(["run", "-o", "", "true"], cwd=workdir), code=2)
    assert "output path is empty" in line
    huge = "x" * 5000
    line = assert_one_line_error(run_cli(["run", "-i", huge, "true"], cwd=workdir))
    assert len(line) < 400 and "..." in line


def test_fetching_a_job_whose_directory_is_gone_names_it_once(workdir: Path) -> None:
    ran = run_cli(["run", "true"], cwd=workdir)
    jobid = ran.stdout.split()[0]
    deadline = time.monotonic() + 30
    while "succeeded" not in run_cli(["jobs", "--status", jobid], cwd=workdir).stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    (job,) = json.loads(run_cli(["jobs", "--show", "--json", jobid], cwd=workdir).stdout)
    shutil.rmtree(job["job_dir"])
    line = assert_one_line_error(run_cli(["jobs", jobid], cwd=workdir), code=1)
    assert line.startswith(f"reproman: error: job {jobid}: its directory"), line
    assert f"job {jobid}: job {jobid}" not in line
    assert "--delete" in line


def test_batch_records_with_different_keys_name_the_record(workdir: Path) -> None:
    (workdir / "spec.yaml").write_text("- {a: 1}\n- {b: 2}\n")
    line = assert_one_line_error(run_cli(["run", "--batch-spec", "spec.yaml", "echo", "{p[a]}"], cwd=workdir), code=2)
    assert "batch record 2 of 2: {p[a]} in '{p[a]}': no batch parameter 'a'; known: b" in line


def test_interrupted_follow_still_prints_the_job_id(workdir: Path) -> None:
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "reproman", "run", "--follow", "sleep", "30"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not json.loads(run_cli(["jobs", "--json"], cwd=workdir).stdout or "[]"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.5)  # the first poll has reported the job to the display
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    (job,) = json.loads(run_cli(["jobs", "--json"], cwd=workdir).stdout)
    assert proc.returncode == 130, err
    assert out.strip() == job["jobid"] and "keeps running" in err
    run_cli(["jobs", "--cancel", job["jobid"]], cwd=workdir)


@pytest.mark.parametrize("argv", [
    ["retrace", "/nonexistent"],
    ["retrace", "/bin/sh", "/nonexistent", "-o", "env.yml"],
    ["retrace", "./typo.txt"],
    ["retrace", "-r", "local", "/nonexistent"],
])
def test_retrace_of_a_missing_path_fails_with_one_line(workdir: Path, argv: list[str]) -> None:
    """Re-trial: `reproman retrace /nonexistent` exited 0 with a spec listing the typo under files:."""
    before = sorted(p.name for p in workdir.iterdir())
    result = run_cli(argv)
    line = assert_one_line_error(result, code=1)
    missing = next(a for a in argv if a in ("/nonexistent", "./typo.txt"))
    assert line.startswith("reproman: error: no such file or directory on ") and line.endswith(
        f": {missing}. Check the path(s); nothing was written."), line
    assert result.stdout == "" and sorted(p.name for p in workdir.iterdir()) == before


def test_other_commands_given_missing_paths_fail_with_one_line(workdir: Path) -> None:
    for argv in (["diff", "/nonexistent", "/nonexistent2"], ["install", "local", "/nonexistent"],
                 ["retrace", "--spec", "/nonexistent"], ["run", "-i", "nothere.txt", "true"]):
        line = assert_one_line_error(run_cli(argv))
        assert "nonexistent" in line or "nothere.txt" in line, (argv, line)


@pytest.mark.parametrize("key, value", [("RETRY_FOR", "nan"), ("RETRY_FOR", "inf"), ("MAX_POLL_INTERVAL", "nan"),
                                        ("MAX_POLL_INTERVAL", "0")])
def test_a_duration_in_the_config_that_is_no_duration_is_one_line(tmp_path: Path, key: str, value: str) -> None:
    # float() takes "nan" and "inf": without a finiteness check a follow would sleep NaN
    # (a traceback) or retry an unreachable resource forever.
    result = run_cli(["run", "--follow", "true"], cwd=tmp_path, env={f"REPROMAN_JOBS_{key}": value})
    line = assert_one_line_error(result)
    assert f"[jobs] {key.lower()}" in line and "finite number of seconds" in line


def test_an_empty_file_argument_is_named_in_cli_words(workdir: Path) -> None:
    line = assert_one_line_error(run_cli(["diff", "a.yml", ""]), code=2)
    assert "is empty" in line and "got str" not in line


def test_run_follow_that_fails_after_submitting_still_prints_the_job_id(workdir: Path) -> None:
    """Trial K: with stdout captured, a follow or fetch that failed left scripts without the job's ID."""
    (workdir / "out").mkdir()  # a directory where the job makes a file: the fetch is refused
    result = run_cli(["run", "--follow", "-o", "out", "sh", "-c", "echo x > out"], cwd=workdir)
    assert result.returncode != 0
    assert "out is a directory here" in result.stderr
    (jobid,) = result.stdout.split()
    assert run_cli(["jobs", "--show", jobid], cwd=workdir).returncode == 0
