"""A batch placeholder in a job parameter is refused in one line; it used to reach every subjob as written.

``--jp env=X={p[i]}`` ran each subjob with ``X`` set to the text
``{p[i]}``: job parameters are one value for the whole job, so the
placeholder cannot be substituted per subjob. The command can, and the
hint says how.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error

from reproman.testing.cli import run_cli


def _no_jobs(workdir: Path) -> None:
    listed = run_cli(["jobs", "--list"], cwd=workdir)
    assert listed.returncode == 0 and "never" not in listed.stdout, listed.stdout


@pytest.mark.parametrize("parameter", ["env=X={p[i]}", "env=A=1,X=run-{p[i]:03d}", "env=X={inputs}",
                                       "working_directory=/tmp/w{p[i]}"])
def test_jp_placeholder_is_refused(workdir: Path, parameter: str) -> None:
    result = run_cli(["run", "--bp", "i=1,2", "--jp", parameter, "sh", "-c", "echo never"], cwd=workdir)
    line = assert_one_line_error(result, code=2)
    key = parameter.partition("=")[0]
    assert f"job parameter {key!r}" in line and "would stay as written" in line, line
    assert "placeholders work only in the command" in line, line
    _no_jobs(workdir)


def test_job_spec_and_configured_placeholders_are_refused(workdir: Path) -> None:
    spec = workdir / "spec.yaml"
    spec.write_text("env:\n  X: '{p[i]}'\n")
    line = assert_one_line_error(run_cli(["run", "--bp", "i=1,2", "--js", str(spec), "echo", "never"], cwd=workdir),
                                 code=2)
    assert "job parameter 'env': {p[i]} would stay as written" in line, line
    config = workdir / "c.cfg"
    config.write_text("[submitter-local]\nenv = X={p[i]}\n")
    line = assert_one_line_error(run_cli(["-c", str(config), "run", "--bp", "i=1,2", "echo", "never"], cwd=workdir),
                                 code=1)
    assert line.startswith("reproman: error: [submitter-local] env:") and "would stay as written" in line, line
    _no_jobs(workdir)


def test_the_hinted_form_gives_each_subjob_its_value(workdir: Path) -> None:
    refused = run_cli(["run", "--bp", "i=1,2", "--jp", "env=X={p[i]}", "sh", "-c", "echo never"], cwd=workdir)
    assert "env NAME={p[KEY]} PROGRAM" in refused.stderr, refused.stderr
    ran = run_cli(["run", "--follow", "--bp", "i=1,2", "-o", "o{p[i]}", "env", "X={p[i]}", "sh", "-c",
                   'echo "$X" > o{p[i]}'], cwd=workdir)
    assert ran.returncode == 0, ran.stderr
    assert (workdir / "o1").read_text() == "1\n" and (workdir / "o2").read_text() == "2\n"
