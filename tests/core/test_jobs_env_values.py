"""``env`` values as users give them: commas and backslashes, job specs plus ``--jp``, reruns that change one.

Every job runs on the built-in local resource and the command itself writes
what it saw, so "reaches the command byte-exact" is checked where it matters.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error

from reproman import api
from reproman.jobs.batch import parse_batch_parameters
from reproman.jobs.registry import Registry
from reproman.jobs.secrets import REDACTED
from reproman.paths import data_dir
from reproman.plugins.records import Parameter
from reproman.testing.cli import run_cli

#: A value with everything a splitter or a shell could get wrong: commas, backslashes (one ending it),
#: quotes, a dollar, a semicolon, backquotes, spaces at both ends.
VALUE = " a,b\\c 'q' \"d\" $HOME;`id`, end\\"
#: ``VALUE`` as written after ``env=NAME=`` on the command line.
ESCAPED = VALUE.replace("\\", "\\\\").replace(",", "\\,")
SECRET = "s3cret,with\\comma"
SECRET_ESCAPED = SECRET.replace("\\", "\\\\").replace(",", "\\,")
SHOW = 'printf "%s|%s|%s" "$MODE" "$API_TOKEN" "$B" > out.txt'


def _jobid(result: object) -> str:
    return result.job.jobid  # type: ignore[attr-defined]


def _ran(result: object) -> str:
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    return str(result.stdout.split()[0])  # type: ignore[attr-defined]


def test_escaped_commas_and_backslashes_reach_the_command_exactly(workdir: Path) -> None:
    # PLAIN travels in the runscript, API_TOKEN (named like a credential) through the private secrets file.
    result = run_cli(["run", "--follow", "--jp", f"env=PLAIN={ESCAPED},API_TOKEN={ESCAPED},NEXT=2", "-o", "out.txt",
                      "sh", "-c", 'printf "%s|%s|%s" "$PLAIN" "$API_TOKEN" "$NEXT" > out.txt'])
    jobid = _ran(result)
    assert (workdir / "out.txt").read_text() == f"{VALUE}|{VALUE}|2"
    env = Registry().load(jobid).parameters["env"]
    assert env == {"PLAIN": VALUE, "API_TOKEN": REDACTED, "NEXT": "2"}


@pytest.mark.parametrize("given", [
    ["env=A=" + ESCAPED],             # the CLI's form, from Python
    {"env": "A=" + ESCAPED},          # a mapping whose env is text: same escapes
    {"env": {"A": VALUE}},            # a mapping of variables: values as they are, nothing unescaped
    {"env": ["A=" + VALUE]},          # a list of KEY=VALUE items: as they are
], ids=["strings", "text", "mapping", "list"])
def test_api_string_forms_unescape_and_mapping_forms_do_not(workdir: Path, given: object) -> None:
    result = api.run(command=["sh", "-c", 'printf "%s" "$A" > out.txt'], outputs=["out.txt"], follow=True,
                     job_parameters=given)  # type: ignore[arg-type]
    assert result.ok  # type: ignore[union-attr]
    assert (workdir / "out.txt").read_text() == VALUE


def test_env_given_twice_on_the_command_line_sets_both(workdir: Path) -> None:
    _ran(run_cli(["run", "--follow", "--jp", "env=MODE=fast", "--jp", "env=B=2", "-o", "out.txt",
                  "sh", "-c", SHOW]))
    assert (workdir / "out.txt").read_text() == "fast||2"


def test_command_line_env_is_merged_over_a_job_spec_s(workdir: Path) -> None:
    (workdir / "spec.yaml").write_text(
        f"command: {json.dumps(['sh', '-c', SHOW])}\noutputs: [out.txt]\n"
        f"env: {{MODE: fast, API_TOKEN: {json.dumps(SECRET)}, B: '1'}}\n")
    jobid = _ran(run_cli(["run", "--follow", "--js", "spec.yaml", "--jp", "env=B=2"]))
    # Before: the command line's env replaced the spec's whole mapping, so MODE and the token were dropped.
    assert (workdir / "out.txt").read_text() == f"fast|{SECRET}|2"
    assert Registry().load(jobid).parameters["env"] == {"MODE": "fast", "API_TOKEN": REDACTED, "B": "2"}
    assert SECRET not in (data_dir() / "jobs" / f"{jobid}.yaml").read_text()


@pytest.mark.parametrize("given", [["env=B=2"], {"env": "B=2"}, {"env": {"B": "2"}}], ids=["strings", "text", "mapping"])
def test_api_job_specs_and_job_parameters_merge_env_the_same_way(workdir: Path, given: object) -> None:
    (workdir / "spec.yaml").write_text(f"env: {{MODE: fast, API_TOKEN: {json.dumps(SECRET)}}}\n")
    result = api.run(command=["sh", "-c", SHOW], outputs=["out.txt"], follow=True, job_specs=["spec.yaml"],
                     job_parameters=given)  # type: ignore[arg-type]
    assert result.ok  # type: ignore[union-attr]
    assert (workdir / "out.txt").read_text() == f"fast|{SECRET}|2"


def test_a_spec_from_jobs_show_runs_with_the_secret_given_again(workdir: Path) -> None:
    first = _ran(run_cli(["run", "--follow", "--jp", f"env=MODE=fast,API_TOKEN={SECRET_ESCAPED}", "-o", "out.txt",
                          "sh", "-c", SHOW]))
    assert (workdir / "out.txt").read_text() == f"fast|{SECRET}|"
    (workdir / "spec.yaml").write_text(run_cli(["jobs", "--show", "--show-env", first]).stdout)
    (workdir / "out.txt").unlink()
    # The record holds a placeholder for the token; giving it again on the command line keeps MODE.
    _ran(run_cli(["run", "--follow", "--js", "spec.yaml", "--jp", "env=API_TOKEN=new,B=3"]))
    assert (workdir / "out.txt").read_text() == "fast|new|3"


def test_job_spec_values_keep_the_text_written(workdir: Path) -> None:
    # YAML's type guessing made 010 reach the command as 10, yes as True and 1e3 as 1000.0.
    (workdir / "spec.yaml").write_text(
        "command: [sh, -c, 'printf \"%s|%s|%s|%s\" \"$A\" \"$B\" \"$C\" \"$D\" > out.txt']\noutputs: [out.txt]\n"
        "num_processes: 1\nenv: {A: 010, B: yes, C: 1e3, D: 2024-01-01}\n")
    _ran(run_cli(["run", "--follow", "--js", "spec.yaml"]))
    assert (workdir / "out.txt").read_text() == "010|yes|1e3|2024-01-01"


def test_configured_env_is_merged_too(workdir: Path) -> None:
    _ran(run_cli(["run", "--follow", "--jp", "env=B=2", "-o", "out.txt", "sh", "-c", SHOW],
                 env={"REPROMAN_SUBMITTER_LOCAL_ENV": "MODE=site"}))
    assert (workdir / "out.txt").read_text() == "site||2"


def test_rerun_changing_one_variable_keeps_the_others(workdir: Path) -> None:
    first = _ran(run_cli(["run", "--follow", "--jp", "env=MODE=fast,API_TOKEN=t1,B=1", "-o", "out.txt",
                          "sh", "-c", SHOW]))
    rerun = run_cli(["rerun", "--follow", "--jp", "env=B=2", first], env={"API_TOKEN": "t2"})
    second = _ran(rerun)
    fetched = workdir / ".reproman" / "jobs" / "local" / second / "fetched" / "out.txt"
    assert fetched.read_text() == "fast|t2|2"  # the token is taken from the environment, as for every rerun
    assert (workdir / "out.txt").read_text() == "fast|t1|1"  # the original's output is kept
    assert Registry().load(second).parameters["env"] == {"MODE": "fast", "API_TOKEN": REDACTED, "B": "2"}
    # From Python, and giving the secret instead of exporting it.
    again = api.rerun(first, follow=True, job_parameters=["env=API_TOKEN=t3"])
    kept = workdir / ".reproman" / "jobs" / "local" / _jobid(again) / "fetched" / "out.txt"
    assert kept.read_text() == "fast|t3|1"


def test_rerun_refuses_a_parameter_its_submitter_does_not_take(workdir: Path) -> None:
    first = _ran(run_cli(["run", "true"]))
    before = sorted(p.name for p in Registry().root.iterdir())
    line = assert_one_line_error(run_cli(["rerun", "--jp", "queue=short", first]), code=2)
    assert "'queue' is not supported by submitter 'local'" in line
    assert sorted(p.name for p in Registry().root.iterdir()) == before


@pytest.mark.parametrize("given", ["env=", "env=A=1,=2", "env=A=1\\,2,B"], ids=["empty", "no-name", "no-equals"])
def test_bad_env_is_one_line_and_nothing_runs(workdir: Path, given: str) -> None:
    line = assert_one_line_error(run_cli(["run", "--jp", given, "true"]), code=2)
    assert "env" in line
    assert not list(data_dir().glob("jobs/*.yaml"))


def test_batch_values_and_directives_take_the_same_escapes() -> None:
    assert parse_batch_parameters(["label=a\\,b,c\\\\", "n=1"]) == {"label": ["a,b", "c\\"], "n": ["1"]}
    directives = Parameter(name="directives", type="list", doc="")
    assert directives.convert("--gres=gpu:1\\,mps:10, --comment=C:\\\\,--x=a\\b") == [
        "--gres=gpu:1,mps:10", "--comment=C:\\", "--x=a\\b"]


def test_batch_value_with_a_comma_reaches_the_command(workdir: Path) -> None:
    _ran(run_cli(["run", "--follow", "--bp", "label=a\\,b,c", "-o", "out/{p[label]}.txt",
                  "sh", "-c", "mkdir -p out && printf %s {p[label]!q} > out/{p[label]!q}.txt"]))
    assert sorted(p.name for p in (workdir / "out").iterdir()) == ["a,b.txt", "c.txt"]
    assert (workdir / "out" / "a,b.txt").read_text() == "a,b"
