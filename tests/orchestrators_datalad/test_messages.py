"""Commit messages: the job's message first, and run records that DataLad's own parser accepts."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from reproman.jobs.spec import JobSpec, Subjob
from reproman_orchestrators_datalad.messages import rerun_command, run_message, save_message

# The expression ``datalad rerun`` uses to find a run record in a commit message.
DATALAD_RUNCMD = re.compile(
    r"\[DATALAD RUNCMD\] (.*)=== Do not change lines below ===\n(.*)\n\^\^\^ Do not change lines above \^\^\^",
    re.MULTILINE | re.DOTALL,
)


def job(commands: list[str], message: str | None = "my message") -> JobSpec:
    return JobSpec(
        jobid="20240101-000000-abcdef", command=commands[0], message=message, resource_name="local",
        resource_type="shell", submitter="local", orchestrator="datalad-pair-run",
        subjobs=[Subjob(command=c, inputs=[f"in{i}"], outputs=[f"out{i}"]) for i, c in enumerate(commands)],
    )


def test_save_message_leads_with_the_users_message() -> None:
    text = save_message(job(["make"]), failed=0)
    assert text.splitlines()[0] == "[ReproMan] my message"
    assert "20240101-000000-abcdef" in text and "Command: make" in text


def test_save_message_without_message_and_with_failures() -> None:
    text = save_message(job(["a", "b"], message=None), failed=1)
    assert text.splitlines()[0] == "[ReproMan] save results of job 20240101-000000-abcdef (1 of 2 subjobs failed)"


def test_run_message_parses_like_datalad() -> None:
    text = run_message(job(["awk '{print $1}' in0 > out0"]), "ds-id", exit_code=0, failed=0)
    match = DATALAD_RUNCMD.match(text)
    assert match is not None
    assert match.group(1).strip() == "my message"
    record = json.loads(match.group(2))
    # Braces doubled: datalad rerun formats {placeholders} in the command.
    assert record["cmd"] == "awk '{{print $1}}' in0 > out0"
    assert record["cmd"].replace("{{", "{").replace("}}", "}") == "awk '{print $1}' in0 > out0"
    assert record["inputs"] == ["in0"] and record["outputs"] == ["out0"]
    assert record["dsid"] == "ds-id" and record["exit"] == 0 and record["chain"] == [] and record["pwd"] == "."
    assert record["reproman_jobid"] == "20240101-000000-abcdef"


def _as_datalad_runs(recorded: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a recorded command the way ``datalad rerun`` does: placeholders expanded, through the shell."""
    return subprocess.run(recorded.format(), shell=True, cwd=cwd, capture_output=True, text=True)


def test_batch_record_runs_every_subjob_and_exits_with_the_first_failure(tmp_path: Path) -> None:
    commands = ["echo 0 > a", "echo 1 > b; exit 3", "echo 2 > c", "exit 4", "echo {4} > e"]
    recorded = rerun_command(job(commands))
    proc = _as_datalad_runs(recorded, tmp_path)
    # Every subjob ran, also those after a failure (a '&&' chain would stop after 'b')...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c", "e"]
    assert (tmp_path / "e").read_text() == "{4}\n"
    # ...and the outcome is what the record says: the first failing subjob's exit code.
    assert proc.returncode == 3
    match = DATALAD_RUNCMD.match(run_message(job(commands), "id", 3, 2))
    assert match is not None
    record = json.loads(match.group(2))
    assert record["cmd"] == recorded and record["exit"] == 3
    assert record["inputs"] == [f"in{i}" for i in range(5)] and record["outputs"] == [f"out{i}" for i in range(5)]


def test_batch_record_of_a_successful_batch_exits_zero(tmp_path: Path) -> None:
    proc = _as_datalad_runs(rerun_command(job(["echo 0 > a", "echo 1 > b"])), tmp_path)
    assert proc.returncode == 0 and (tmp_path / "b").read_text() == "1\n"


def test_single_job_record_is_the_command_itself() -> None:
    assert rerun_command(job(["make all"])) == "make all"


def test_run_message_subject_defaults_to_the_command() -> None:
    text = run_message(job(["python analysis.py --with many --arguments and more"], message=None), "id", 0, 0)
    assert text.startswith("[DATALAD RUNCMD] python analysis.py --with many --argumen...")
