"""Batch placeholders (issue 13, cases 5 and 12): bounded formats, and {p[K]!q} for shell code."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error

from reproman.errors import UsageError
from reproman.jobs.batch import MAX_SUBJOBS, batch_records, expand, render
from reproman.testing.cli import run_cli


@pytest.mark.parametrize("template", ["{p[v]:>1500000000}", "{p[v]:.1500000000}", "{p[v]:" + "9" * 5000 + "}",
                                      "{p[v]:,.2000f}"])
def test_huge_widths_are_refused_before_formatting(template: str) -> None:
    started = time.monotonic()
    with pytest.raises(UsageError, match="larger than 1000"):
        render(template, {"v": 1.5})
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(("template", "value"), [("{p[v]:d}", "abc"), ("{p[v]:03}", [1]), ("{p[v]:%Y}", "x"),
                                                 ("{p[v]:<<<}", "x")])
def test_a_spec_that_does_not_fit_the_value_is_a_usage_error(template: str, value: object) -> None:
    with pytest.raises(UsageError, match=r"\{p\[v\]"):
        render(template, {"v": value})


@pytest.mark.parametrize(("spec", "value"), [("03", "ab"), ("03", "7a"), ("03", "1_000"), ("+05", "x"),
                                             (",", "1,0"), ("d", "1.5"), ("x", "ab")])
def test_number_formats_never_alter_text_silently(spec: str, value: str) -> None:
    """Trial H: ``{p[n]:03}`` turned ``ab`` into ``ab0`` and ``1_000`` into ``1000.0``: a value altered, not said."""
    with pytest.raises(UsageError, match=r"is not a (whole )?number"):
        render("{p[n]:" + spec + "}", {"n": value})


@pytest.mark.parametrize(("spec", "value", "text"), [("03", "7", "007"), ("+05", "-3", "-0003"), (".2f", "1.5", "1.50"),
                                                     (">4", "ab", "  ab"), ("03", "1e3", "1000.0")])
def test_number_formats_of_numbers_and_text_formats_of_text(spec: str, value: str, text: str) -> None:
    assert render("{p[n]:" + spec + "}", {"n": value}) == text


def test_a_range_with_a_negative_step_is_refused_not_taken_as_text(workdir: Path) -> None:
    result = run_cli(["run", "--bp", "i=1..10..-1", "echo", "{p[i]}"])
    assert "the step of 1..10..-1 must be positive" in assert_one_line_error(result, code=2)


def test_format_bomb_on_the_command_line(workdir: Path) -> None:
    result = run_cli(["run", "--bp", "v=abc", "echo", "{p[v]:>1500000000}"])
    assert "width 1500000000 is larger than 1000" in assert_one_line_error(result, code=2)


def test_product_beyond_the_bound_is_refused_before_expanding(workdir: Path) -> None:
    started = time.monotonic()
    with pytest.raises(UsageError, match="subjobs, more than the 100,000"):
        batch_records(None, {k: list(range(100)) for k in "abcd"})
    assert time.monotonic() - started < 1
    assert len(batch_records(None, {"a": list(range(MAX_SUBJOBS))})) == MAX_SUBJOBS


def test_api_mapping_values_may_be_scalars(workdir: Path) -> None:
    assert batch_records(None, {"a": 5, "b": "x,y", "c": [1, 2]}) == [
        {"a": 5, "b": b, "c": c} for b in ("x", "y") for c in (1, 2)
    ]
    with pytest.raises(UsageError, match="values must be text or numbers, got a mapping"):
        batch_records(None, {"a": [{"x": 1}]})


HOSTILE = "it's \"x\"; touch PWNED; echo $(id) `id` \\ \n end"


def test_q_conversion_runs_the_value_as_one_word(workdir: Path) -> None:
    pwned = workdir / "PWNED"
    spec = workdir / "batch.yaml"
    spec.write_text("- v: " + json.dumps(HOSTILE) + "\n")
    result = run_cli(["run", "--follow", "--batch-spec", str(spec), "-o", "out.txt",
                      "sh", "-c", "printf '%s' {p[v]!q} > out.txt"])
    assert result.returncode == 0, result.stderr
    assert (workdir / "out.txt").read_text() == HOSTILE
    assert not pwned.exists()


def test_without_q_a_value_in_shell_code_is_code_as_documented(workdir: Path) -> None:
    # The documented hazard the README warns about: this is what !q exists for.
    result = run_cli(["run", "--follow", "--keep-remote", "--bp", "v=x; touch PWNED", "sh", "-c", "echo {p[v]}"])
    assert result.returncode == 0, result.stderr
    home = workdir.parent / "home"
    assert list(home.glob(".reproman/run-root/*/PWNED"))


def test_argv_words_stay_one_argument_and_q_quotes_for_inner_shells() -> None:
    [sub] = expand(["printf", "%s|", "{p[v]}", "{p[v]!q}"], [{"v": "a b;c"}])
    assert sub.command == "printf '%s|' 'a b;c' ''\"'\"'a b;c'\"'\"''"
    with pytest.raises(UsageError, match=r"unknown conversion '!r'"):
        render("{p[v]!r}", {"v": 1})
    assert render("{p[v]!q:>12}", {"v": "a b"}) == "       'a b'"
    assert render("awk '{print $1}' ${HOME} {p[n]:03}", {"n": 7}) == "awk '{print $1}' ${HOME} 007"


@pytest.mark.parametrize("output", [".", "./", "subdir/..", "{p[v]}", "ABS"])
def test_an_output_naming_the_working_directory_merges_and_nothing_is_deleted(workdir: Path, output: str) -> None:
    """Every spelling of the working directory means "add what the job wrote there" (issue 10)."""
    (workdir / "subdir").mkdir()
    (workdir / "precious.txt").write_text("keep me\n")
    output = str(workdir) if output == "ABS" else output
    result = run_cli(["run", "--follow", "--bp", "v=.", "-o", output, "--", "sh", "-c", "echo new > new.txt"])
    assert result.returncode == 0, result.stderr
    assert (workdir / "precious.txt").read_text() == "keep me\n"
    assert (workdir / "new.txt").read_text() == "new\n"
    assert (workdir / "subdir").is_dir()
