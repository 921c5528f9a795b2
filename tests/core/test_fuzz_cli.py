"""Fuzz every command's arguments (issue 13): random and mutated argv end cleanly and damage nothing.

Each example is a command line built from that command's own options with
values drawn from pools of plausible and hostile words (existing and
unknown resources and jobs, sandbox files of every kind, random text with
control characters, huge numbers), then, for commands that run nothing,
mutated: a word dropped, duplicated, or an option of another command
inserted. It runs in-process (see ``fuzz_harness``) and must exit 0 or exit
non-zero with one line on stderr, within a time limit, leaving every file
it was not meant to change byte for byte.

Safety, because the suite runs as root in CI: ``run`` and ``execute`` are
never mutated and always end in ``-- COMMAND`` from a fixed list of
harmless commands (placeholders inside ``sh -c`` use ``!q``); ``install``
and ``login`` only name resources that cannot exist; paths written to are
inside the sandbox. ``jobs --cancel`` is left out: the local submitter
signals the PID recorded for a finished job, which may belong to another
process by now.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import string
from pathlib import Path
from typing import Any

import pytest
from fuzz_harness import assert_clean, assert_unchanged, examples, invoke, new_job_records, snapshot
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reproman import api
from reproman.cli.main import parse_args
from reproman.jobs.parameters import JOB_PARAMETERS
from reproman.paths import config_dir, data_dir

SETTINGS = settings(
    max_examples=examples(30),
    deadline=None,
    derandomize=False,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

HOSTILE_TEXT = st.text(
    alphabet=st.sampled_from(string.printable + "\x00\x1b\x7f\u2028\u00e9\u4e2d\ufeff{}[]!:%$`\"'\\;|&*?~"),
    max_size=24,
)
LONG = st.sampled_from(["x" * 300, "y" * 5000, "9" * 4400])
NUMBERS = st.integers(min_value=-(10**30), max_value=10**30).map(str)
#: No word that argparse could read as (an abbreviation of) --cancel.
TEXT = st.one_of(HOSTILE_TEXT, LONG, NUMBERS).filter(lambda t: not t.startswith("--c") and "cancel" not in t)

EXISTING = ["box", "other", "local"]
NAMES = st.one_of(st.sampled_from([*EXISTING, "nope", "bo", "BOX", "../box", "box\n"]), TEXT)
#: Names no resource can have (create refuses '/' and spaces): for install and login.
IMPOSSIBLE = st.one_of(st.sampled_from(["no such", "nope/x", "../../x", "a b\nc"]),
                       HOSTILE_TEXT.map(lambda t: f"none/{t}"))
RESREF_TYPES = st.one_of(st.sampled_from(["auto", "name", "id"]), TEXT)

SANDBOX_FILES = ["data.txt", "spec.yml", "spec2.yml", "batch.yaml", "jobspec.yaml", "binary.bin", "bomb.yaml",
                 "reprozip.yml", "extra.cfg", "empty.yml", "subdir", "missing.yaml"]
FILES = st.one_of(st.sampled_from(SANDBOX_FILES), TEXT.filter(lambda t: "/" not in t))
#: Inputs and outputs: files, directories, the working directory itself (-o . once emptied it).
PATHS = st.one_of(FILES, st.sampled_from([".", "./", "subdir/..", "subdir", "out-{p[a]}", "{p[a]}"]))
SAFE_DIRS = st.one_of(st.sampled_from(["rundir", "sub dir", "subdir"]),
                      HOSTILE_TEXT.filter(lambda t: "/" not in t and t not in (".", "..") and "\x00" not in t
                                          and not t.startswith("~")))
JOB_KEYS = st.one_of(st.sampled_from([p.name for p in JOB_PARAMETERS if p.name != "container"]), TEXT)


@st.composite
def key_value(draw: Any, keys: Any = TEXT, values: Any = TEXT) -> str:
    return f"{draw(keys)}={draw(values)}"


@st.composite
def job_parameter(draw: Any) -> str:
    key = draw(JOB_KEYS)
    if key in ("root_directory", "working_directory"):
        return f"{key}={draw(SAFE_DIRS)}"
    if "=" in key or key == "container" or key.startswith(("root_directory", "working_directory")):
        key = "queue"
    value = draw(st.one_of(TEXT, st.integers(-5, 5).map(str), st.sampled_from(["A=1,B=2", "1;x=2", "yes"])))
    return f"{key}={value}"


def _options(draw: Any, spec: list[tuple[str, Any]]) -> list[str]:
    """Some of ``spec``'s options, each with its value (``None``: a flag), in a random order."""
    chosen = draw(st.lists(st.sampled_from(range(len(spec))), max_size=len(spec) + 1))
    words: list[str] = []
    for index in chosen:
        flag, value = spec[index]
        words.append(flag)
        if value is not None:
            words.append(draw(value))
    return words


