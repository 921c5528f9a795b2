"""Directive values cannot break out of their line of the submission script (issue 13, case 3).

Each submitter renders the script from job parameters; a value with a
newline would put the rest of it on a line of its own, which the batch
shell then runs. Every submitter refuses it before writing anything. The
Slurm case also goes through ``reproman run`` against the real Slurm.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from reproman.errors import SubmissionError
from reproman.jobs.spec import JobSpec, Subjob, new_jobid
from reproman.resources.shell import ShellSession
from reproman.testing.cli import run_cli
from reproman_submitters.common import check_directive_values
from reproman_submitters.condor import CondorSubmitter
from reproman_submitters.lsf import LSFSubmitter
from reproman_submitters.pbs import PBSSubmitter
from reproman_submitters.sge import SGESubmitter
from reproman_submitters.slurm import SlurmSubmitter

SUBMITTERS = [SlurmSubmitter, PBSSubmitter, CondorSubmitter, LSFSubmitter, SGESubmitter]
INJECTION = 'debug"\ntouch /tmp/pwned\n#SBATCH --comment="x'


def _job(submitter: Any, parameters: dict[str, Any], root: str = "/tmp/run root") -> JobSpec:
    jobid = new_jobid()
    return JobSpec(
        jobid=jobid, command="true", resource_name="local", resource_type="shell", submitter=submitter.name,
        orchestrator="plain", parameters=parameters, subjobs=[Subjob(command="true")], root_directory=root,
        working_directory=f"{root}/w", job_dir=f"{root}/.reproman/jobs/local/{jobid}",
    )


def _supported(cls: Any) -> str:
    return "account" if "queue" not in cls.supported else "queue"


@pytest.mark.parametrize("cls", SUBMITTERS, ids=lambda c: c.name)
@pytest.mark.parametrize("value", [INJECTION, "a\rb", "tab\there", "esc\x1b[2J", "nul\x00", "sep\u2028x"])
def test_control_characters_refused_by_every_submitter(cls: Any, value: str) -> None:
    sub = cls(ShellSession())
    key = _supported(cls)
    with pytest.raises(SubmissionError, match="newline or another control character"):
        sub.submission_script(_job(sub, {key: value}))


@pytest.mark.parametrize("cls", SUBMITTERS, ids=lambda c: c.name)
def test_pass_through_directive_and_job_directory_checked(cls: Any) -> None:
    sub = cls(ShellSession())
    good, bad = ("a = 1", "b = 2\necho pwned") if cls is CondorSubmitter else ("--x=1", "--exclusive\necho pwned")
    with pytest.raises(SubmissionError, match="control character"):
        sub.submission_script(_job(sub, {"directives": [good, bad]}))
    with pytest.raises(SubmissionError, match="job directory .* control character"):
        sub.submission_script(_job(sub, {}, root="/tmp/a\ntouch /tmp/pwned"))
    with pytest.raises(SubmissionError, match=f"is not a {cls.name} directive"):
        sub.submission_script(_job(sub, {"directives": ["touch /tmp/pwned"]}))


# Grid Engine's qsub, checked on the real one here: "a#b" reads as a, "a'b" and 'a"b' as ab, a\b is refused.
@pytest.mark.parametrize(("cls", "char"), [(PBSSubmitter, '"'), (LSFSubmitter, '"'), (CondorSubmitter, "$"),
                                           (SGESubmitter, '"'), (SGESubmitter, "'"), (SGESubmitter, "#"),
                                           (SGESubmitter, "\\")],
                         ids=["pbs", "lsf", "condor", "sge", "sge-quote", "sge-hash", "sge-backslash"])
def test_per_scheduler_characters(cls: Any, char: str) -> None:
    sub = cls(ShellSession())
    with pytest.raises(SubmissionError, match=f"cannot contain {re.escape(repr(char))}"):
        sub.submission_script(_job(sub, {"account": f"lab{char}42"}))


def test_condor_directives_are_submit_commands_not_queue_statements() -> None:
    sub = CondorSubmitter(ShellSession())
    script = sub.submission_script(_job(sub, {"directives": ['requirements = (OpSys == "LINUX")', "+Project = x"]}))
    assert 'requirements = (OpSys == "LINUX")\n' in script and "+Project = x\n" in script
    with pytest.raises(SubmissionError, match="not a condor directive"):
        sub.submission_script(_job(sub, {"directives": ["queue 1000"]}))


def test_ordinary_values_still_render() -> None:
    sub = SlurmSubmitter(ShellSession())
    script = sub.submission_script(_job(sub, {"queue": "debug", "account": "lab 42#x", "directives": ["--exclusive"]}))
    assert '#SBATCH --account="lab 42#x"\n' in script and "#SBATCH --partition=debug\n" in script
    check_directive_values("x", {"queue": "q", "num_nodes": 3, "launcher": True, "directives": []})


def test_slurm_run_with_injected_queue_is_refused_before_anything_is_written(
    slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    pwned = tmp_path / "pwned"
    value = f'debug"\ntouch {pwned}\n#SBATCH --comment="x'
    result = run_cli(["run", "--submitter", "slurm", "--jp", f"queue={value}", "true"])
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "control character" in result.stderr
    assert "Traceback" not in result.stderr
    listing = run_cli(["jobs", "--json"])
    assert json.loads(listing.stdout) == []  # no record left behind
    assert not list(home.glob(".reproman/run-root/.reproman/jobs/local/*/submit.slurm"))
    assert not pwned.exists()
