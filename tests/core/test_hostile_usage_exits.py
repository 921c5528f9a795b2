"""Missing or contradictory arguments are usage errors: one line, exit 2, and nothing done.

Found by a survey of ``reproman CMD`` with arguments that do not go
together: ``jobs --delete --all JOB`` deleted every job (``--all`` won
over the job named), ``jobs --status --delete JOB`` deleted although
``--status`` never acts, ``--overwrite`` or ``--keep-remote`` went
unheard by a listing or a delete, ``run --list WORD`` listed everything and
ignored the command ``WORD`` became, ``execute --trace --internal``
dropped ``--trace``, ``execute --internal chmod 9`` was a traceback, and ``-l nonsense``
and an unknown submitter, orchestrator or resource type (argparse's
"invalid choice" in all but name) exited 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error

from reproman.testing.cli import run_cli


def _jobids(workdir: Path) -> list[str]:
    listed = run_cli(["jobs", "--list", "--json"], cwd=workdir)
    assert listed.returncode == 0, listed.stderr
    return [row["jobid"] for row in json.loads(listed.stdout)]


@pytest.fixture
def two_jobs(workdir: Path) -> list[str]:
    for _ in range(2):
        ran = run_cli(["run", "--follow", "--keep-remote", "true"], cwd=workdir)
        assert ran.returncode == 0, ran.stderr
    jobids = _jobids(workdir)
    assert len(jobids) == 2
    return jobids


@pytest.mark.parametrize("action", ["--delete", "--cancel", "--fetch", "--show"])
def test_all_with_a_job_id_is_refused_and_touches_nothing(workdir: Path, two_jobs: list[str], action: str) -> None:
    line = assert_one_line_error(run_cli(["jobs", action, "--all", two_jobs[0]], cwd=workdir), code=2)
    assert "give job IDs or --all, not both" in line, line
    assert _jobids(workdir) == two_jobs


@pytest.mark.parametrize("action", ["--delete", "--fetch", "--cancel"])
def test_status_with_an_acting_action_is_refused(workdir: Path, two_jobs: list[str], action: str) -> None:
    line = assert_one_line_error(run_cli(["jobs", "--status", action, two_jobs[0]], cwd=workdir), code=2)
    assert "--status goes with listing" in line, line
    assert _jobids(workdir) == two_jobs
    shown = run_cli(["jobs", "--status", "--show", two_jobs[0]], cwd=workdir)
    assert shown.returncode == 0, shown.stderr


@pytest.mark.parametrize(("extra", "said"), [
    (["--overwrite"], "--overwrite goes with fetching (JOB, --fetch, --follow), not with --list"),
    (["--keep-remote", "--list"], "--keep-remote goes with fetching (JOB, --fetch, --follow) and --delete"),
    (["--overwrite", "--show", "FIRST"], "--overwrite goes with fetching (JOB, --fetch, --follow), not with --show"),
    (["--overwrite", "--delete", "FIRST"], "not with --delete"),
    (["--keep-remote", "--cancel", "FIRST"], "not with --cancel"),
])
def test_fetch_options_without_a_fetch_are_refused(workdir: Path, two_jobs: list[str], extra: list[str],
                                                   said: str) -> None:
    """``jobs --overwrite`` listed and overwrote nothing, ``--delete --overwrite`` deleted: the option went unheard."""
    argv = ["jobs", *[two_jobs[0] if word == "FIRST" else word for word in extra]]
    line = assert_one_line_error(run_cli(argv, cwd=workdir), code=2)
    assert said in line, line
    assert _jobids(workdir) == two_jobs


@pytest.mark.parametrize(("argv", "said"), [
    (["run", "--list", "bogus"], "--list runs no command; 'bogus' is neither"),
    (["run", "--list", "--", "touch", "ran"], "--list runs no command"),
    (["-l", "nonsense", "ls"], "unknown log level 'nonsense'"),
    (["execute", "--trace", "--internal", "mkdir", "made"], "--trace traces commands, not --internal operations"),
    (["execute", "--internal", "chmod", "9", "f"], "mode '9' is not an octal mode"),
    (["execute", "--internal", "chmod", "77777", "f"], "mode '77777' is not an octal mode"),
    (["run", "--submitter", "nosuch", "touch", "ran"], "Unknown submitter 'nosuch'. Available:"),
    (["run", "--orchestrator", "nosuch", "touch", "ran"], "Unknown orchestrator 'nosuch'. Available:"),
    (["create", "made", "-t", "nosuch"], "Unknown resource type 'nosuch'. Available:"),
    (["backend-parameters", "nosuch"], "Unknown resource type 'nosuch'. Available:"),
])
def test_usage_errors_exit_2(workdir: Path, argv: list[str], said: str) -> None:
    (workdir / "f").write_text("data\n")
    before = (workdir / "f").stat().st_mode
    line = assert_one_line_error(run_cli(argv, cwd=workdir), code=2)
    assert said in line, line
    assert not (workdir / "ran").exists() and not (workdir / "made").exists()
    assert (workdir / "f").stat().st_mode == before


def test_octal_and_symbolic_chmod_still_work(workdir: Path) -> None:
    target = workdir / "f"
    target.write_text("data\n")
    assert run_cli(["execute", "--internal", "chmod", "600", str(target)], cwd=workdir).returncode == 0
    assert target.stat().st_mode & 0o777 == 0o600
    assert run_cli(["execute", "--internal", "chmod", "u+x", str(target)], cwd=workdir).returncode == 0
    assert target.stat().st_mode & 0o777 == 0o700
