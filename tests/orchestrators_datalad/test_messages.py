"""Commit messages: the job's message first, and run records that DataLad's own parser accepts."""

from __future__ import annotations

import json
import re

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


def test_batch_record_chains_every_subjob() -> None:
    assert rerun_command(job(["echo 1 > a", "echo 2 > b"])) == "sh -c 'echo 1 > a' && sh -c 'echo 2 > b'"
    match = DATALAD_RUNCMD.match(run_message(job(["x", "y"]), "id", 3, 1))
    assert match is not None
    record = json.loads(match.group(2))
    assert record["inputs"] == ["in0", "in1"] and record["outputs"] == ["out0", "out1"] and record["exit"] == 3


def test_run_message_subject_defaults_to_the_command() -> None:
    text = run_message(job(["python analysis.py --with many --arguments and more"], message=None), "id", 0, 0)
    assert text.startswith("[DATALAD RUNCMD] python analysis.py --with many --argumen...")