#: Options inserted by mutation: everything except what writes files or changes the output's shape.
INSERTABLE = ["-r", "--resref-type", "-y", "-f", "--json", "-v", "--refresh", "-s", "--status", "-a", "--all",
              "--show", "--list", "--delete", "--fetch", "--action", "--check", "-t", "-b", "--spec",
              "--satisfies", "--show-env", "-c", "--version", "-h", "--", "-", "--nope", "-Z"]


@st.composite
def mutated(draw: Any, words: list[str]) -> list[str]:
    words = list(words)
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["drop", "dup", "insert", "swap"]))
        if op == "drop" and len(words) > 1:
            del words[draw(st.integers(1, len(words) - 1))]
        elif op == "dup" and words:
            i = draw(st.integers(0, len(words) - 1))
            words.insert(i, words[i])
        elif op == "insert":
            words.insert(draw(st.integers(1, len(words))), draw(st.one_of(st.sampled_from(INSERTABLE), TEXT)))
        elif op == "swap" and len(words) > 2:
            i = draw(st.integers(1, len(words) - 2))
            words[i], words[i + 1] = words[i + 1], words[i]
    return words


def _global(draw: Any) -> list[str]:
    """Global options, absent most of the time."""
    if _maybe(draw, 70):
        return []
    return draw(st.sampled_from([["-c", "extra.cfg"], ["-c", "binary.bin"], ["-c", "missing.cfg"],
                                 ["-l", "warning"], ["-l", "nonsense"], ["--version"]]))


@st.composite
def safe_argv(draw: Any, command: str) -> list[str]:
    """Commands that run nothing on a resource: built from their options, then mutated."""
    o = lambda spec: _options(draw, spec)  # noqa: E731
    if command == "create":
        words = [draw(NAMES), "-t", draw(st.one_of(st.just("shell"), TEXT)),
                 *o([("-b", key_value()), ("--json", None)])]
    elif command in ("delete", "start", "stop"):
        extra = [("-y", None), ("-f", None)] if command == "delete" else []
        words = [draw(NAMES), *o([("--resref-type", RESREF_TYPES), *extra])]
    elif command == "login":
        words = [draw(IMPOSSIBLE), *o([("--resref-type", RESREF_TYPES)])]
    elif command == "ls":
        words = [*draw(st.lists(NAMES, max_size=2)),
                 *o([("--resref-type", RESREF_TYPES), ("-v", None), ("--refresh", None), ("--json", None)])]
    elif command == "backend-parameters":
        words = [*draw(st.lists(st.one_of(st.just("shell"), TEXT), max_size=2)), *o([("--json", None)])]
    elif command == "plugins":
        words = o([("--json", None), ("--check", None)])
    elif command == "jobs":
        jobids = st.sampled_from(_JOBIDS) if _JOBIDS else TEXT
        queries = st.one_of(jobids, jobids.map(lambda j: j[-6:]), st.just("2026"), TEXT)
        words = [*draw(st.lists(queries, max_size=2)),
                 *o([("--action", st.one_of(st.sampled_from(["auto", "list", "show", "delete", "fetch"]),
                                            TEXT)),
                     ("--show", None), ("--list", None), ("--delete", None), ("--fetch", None),
                     ("-a", None), ("-s", None), ("--json", None), ("--show-env", None)])]
    elif command == "retrace":
        words = [*draw(st.lists(FILES, max_size=2)),
                 *o([("--spec", FILES), ("-r", NAMES), ("--resref-type", RESREF_TYPES)])]
    elif command == "diff":
        words = [draw(FILES), draw(FILES), *o([("-s", None), ("--json", None)])]
    elif command == "install":
        words = [draw(IMPOSSIBLE), *draw(st.lists(FILES, min_size=1, max_size=2)),
                 *o([("--resref-type", RESREF_TYPES)])]
    else:  # pragma: no cover
        raise AssertionError(command)
    return [*_global(draw), *draw(mutated([command, *words]))]


