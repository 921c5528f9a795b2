"""A job spec made from ``reproman jobs --show`` runs what the job ran (trial K, finding 1).

The record's ``command`` is the shell-quoted join of a command given as
words; read back as shell code it rendered a batch value inside the quotes
meant for the whole word, so a value holding a quote ran as code and file
names with spaces split. On the built-in local resource.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error

from reproman.jobs.registry import Registry
from reproman.testing.cli import run_cli

#: Breaks out of the single quotes of ``sh -c '... {p[v]} ...'`` and runs ``touch INJECTED``.
HOSTILE = "a';touch INJECTED;'"


def _round_trip(workdir: Path, jobid: str, *extra: str) -> str:
    (workdir / "spec.yaml").write_text(run_cli(["jobs", "--show", jobid]).stdout)
    result = run_cli(["run", "--follow", "--js", "spec.yaml", *extra])
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[0]


def test_a_value_holding_a_quote_reaches_the_command_as_one_word_after_the_round_trip(workdir: Path) -> None:
    first = run_cli(["run", "--follow", "--bp", f"v={HOSTILE}", "-o", "out.txt",
                     "sh", "-c", 'printf %s "$1" > out.txt', "_", "{p[v]}"])
    assert first.returncode == 0, first.stderr
    assert (workdir / "out.txt").read_text() == HOSTILE
    (workdir / "out.txt").unlink()
    again = _round_trip(workdir, first.stdout.splitlines()[0])
    assert not (workdir / "INJECTED").exists(), "a batch value ran as shell code"
    assert (workdir / "out.txt").read_text() == HOSTILE
    (record,) = [j for j in Registry().entries() if j.jobid == again]
    assert record.command_words == ["sh", "-c", 'printf %s "$1" > out.txt', "_", "{p[v]}"]


def test_quoted_placeholders_and_names_with_spaces_survive_the_round_trip(workdir: Path) -> None:
    (workdir / "in").mkdir()
    names = ["plain.txt", "with space.txt", "it's \"quoted\".txt"]
    for name in names:
        (workdir / "in" / name).write_text(name)
    first = run_cli(["run", "--follow", "--bp", "f=in/*", "-i", "{p[f]}", "-o", "{p[f]}.n",
                     "sh", "-c", "wc -c < {p[f]!q} > {p[f]!q}.n"])
    assert first.returncode == 0, first.stderr
    for name in names:
        (workdir / "in" / f"{name}.n").unlink()
    _round_trip(workdir, first.stdout.splitlines()[0])
    assert not (workdir / "INJECTED").exists()
    for name in names:
        assert (workdir / "in" / f"{name}.n").read_text().strip() == str(len(name)), name


def test_a_record_from_before_command_words_is_read_as_the_words_it_ran(workdir: Path) -> None:
    """Records written by an earlier version hold only ``command``: the form that renders what ran is taken."""
    first = run_cli(["run", "--follow", "--bp", f"v={HOSTILE}", "-o", "out.txt",
                     "sh", "-c", 'printf %s "$1" > out.txt', "_", "{p[v]}"])
    assert first.returncode == 0, first.stderr
    (record,) = json.loads(run_cli(["jobs", "--show", "--json", first.stdout.splitlines()[0]]).stdout)
    record.pop("command_words")
    (workdir / "old.json").write_text(json.dumps(record))
    (workdir / "out.txt").unlink()
    result = run_cli(["run", "--follow", "--js", "old.json"])
    assert result.returncode == 0, result.stderr
    assert not (workdir / "INJECTED").exists()
    assert (workdir / "out.txt").read_text() == HOSTILE


def test_an_edited_command_is_run_as_the_shell_code_written(workdir: Path) -> None:
    first = run_cli(["run", "--follow", "--bp", "v=1,2", "-o", "o{p[v]}", "sh", "-c", "echo {p[v]} > o{p[v]}"])
    assert first.returncode == 0, first.stderr
    (record,) = json.loads(run_cli(["jobs", "--show", "--json", first.stdout.splitlines()[0]]).stdout)
    record.pop("command_words")
    record["command"] = "echo edited-{p[v]} > o{p[v]}"
    (workdir / "edited.json").write_text(json.dumps(record))
    result = run_cli(["run", "--follow", "--js", "edited.json"])
    assert result.returncode == 0, result.stderr
    assert (workdir / "o2").read_text() == "edited-2\n"


@pytest.mark.parametrize("edit", ["command", "command_words"])
def test_command_and_command_words_that_disagree_are_refused(workdir: Path, edit: str) -> None:
    first = run_cli(["run", "--follow", "-o", "o", "sh", "-c", "echo one > o"])
    assert first.returncode == 0, first.stderr
    (record,) = json.loads(run_cli(["jobs", "--show", "--json", first.stdout.splitlines()[0]]).stdout)
    if edit == "command":
        record["command"] = shlex.join(["sh", "-c", "echo two > o"])
    else:
        record["command_words"] = ["sh", "-c", "echo two > o"]
    (workdir / "edited.json").write_text(json.dumps(record))
    before = Registry().jobids()
    line = assert_one_line_error(run_cli(["run", "--js", "edited.json"]), code=2)
    assert "command_words" in line
    assert Registry().jobids() == before
    assert (workdir / "o").read_text() == "one\n"


def test_a_spec_holding_only_command_words_runs_them(workdir: Path) -> None:
    """Trial L: the README says to delete one of the two; deleting 'command' read as 'no command given'."""
    first = run_cli(["run", "--follow", "--bp", f"v={HOSTILE}", "-o", "out.txt",
                     "sh", "-c", 'printf %s "$1" > out.txt', "_", "{p[v]}"])
    assert first.returncode == 0, first.stderr
    (record,) = json.loads(run_cli(["jobs", "--show", "--json", first.stdout.splitlines()[0]]).stdout)
    del record["command"]
    record["command_words"] = ["sh", "-c", 'printf "<%s>" "$1" > out.txt', "_", "{p[v]}"]
    (workdir / "words.json").write_text(json.dumps(record))
    result = run_cli(["run", "--follow", "--js", "words.json"])
    assert result.returncode == 0, result.stderr
    assert (workdir / "out.txt").read_text() == f"<{HOSTILE}>"
    assert not (workdir / "INJECTED").exists()


@pytest.mark.parametrize("key", ["outputs", "inputs"])
def test_an_edited_outputs_or_inputs_list_is_refused_not_ignored(workdir: Path, key: str) -> None:
    """Trial L: an output added under 'outputs:' was never fetched, and the job's files were then freed."""
    (workdir / "a.txt").write_text("a\n")
    first = run_cli(["run", "--follow", "-i", "a.txt", "-o", "o.txt", "sh", "-c", "cat a.txt > o.txt"])
    assert first.returncode == 0, first.stderr
    (record,) = json.loads(run_cli(["jobs", "--show", "--json", first.stdout.splitlines()[0]]).stdout)
    record[key].append("extra.txt")
    (workdir / "edited.json").write_text(json.dumps(record))
    before = Registry().jobids()
    line = assert_one_line_error(run_cli(["run", "--js", "edited.json"]), code=2)
    assert f"{key[:-1]}_patterns" in line
    assert Registry().jobids() == before


