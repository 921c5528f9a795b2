"""Hand-written job spec files (``--js FILE``): every malformed one is one line naming the file and the key.

Found by new users: a parameter set twice (at the top level and under
``job_parameters``) silently lost one value, a ``batch`` with the same
record twice ran two subjobs that overwrite each other's outputs, a list
where text belongs became ``"['x']"``, ``1:`` or ``null:`` as a key was a
traceback, and an unknown parameter's message did not say which file held it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error

from reproman.testing.cli import run_cli

CASES = [
    ("job_parameters:\n  num_processes: 2\nnum_processes: 3\n",
     "num_processes is given both at the top level and under job_parameters"),
    ("batch:\n  - i: 1\n  - i: '1'\n", "batch: records 1 and 2 are the same (i=1)"),
    ("batch:\n  - i: [1]\n", "batch, record 1, i: values must be text or numbers, got a list"),
    ("batch: []\n", "batch has no records"),
    ("batch_parameters: {i: []}\n", "batch_parameters: i has no values"),
    ("batch_parameters: {i: [[1]]}\n", "batch_parameters: i: values must be text or numbers, got a list"),
    ("batch_parameters: {i: [1, null]}\n", "batch_parameters: i: no value"),
    ("command: [sh, -c, null]\n", "command must be shell code or a list of words"),
    ("command: [sh, -c, [x]]\n", "command must be shell code or a list of words"),
    ("orchestrator: {a: 1}\n", "orchestrator must be text, got a mapping"),
    ("submitter: [slurm]\n", "submitter must be text, got a list"),
    ("resource: [x]\n", "resource must be text, got a list"),
    ("message: {a: 1}\n", "message must be text, got a mapping"),
    ("message: true\n", "message must be text, got a boolean"),
    ("1: 2\n", "1 is not a parameter name"),
    ("null: 2\n", "None is not a parameter name"),
    ("job_parameters: {7: x}\n", "7 is not a parameter name"),
    ("num_proceses: 2\n", "unknown job parameter 'num_proceses'. Did you mean 'num_processes'?"),
    ("comand: echo hi\n", "unknown job parameter 'comand'. Did you mean 'command'?"),
    ("ouputs: [out]\n", "unknown job parameter 'ouputs'. Did you mean 'outputs'?"),
    ("job_parameters: {queue: short}\n", "job parameter 'queue' is not supported by submitter 'local'"),
    ("num_processes: 2\nnum_processes: 3\n", 'found duplicate key "num_processes"'),
]


@pytest.mark.parametrize(("text", "said"), CASES, ids=[c[1][:40] for c in CASES])
def test_malformed_job_spec_is_one_line_naming_the_file(workdir: Path, text: str, said: str) -> None:
    spec = workdir / "spec.yaml"
    spec.write_text(text)
    result = run_cli(["run", "--js", str(spec), "echo", "never"], cwd=workdir)
    line = assert_one_line_error(result)
    assert str(spec) in line and said in line, line
    listed = run_cli(["jobs", "--list", "--json"], cwd=workdir)
    assert json.loads(listed.stdout or "[]") == [], listed.stdout


def test_usage_errors_in_job_specs_exit_2(workdir: Path) -> None:
    spec = workdir / "spec.yaml"
    spec.write_text("num_proceses: 2\n")
    assert_one_line_error(run_cli(["run", "--js", str(spec), "echo", "never"], cwd=workdir), code=2)


def test_a_parameter_overridden_on_the_command_line_is_not_blamed_on_the_file(workdir: Path) -> None:
    spec = workdir / "spec.yaml"
    spec.write_text("num_processes: 2\n")
    line = assert_one_line_error(run_cli(["run", "--js", str(spec), "--jp", "num_processes=0", "echo", "never"],
                                         cwd=workdir), code=2)
    assert str(spec) not in line and "job parameter 'num_processes': must be at least 1" in line, line


def test_an_edited_record_with_repeated_subjobs_is_refused(workdir: Path) -> None:
    ran = run_cli(["run", "--follow", "--bp", "i=1,2", "-o", "o{p[i]}", "sh", "-c", "echo {p[i]} > o{p[i]}"],
                  cwd=workdir)
    assert ran.returncode == 0, ran.stderr
    jobid = ran.stdout.split()[0]
    (record,) = json.loads(run_cli(["jobs", "--show", "--json", jobid], cwd=workdir).stdout)
    record["subjobs"][1]["p"] = dict(record["subjobs"][0]["p"])
    spec = workdir / "record.json"
    spec.write_text(json.dumps([record]))
    before = {p.name: p.read_text() for p in workdir.glob("o*")}
    line = assert_one_line_error(run_cli(["run", "--js", str(spec)], cwd=workdir), code=2)
    assert f"job spec {spec}: subjobs: records 1 and 2 are the same" in line, line
    assert {p.name: p.read_text() for p in workdir.glob("o*")} == before
    listed = json.loads(run_cli(["jobs", "--list", "--json"], cwd=workdir).stdout)
    assert [j["jobid"] for j in listed] == [jobid]
