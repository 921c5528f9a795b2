"""The CLI as users type it: argument handling, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from reproman import __version__
from reproman.testing.cli import run_cli


def test_execute_passes_exit_code_and_keeps_dash_c_for_the_command() -> None:
    result = run_cli(["execute", "sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_execute_with_resource_option_and_leading_double_dash() -> None:
    assert run_cli(["create", "box", "-t", "shell"]).returncode == 0
    result = run_cli(["execute", "-r", "box", "--", "sh", "-c", "exit 3"])
    assert result.returncode == 3
    literal = run_cli(["execute", "--resource", "box", "printf", "%s|", "-r", "$HOME", "--"])
    assert literal.stdout == "-r|$HOME|--|"


def test_global_options_before_command() -> None:
    result = run_cli(["-l", "debug", "execute", "true"])
    assert result.returncode == 0
    assert run_cli(["--version"]).stdout.strip() == f"reproman {__version__}"


def test_no_command_prints_usage() -> None:
    result = run_cli([])
    assert result.returncode == 2 and "usage: reproman" in result.stdout
    assert result.stderr == "reproman: error: no command given (see the list above)\n"


def test_errors_are_one_line_without_traceback_unless_debug() -> None:
    result = run_cli(["execute", "-r", "nope", "true"])
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("reproman: error: no resource 'nope'")
    debug = run_cli(["--debug", "execute", "-r", "nope", "true"])
    assert "Traceback" in debug.stderr and debug.returncode == 1


def test_ls_table_json_verbose() -> None:
    run_cli(["create", "one", "-t", "shell"])
    table = run_cli(["ls"])
    assert table.stdout.splitlines()[0].split() == ["NAME", "TYPE", "ID", "STATUS"]
    # The built-in local resource (the default) comes first.
    assert table.stdout.splitlines()[1].split() == ["local", "shell", "local", "ONLINE"]
    assert table.stdout.splitlines()[2].split()[0:2] == ["one", "shell"]
    rows = json.loads(run_cli(["ls", "--json"]).stdout)
    assert rows[1]["name"] == "one" and rows[1]["status"] == "ONLINE"
    refreshed = json.loads(run_cli(["ls", "--refresh", "--json", "one"]).stdout)
    assert refreshed[0]["status"] == "ONLINE"
    assert "STATUS" in run_cli(["ls", "-v"]).stdout


def test_delete_needs_confirmation() -> None:
    run_cli(["create", "victim", "-t", "shell"])
    refused = run_cli(["delete", "victim"], input="y\n")  # stdin is not a terminal: no
    assert refused.returncode == 1 and "not confirmed" in refused.stderr
    assert run_cli(["delete", "victim", "--skip-confirmation"]).returncode == 0
    assert [r["name"] for r in json.loads(run_cli(["ls", "--json"]).stdout)] == ["local"]
    again = run_cli(["delete", "-y", "victim"])
    assert again.returncode == 1 and "no resource 'victim'" in again.stderr


def test_delete_refuses_a_resource_holding_unfetched_jobs(tmp_path: Path) -> None:
    """Deleting the resource would lose the results: refused, naming the job, until fetched or forced."""
    pexpect = pytest.importorskip("pexpect")
    assert run_cli(["create", "box", "-t", "shell"]).returncode == 0
    env = {"HOME": str(tmp_path)}
    ran = run_cli(["run", "-r", "box", "-o", "out", "sh", "-c", "echo hi > out"], cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stderr
    jobid = ran.stdout.split()[0]
    refused = run_cli(["delete", "-y", "box"], env=env)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"1 job ({jobid}) on it not fetched yet" in refused.stderr and "--force" in refused.stderr
    child = pexpect.spawn(sys.executable, ["-m", "reproman", "delete", "-f", "box"], cwd=str(tmp_path),
                          env={**os.environ, **env}, encoding="utf-8", timeout=60)
    child.expect(r"lose the results of 1 job \(" + jobid + r"\)")
    child.sendline("n")
    child.expect(pexpect.EOF)
    assert "not confirmed" in (child.before or "")
    deadline = time.monotonic() + 60
    while (fetched := run_cli(["jobs", jobid], cwd=tmp_path, env=env)).returncode == 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "out").read_text() == "hi\n"
    assert run_cli(["delete", "-y", "box"], env=env).returncode == 0


def test_delete_force_loses_unfetched_jobs_on_request(tmp_path: Path) -> None:
    assert run_cli(["create", "box", "-t", "shell"]).returncode == 0
    env = {"HOME": str(tmp_path)}
    assert run_cli(["run", "-r", "box", "true"], cwd=tmp_path, env=env).returncode == 0
    assert run_cli(["delete", "-y", "-f", "box"], env=env).returncode == 0


def test_start_stop_shell_say_why_not() -> None:
    run_cli(["create", "box", "-t", "shell"])
    result = run_cli(["start", "box"])
    assert result.returncode == 1 and "cannot be started" in result.stderr


def test_internal_commands(tmp_path: Path) -> None:
    target = tmp_path / "made" / "deep"
    assert run_cli(["execute", "--internal", "mkdir", str(target)]).returncode == 0
    assert target.is_dir()
    isdir = run_cli(["execute", "--internal", "isdir", str(target)])
    assert (isdir.returncode, isdir.stdout) == (0, "true\n")
    src = tmp_path / "f.txt"
    src.write_text("data")
    assert run_cli(["execute", "--internal", "put", str(src), str(target / "g.txt")]).returncode == 0
    assert (target / "g.txt").read_text() == "data"
    assert run_cli(["execute", "--internal", "chmod", "600", str(target / "g.txt")]).returncode == 0
    assert (target / "g.txt").stat().st_mode & 0o777 == 0o600
    bad = run_cli(["execute", "--internal", "rmdir", "x"])
    assert bad.returncode == 2 and "unknown internal command" in bad.stderr


def test_backend_parameters_json() -> None:
    data = json.loads(run_cli(["backend-parameters", "--json", "shell"]).stdout)
    assert data == {"shell": []}


def test_login_is_an_interactive_pty(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-m", "reproman", "login", "local"], env={
        **__import__("os").environ, "SHELL": "/bin/sh", "PS1": "rm$ "}, encoding="utf-8", timeout=20)
    child.expect_exact("rm$ ")
    child.sendline("[ -t 0 ] && echo tty-yes; echo $((6*7))")
    child.expect_exact("tty-yes")
    child.expect_exact("42")
    child.sendline("exit 5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5


def test_command_list_matches_the_parser() -> None:
    """The CLI builds only the running command's options; the list it picks from must be complete."""
    import argparse

    from reproman.cli.parser import COMMANDS, build_parser

    full = build_parser()
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert tuple(sub.choices) == COMMANDS
    help_text = run_cli(["--help"]).stdout
    assert all(name in help_text for name in COMMANDS)