def test_show_says_a_secret_was_never_stored_rather_than_pointing_at_show_env(workdir: Path) -> None:
    first = run_cli(["run", "--follow", "--jp", "env=MODE=fast,API_KEY=s3cret", "true"])
    assert first.returncode == 0, first.stderr
    shown = run_cli(["jobs", "--show", first.stdout.splitlines()[0]]).stdout
    assert "API_KEY: '<not stored: looks like a secret>'" in shown, shown
    assert "MODE: <hidden; 'reproman jobs --show --show-env' prints it>" in shown


@pytest.mark.parametrize("command", [
    "sh -c 'printf %s {p[v]!q} > out.txt'",       # trial L: !q's own quotes close the outer ones
    "sh -c 'printf %s {p[v]} > out.txt'",
    'sh -c "printf %s {p[v]} > out.txt"',
])
def test_a_value_that_would_leave_the_quotes_of_shell_code_is_refused(workdir: Path, command: str) -> None:
    """Shell code (a spec's command, or one word on the command line) with a placeholder inside quotes."""
    (workdir / "bs.yaml").write_text('- v: "$(touch INJECTED)\'"\n')
    before = Registry().jobids()
    line = assert_one_line_error(run_cli(["run", "--follow", "--batch-spec", "bs.yaml", "-o", "out.txt", command]),
                                 code=2)
    assert "inside" in line and "quotes of shell code" in line
    assert Registry().jobids() == before
    assert not (workdir / "INJECTED").exists()


def test_the_script_of_sh_c_given_as_words_is_checked_too(workdir: Path) -> None:
    result = run_cli(["run", "--follow", "--bp", "v=a';touch INJECTED;'", "-o", "o",
                      "sh", "-ec", "echo '{p[v]}' > o"])
    assert_one_line_error(result, code=2)
    assert not (workdir / "INJECTED").exists()


def test_harmless_values_inside_quotes_still_run(workdir: Path) -> None:
    result = run_cli(["run", "--follow", "--bp", "v=1,two words", "-o", "o{p[v]}", "sh -c 'echo \"{p[v]}\" > \"o{p[v]}\"'"])
    assert result.returncode == 0, result.stderr
    assert (workdir / "otwo words").read_text() == "two words\n"
