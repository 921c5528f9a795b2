"""Secrets (issue 13, case 1): env values are private on disk everywhere and hidden when printed.

The job runs on the built-in local resource, so "on the resource" is this
machine's ``~/.reproman/run-root``; the ssh and docker variants are in
``tests/integration/test_hostile_secrets_remote.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error, mode

from reproman.jobs.registry import Registry
from reproman.paths import data_dir
from reproman.testing.cli import run_cli

SECRET = "s3cret-value-4711"


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_env_values_are_private_here_on_the_resource_and_in_the_fetched_copy(workdir: Path, umask_022: None) -> None:
    # LABEL is not named like a secret, so its value is stored (names like TOKEN are stored nowhere:
    # see test_repro_capture): where it is stored, only the user can read it.
    result = run_cli(["run", "--follow", "--keep-remote", "--jp", f"env=LABEL={SECRET}", "-o", "out.txt",
                      "sh", "-c", 'echo "$LABEL" > out.txt; mkdir made'])
    assert result.returncode == 0, result.stderr
    jobid = result.stdout.strip()
    assert (workdir / "out.txt").read_text() == f"{SECRET}\n"

    record = data_dir() / "jobs" / f"{jobid}.yaml"
    assert SECRET in record.read_text()
    assert mode(record) == 0o600 and mode(record.parent) == 0o700

    job = Registry().load(jobid)
    on_resource = Path(job.job_dir)
    assert SECRET in (on_resource / "runscript").read_text() and SECRET in (on_resource / "spec.yaml").read_text()
    assert mode(on_resource) == 0o700
    files = sorted(p.name for p in on_resource.iterdir())
    assert {"runscript", "spec.yaml", "submit", "stdout.0", "stderr.0", "status.0", "launcher.log"} <= set(files)
    assert {p.name: mode(p) for p in on_resource.iterdir()} == {
        p.name: 0o700 if p.is_dir() else 0o600 for p in on_resource.iterdir()}

    fetched = workdir / ".reproman" / "jobs" / "local" / jobid
    assert mode(fetched) == 0o700
    assert {p.name: mode(p) for p in fetched.iterdir()} == {
        p.name: 0o700 if p.is_dir() else 0o600 for p in fetched.iterdir()}
    assert SECRET in (fetched / "spec.yaml").read_text()

    # The command's own files keep the caller's umask: privacy is ReproMan's files only.
    work = Path(job.working_directory)
    assert mode(work / "out.txt") == 0o644 and mode(work / "made") == 0o755
    assert mode(workdir / "out.txt") == 0o644


def test_env_values_hidden_unless_asked(workdir: Path) -> None:
    result = run_cli(["run", "--json", "--jp", f"env=LABEL={SECRET},PLAIN=1", "true"])
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout
    jobid = json.loads(result.stdout)["jobid"]
    for argv in (["jobs", "--show", jobid], ["jobs", "--show", "--json", jobid], ["jobs", "--json"], ["jobs"]):
        shown = run_cli(argv)
        assert shown.returncode == 0, shown.stderr
        assert SECRET not in shown.stdout + shown.stderr, argv
    shown = run_cli(["jobs", "--show", jobid])
    assert "LABEL: <hidden" in shown.stdout
    revealed = run_cli(["jobs", "--show", "--show-env", jobid])
    assert f"LABEL: {SECRET}" in revealed.stdout


@pytest.mark.parametrize("show", [["--show"], ["--show", "--show-env"]], ids=["hidden", "show-env"])
def test_a_job_spec_made_from_show_is_refused_not_run_with_placeholders(workdir: Path, show: list[str]) -> None:
    # Trial I: the README's 'jobs --show > spec; run --js spec' ran the command with MODE set to the
    # placeholder text, and (with --show-env) API_TOKEN empty, without a word.
    first = run_cli(["run", "--follow", "--jp", f"env=MODE=fast,API_TOKEN={SECRET}", "-o", "m.txt",
                     "sh", "-c", 'echo "$MODE/$API_TOKEN" > m.txt'])
    assert first.returncode == 0, first.stderr
    jobid = first.stdout.splitlines()[0]
    (workdir / "js.yaml").write_text(run_cli(["jobs", *show, jobid]).stdout)
    before = sorted(p.name for p in Registry().root.iterdir())
    line = assert_one_line_error(run_cli(["run", "--js", "js.yaml"]), code=2)
    assert "API_TOKEN" in line and "placeholder" in line and "reproman rerun" in line
    assert sorted(p.name for p in Registry().root.iterdir()) == before  # nothing was submitted
    assert (workdir / "m.txt").read_text() == f"fast/{SECRET}\n"


def test_an_older_world_readable_registry_is_made_private(workdir: Path) -> None:
    jobs_dir = data_dir() / "jobs"
    jobs_dir.mkdir(parents=True)
    jobs_dir.chmod(0o755)
    assert run_cli(["run", "true"]).returncode == 0
    assert mode(jobs_dir) == 0o700


def test_env_names_cannot_inject_shell_code(workdir: Path) -> None:
    pwned = workdir / "pwned"
    result = run_cli(["run", "--follow", "--jp", f"env=A;touch {pwned};B=1", "true"])
    line = assert_one_line_error(result, code=2)
    assert "is not an environment variable name" in line
    assert not pwned.exists()
    assert not list(data_dir().glob("jobs/*.yaml"))