#: What ``run`` and ``execute`` may run: harmless whatever the placeholders expand to.
SAFE_RUN_COMMANDS = [
    ["true"], ["echo", "{p[a]}"], ["printf", "%s\\n", "{p[a]:>5}", "{p[b]}"], ["sh", "-c", "echo {p[a]!q} > /dev/null"],
    ["echo", "{inputs}", "{outputs}"], ["echo", "{p[nope]}"], ["echo", "{p[a]:{}}"], ["echo", "{p[a]!x}"],
]
#: Format specs, plausible and not: widths up to 12 digits ({p[v]:>1500000000} was a MemoryError).
FORMAT_SPECS = st.from_regex(r"(.?[<>^=])?[-+ ]?z?#?0?[0-9]{0,12}[_,]?(\.[0-9]{0,12})?[a-zA-Z%]?", fullmatch=True)
SAFE_EXEC_COMMANDS = [["true"], ["echo", "hello"], ["printf", "%s", "x"]]


def _maybe(draw: Any, percent: int) -> bool:
    return bool(draw(st.integers(0, 99)) < percent)


@st.composite
def run_argv(draw: Any) -> list[str]:
    """Mostly runnable: a resource that exists and batch values, plus a few hostile options."""
    words: list[str] = []
    if _maybe(draw, 80):
        words += ["-r", draw(st.sampled_from(EXISTING) if _maybe(draw, 75) else NAMES)]
    if _maybe(draw, 80):
        words += ["--bp", f"a={draw(TEXT)}"]
    if _maybe(draw, 40):
        words += ["--bp", draw(key_value(st.sampled_from(["b", "a"]) | TEXT, TEXT))]
    optional = [
        ("--resref-type", RESREF_TYPES), ("-m", TEXT),
        ("--submitter", st.one_of(st.just("local"), TEXT.filter(lambda t: t.strip().lower() not in _SCHEDULERS))),
        ("--orchestrator", st.one_of(st.just("plain"), TEXT.filter(lambda t: not t.strip().lower().startswith("datalad")))),
        ("--bs", FILES), ("--js", FILES), ("--jp", job_parameter()), ("--jp", job_parameter()), ("-i", PATHS),
        ("-o", PATHS), ("-o", PATHS), ("--json", None),
    ]
    for flag, value in optional:
        if _maybe(draw, 25 if flag == "-o" else 15):
            words.append(flag)
            if value is not None:
                words.append(draw(value))
    if _maybe(draw, 50):
        words += ["--follow", *draw(st.sampled_from([[], ["stop"], ["stop-if-success"], ["delete-if-success"]]))]
    if _maybe(draw, 5):
        words += ["--list", draw(st.sampled_from(["submitters", "orchestrators", "parameters"]))]
    if _maybe(draw, 30):
        command = ["printf", "%s\\n", "{p[a]:" + draw(FORMAT_SPECS) + "}"]
    else:
        command = draw(st.sampled_from(SAFE_RUN_COMMANDS))
    return [*_global(draw), "run", *words, "--", *command]


