"""Batch expansion and placeholder rendering (pure functions, no resource)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from reproman.errors import UsageError
from reproman.jobs.batch import (
    batch_records,
    command_text,
    expand,
    parse_batch_parameters,
    product,
    render,
    render_command,
)
from reproman.testing.cli import run_cli


def test_product_takes_every_combination_in_key_order() -> None:
    params = parse_batch_parameters(["subj=mei,satsuki", "day=1,2"])
    assert product(params) == [
        {"subj": "mei", "day": "1"},
        {"subj": "mei", "day": "2"},
        {"subj": "satsuki", "day": "1"},
        {"subj": "satsuki", "day": "2"},
    ]


def test_glob_values_expand_against_cwd(tmp_path: Path) -> None:
    for name in ("b.txt", "a.txt", "c.dat"):
        (tmp_path / name).write_text(name)
    assert parse_batch_parameters(["f=*.txt,plain"], cwd=tmp_path) == {"f": ["a.txt", "b.txt", "plain"]}


def test_glob_matching_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="matches nothing"):
        parse_batch_parameters(["f=*.nope"], cwd=tmp_path)


def test_malformed_batch_parameter() -> None:
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_batch_parameters(["novalue"])


def test_batch_spec_records(tmp_path: Path) -> None:
    spec = tmp_path / "batch.yaml"
    spec.write_text("- {x: 1, y: a}\n- {x: 2, y: b}\n")
    assert batch_records(str(spec), None) == [{"x": "1", "y": "a"}, {"x": "2", "y": "b"}]  # as written
    with pytest.raises(UsageError, match="not both"):
        batch_records(str(spec), ["x=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("x: 1\n")
    with pytest.raises(UsageError, match="list of mappings"):
        batch_records(str(bad), None)


def test_no_batch_is_one_record() -> None:
    assert batch_records(None, None) == [{}]


def test_render_leaves_shell_braces_alone() -> None:
    text = "awk '{print $1}' ${HOME}/{p[f]} > {p[f]}.out; echo {p[n]:03}"
    assert render(text, {"f": "a b", "n": 7}) == "awk '{print $1}' ${HOME}/a b > a b.out; echo 007"


def test_render_inputs_outputs_quoted() -> None:
    assert render("cat {inputs} > {outputs}", {}, ["a b", "c"], ["o"]) == "cat 'a b' c > o"


def test_missing_key_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match="no batch parameter 'y'; known: x"):
        render("{p[y]}", {"x": 1})
    with pytest.raises(UsageError, match="no batch parameters given"):
        render("{p[y]}", {})


def test_argv_words_rendered_before_quoting() -> None:
    command = ["sh", "-c", "echo {p[x]} > out", "{inputs}"]
    rendered = render_command(command, {"x": "it's"}, ["in 1", "in2"], [])
    assert rendered == "sh -c 'echo it'\"'\"'s > out' 'in 1' in2"
    # A single word is shell code, as typed.
    assert command_text(["echo hi > out"]) == "echo hi > out"
    assert command_text(["sh", "-c", "echo $X"]) == "sh -c 'echo $X'"


def test_expand_renders_inputs_and_outputs_per_subjob() -> None:
    subjobs = expand(["sh", "-c", "cp {inputs} {outputs}"], [{"s": "a"}, {"s": "b"}], ["in/{p[s]}"], ["out/{p[s]}"])
    assert [s.command for s in subjobs] == ["sh -c 'cp in/a out/a'", "sh -c 'cp in/b out/b'"]
    assert [(s.inputs, s.outputs, s.p) for s in subjobs] == [
        (["in/a"], ["out/a"], {"s": "a"}),
        (["in/b"], ["out/b"], {"s": "b"}),
    ]
    with pytest.raises(UsageError, match="only be used in the command"):
        expand("true", [{}], ["{outputs}"], [])


def test_repeated_and_concurrent_expansion_share_no_state() -> None:
    """The old tool failed the second time with KeyError: 'p'."""
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for _ in range(50):
                records = product(parse_batch_parameters([f"x={n},{n + 1}"]))
                results.append([s.command for s in expand("echo {p[x]}", records)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 400
    assert all(r[0].startswith("echo ") and len(r) == 2 for r in results)


def test_number_ranges() -> None:
    from reproman.jobs.batch import parse_batch_parameters

    assert parse_batch_parameters(["i=1..4"]) == {"i": ["1", "2", "3", "4"]}
    assert parse_batch_parameters(["i=008..011,x"]) == {"i": ["008", "009", "010", "011", "x"]}
    assert parse_batch_parameters(["i=10..0..5"]) == {"i": ["10", "5", "0"]}
    assert parse_batch_parameters(["i=a..b"]) == {"i": ["a..b"]}  # not numbers: a plain value
    with pytest.raises(UsageError, match="more than the 100,000"):
        parse_batch_parameters(["i=1..1000000"])
    with pytest.raises(UsageError, match="must be positive"):
        parse_batch_parameters(["i=1..9..0"])


def test_batch_spec_values_reach_the_command_as_written(workdir: Path) -> None:
    """YAML would read 010 as 10, yes as True, 1e3 as 1000.0: the command must get the text the user wrote."""
    (workdir / "spec.yaml").write_text(
        '- {a: yes, b: 010, c: 1e3, d: 2024-01-01, e: 0x1F, f: 1_000, g: 08, h: "007", i: 1.50, j: -0}\n')
    result = run_cli(["run", "--follow", "--batch-spec", "spec.yaml", "-o", "out", "sh", "-c",
                      "echo {p[a]} {p[b]} {p[c]} {p[d]} {p[e]} {p[f]} {p[g]} {p[h]} {p[i]} {p[j]} > out"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert (workdir / "out").read_text() == "yes 010 1e3 2024-01-01 0x1F 1_000 08 007 1.50 -0\n"


@pytest.mark.parametrize("record", ["{a: null}", "{a: ~}", "{a: }"])
def test_batch_spec_null_is_refused(tmp_path: Path, record: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"- {record}\n")
    with pytest.raises(UsageError, match=r"record 1, a: no value \(write '' for empty text\)"):
        batch_records(str(spec), None)


@pytest.mark.parametrize(("spec", "value", "expected"), [
    ("03", "7", "007"), ("03d", "7", "007"), ("03", "007", "007"), ("5", "007", "007  "), (".2f", "3.14159", "3.14"),
    ("x", "255", "ff"), (",", "1000000", "1,000,000"), ("s", "7", "7"), (">4", "7", "   7"),
])
def test_number_formats_apply_to_numeric_text(spec: str, value: str, expected: str) -> None:
    """--bp and batch-spec values are text; {p[n]:03} must zero-pad the number, not append zeros to the text."""
    assert render("{p[v]:" + spec + "}", {"v": value}) == expected