def test_start_up_imports_stay_light(tmp_path: Path) -> None:
    """``--help`` and ``ls`` import neither the YAML library, logging, typing nor any plugin SDK."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from reproman.cli.main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('ruamel.yaml', 'logging', 'typing', 'rich', 'attrs', 'pluggy', 'docker', 'boto3',"
        " 'fabric', 'paramiko', 'datalad', 'configparser') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
    )
    for argv in (["--help"], ["ls"], ["ls", "--json"]):
        proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60)
        assert "HEAVY=\n" in proc.stderr, (argv, proc.stderr)


def test_log_level_still_applies_to_modules_imported_later(tmp_path: Path) -> None:
    """Logging is configured lazily (on its first import), yet -l debug shows library messages."""
    result = run_cli(["-l", "debug", "retrace", "/bin/sh"])
    assert result.returncode == 0, result.stderr
    assert "reproman: DEBUG:" in result.stderr
    bad = run_cli(["-l", "loud", "ls"])
    assert bad.returncode != 0 and "unknown log level" in bad.stderr


def test_status_table_keeps_long_errors_out_of_the_outcome_column(tmp_path: Path) -> None:
    """A resource deleted under its jobs: the table stays narrow; the full reason is printed once below it."""
    env = {"HOME": str(tmp_path)}
    for i in range(12):
        assert run_cli(["create", f"a-rather-long-resource-name-{i}", "-t", "shell"]).returncode == 0
    assert run_cli(["create", "box", "-t", "shell"]).returncode == 0
    jobids = [run_cli(["run", "-r", "box", "true"], cwd=tmp_path, env=env).stdout.split()[0] for _ in range(2)]
    assert run_cli(["delete", "-y", "-f", "box"], env=env).returncode == 0
    listed = run_cli(["jobs", "--status"], cwd=tmp_path, env=env)
    assert listed.returncode == 1, listed.stderr  # --status could not say those jobs' states
    assert max(len(line) for line in listed.stdout.splitlines()) < 140, listed.stdout
    assert all(j in listed.stdout for j in jobids)
    (warning,) = [line for line in listed.stderr.splitlines() if "no resource 'box'" in line]
    assert warning.startswith("reproman: error: 2 jobs: cannot query resource 'box'")
    assert "rather-long-resource-name-11" in warning
    listed = run_cli(["jobs"], cwd=tmp_path, env=env)  # a listing from the records asks nothing: no error
    assert listed.returncode == 0, listed.stderr