@st.composite
def execute_argv(draw: Any) -> list[str]:
    words = _options(draw, [("-r", NAMES), ("--resref-type", RESREF_TYPES), ("--trace", None)])
    if draw(st.booleans()):
        op = draw(st.one_of(st.sampled_from(["mkdir", "isdir", "put", "get", "chmod", "chown"]), TEXT))
        args = draw(st.lists(st.one_of(st.sampled_from(SANDBOX_FILES[:-1]), st.sampled_from(["700", "u+x", "root"]),
                                       SAFE_DIRS), max_size=3))
        return [*_global(draw), "execute", *words, "--internal", "--", op, *args]
    return [*_global(draw), "execute", *words, "--", *draw(st.sampled_from(SAFE_EXEC_COMMANDS))]


_SCHEDULERS = {"slurm", "pbs", "condor", "lsf", "sge"}
_JOBIDS: list[str] = []

#: Commands meant to change ReproMan's files when they succeed (see _meant_to_change for the details).
CHANGING = {"create", "delete", "start", "stop", "run", "execute"}

SPEC_YAML = """\
version: 0.0.1
distributions:
  - name: debian
    packages:
      - {name: bash, version: 5.2.15-2+b2, architecture: amd64, files: [/usr/bin/bash]}
  - name: conda
    environments: [{path: /opt/c, packages: [{name: numpy, version: '1.26'}]}]
files: [/opt/blah, /etc/x]
"""


@pytest.fixture
def sandbox(workdir: Path) -> Path:
    """A user with two resources, two jobs and files of every kind ReproMan reads."""
    api.create("box", "shell", [])
    api.create("other", "shell", [])
    (workdir / "data.txt").write_text("data\n")
    (workdir / "spec.yml").write_text(SPEC_YAML)
    (workdir / "spec2.yml").write_text(SPEC_YAML.replace("5.2.15-2+b2", "5.2.21-2").replace("1.26", "2.0"))
    (workdir / "batch.yaml").write_text("- {a: 1, b: x}\n- {a: 2, b: 'y z'}\n")
    (workdir / "jobspec.yaml").write_text("num_processes: 2\nenv: {K: v}\n")
    (workdir / "binary.bin").write_bytes(b"\x89PNG\x00\xff\xfe" * 20)
    (workdir / "bomb.yaml").write_text("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join(['*a' if i == 1 else f'*a{i - 1}'] * 10)}]\n" for i in range(1, 8)))
    (workdir / "reprozip.yml").write_text("version: '0.8'\nruns: []\nother_files: [/bin/sh]\npackages: []\n")
    (workdir / "extra.cfg").write_text("[general]\ndefault_resource = box\n")
    (workdir / "empty.yml").write_text("")
    (workdir / "subdir").mkdir()
    first = api.run(command="true", follow=True)
    second = api.run(command=["echo", "{p[a]}"], batch_parameters={"a": ["1", "2"]})
    _JOBIDS[:] = [first.job.jobid, second.job.jobid]
    return workdir


def _meant_to_change(argv: list[str] | tuple[str, ...]) -> bool:
    """Whether the command, as the CLI parses ``argv``, changes ReproMan's files when it succeeds."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            args = parse_args(list(argv))
    except SystemExit:
        return False
    if args.cmd == "jobs":
        return args.action not in ("list", "show") and (args.action != "auto" or bool(args.queries or args.all_))
    if args.cmd == "ls":
        return bool(args.refresh)
    if args.cmd == "retrace":
        return bool(args.output_file)
    return args.cmd in CHANGING


def _outputs_and_records(argv: tuple[str, ...], sandbox: Path) -> list[str]:
    """What a successful ``run`` may change: its outputs (up to a placeholder), logs, records, inventory."""
    own = argv[: argv.index("--")] if "--" in argv else argv
    outputs = [own[i + 1] for i, word in enumerate(own[:-1]) if word in ("-o", "--output")]
    # An output is never the whole working directory: '-o .' must not make every change allowed.
    paths = [os.path.normpath(sandbox / o.split("{")[0]) for o in outputs if "{" not in o]
    if any("{" in o for o in outputs):
        paths.append(str(sandbox / "out-"))  # what the sandbox's templated outputs render to, at most
    return [p for p in paths if len(p) > len(str(sandbox))] + [
        str(sandbox / ".reproman"), str(data_dir()), str(config_dir())]


def _check(outcome: Any, before: dict[str, str], sandbox: Path, command: str) -> None:
    event(f"exit {outcome.code}: {outcome.stderr.partition('error: ')[2][:30] if outcome.code else 'ok'}")
    assert_clean(outcome)
    if command == "jobs":
        # Looking at jobs records what the resource says once (final states are facts): job records
        # may change whatever the outcome, and must still load; anything else only when fetching worked.
        from reproman.jobs.registry import Registry

        if outcome.code != 0 or not _meant_to_change(outcome.argv):
            records = str(data_dir() / "jobs") + "/"
            assert_unchanged({p: d for p, d in before.items() if not p.startswith(records)}, sandbox, outcome)
        assert all(e.jobid for e in Registry().entries())
    elif outcome.code != 0 or not _meant_to_change(outcome.argv):
        assert_unchanged(before, sandbox, outcome)
    elif command == "run":
        after = snapshot(sandbox)
        allowed = _outputs_and_records(outcome.argv, sandbox)
        changed = [p for p, digest in before.items() if after.get(p) != digest
                   and not any(p == a or p.startswith(a.rstrip("/") + "/") for a in allowed)]
        assert not changed, f"{outcome.describe()}\nchanged files that are not outputs: {changed}"
    if outcome.code != 0 and command == "run":
        assert not new_job_records(before), f"a failed run left a job record: {outcome.describe()}"


@pytest.mark.parametrize("command", ["create", "delete", "start", "stop", "login", "ls", "backend-parameters",
                                     "plugins", "jobs", "retrace", "diff", "install"])
def test_fuzz_commands_that_run_nothing(sandbox: Path, command: str) -> None:
    @SETTINGS
    @given(argv=safe_argv(command))
    def check(argv: list[str]) -> None:
        before = snapshot(sandbox)
        _check(invoke(argv), before, sandbox, command)

    check()


def test_fuzz_run(sandbox: Path) -> None:
    @settings(SETTINGS, max_examples=examples(75))
    @given(argv=run_argv())
    def check(argv: list[str]) -> None:
        before = snapshot(sandbox)
        outcome = invoke(argv, timeout=60)
        _check(outcome, before, sandbox, "run")
        if outcome.code == 0 and "--json" in argv and not {"--list", "--version"} & set(argv):
            assert json.loads(outcome.stdout)["jobid"]

    check()


def test_fuzz_execute(sandbox: Path) -> None:
    @settings(SETTINGS, max_examples=examples(50))
    @given(argv=execute_argv())
    def check(argv: list[str]) -> None:
        before = snapshot(sandbox)
        _check(invoke(argv), before, sandbox, "execute")

    check()


def test_fuzz_random_words(sandbox: Path) -> None:
    """Arbitrary words after the program name (no command word that runs anything)."""
    words = st.one_of(st.sampled_from(INSERTABLE + ["ls", "jobs", "plugins", "diff", "backend-parameters"]), TEXT)

    @settings(SETTINGS, max_examples=examples(100))
    @given(argv=st.lists(words, max_size=6).filter(
        lambda a: not set(a) & {"run", "execute", "login", "install", "create", "delete", "retrace"}))
    def check(argv: list[str]) -> None:
        before = snapshot(sandbox)
        _check(invoke(argv), before, sandbox, argv[0] if argv else "")

    check()
