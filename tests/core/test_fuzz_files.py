"""Fuzz every file ReproMan reads (issue 13): random bytes and mutated YAML end cleanly and damage nothing.

For each kind of file (inventory, configuration, job record, batch spec,
job spec, environment spec, ReproZip trace) an example writes random bytes,
random text, random YAML data of the wrong shape, or a valid file mutated
(characters deleted or inserted, lines duplicated, indentation shifted,
anchors and aliases added), then runs the commands that read that file.
Each command must exit 0 or exit non-zero with one line on stderr, within
a time limit, and leave the files it was not meant to change as they were.

Safety: a mutated job record that still parses is only listed, shown and
deleted, never fetched or cancelled (its directories and PID could now
name anything); job specs never gain root_directory or working_directory.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
from fuzz_harness import assert_clean, assert_unchanged, examples, invoke, new_job_records, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reproman import api
from reproman.errors import ReproManError
from reproman.jobs.registry import Registry
from reproman.paths import config_dir, data_dir
from reproman.resources.inventory import inventory_path

SETTINGS = settings(
    max_examples=examples(60),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

YAML_CHARS = ":-[]{}&*!|>'\"#%@,?~\n\t \\\x00\x1b\u2028\ufeff\u00e9"

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=True),
                    st.text(alphabet=string.printable + "\u00e9\x1b", max_size=12))
#: Keys that would make a job spec point the job somewhere outside the sandbox.
_UNSAFE_KEYS = {"root_directory", "working_directory", "container"}
KEYS = st.one_of(st.sampled_from(["name", "type", "id", "status", "version", "distributions", "files", "packages",
                                  "jobid", "command", "subjobs", "parameters", "env", "num_processes", "a", "b",
                                  "queue", "runs", "other_files", "general", "default_resource"]),
                 st.text(max_size=8)).filter(lambda k: k not in _UNSAFE_KEYS)
DATA = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(KEYS, inner, max_size=4)), max_leaves=20)


@st.composite
def mutated_text(draw: Any, base: str) -> str:
    text = base
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "dup-line", "indent", "alias", "anchor"]))
        at = draw(st.integers(0, len(text)))
        if op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)):]
        elif op == "insert":
            text = text[:at] + draw(st.text(alphabet=YAML_CHARS + string.ascii_letters, min_size=1, max_size=6)) \
                + text[at:]
        elif op == "dup-line":
            lines = text.splitlines(keepends=True) or [""]
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i] * draw(st.integers(1, 3)))
            text = "".join(lines)
        elif op == "indent":
            lines = text.splitlines(keepends=True) or [""]
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = " " * draw(st.integers(1, 4)) + lines[i]
            text = "".join(lines)
        elif op == "anchor":
            text = text[:at] + "&x " + text[at:]
        else:
            text = text[:at] + draw(st.sampled_from(["*x", "*x, *x, *x", "[*x, *x]", "<<: *x\n"])) + text[at:]
    return text


def contents(base: str, *, yaml_data: bool = True) -> Any:
    """Bytes or text to put in a file whose valid form is ``base``."""
    choices = [
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        mutated_text(base).map(lambda t: t.encode("utf-8", "surrogatepass")),
        mutated_text(base).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.just(base.encode()),
    ]
    if yaml_data:
        choices.append(DATA.map(lambda d: json.dumps(d, default=str).encode()))
    return st.one_of(*choices)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _run(argv: list[str], sandbox: Path, *, changes: bool = False, timeout: float = 30) -> None:
    before = snapshot(sandbox)
    outcome = invoke(argv, timeout=timeout)
    assert_clean(outcome)
    if outcome.code != 0 or not changes:
        assert_unchanged(before, sandbox, outcome)
    if outcome.code != 0 and "run" in argv:
        assert not new_job_records(before), outcome.describe()


@pytest.fixture
def sandbox(workdir: Path) -> Path:
    api.create("box", "shell", [])
    (workdir / "good.yml").write_text("version: 0.0.1\nfiles: [/bin/sh]\n")
    return workdir


INVENTORY = "box:\n  type: shell\n  id: 1234-abcd\n  status: ONLINE\nother:\n  type: shell\n"


def test_fuzz_inventory(sandbox: Path) -> None:
    @SETTINGS
    @given(data=contents(INVENTORY))
    def check(data: bytes) -> None:
        _write(inventory_path(), data)
        for argv in (["ls"], ["ls", "-v", "--json"], ["create", "new", "-t", "shell"],
                     ["execute", "-r", "box", "--", "true"], ["delete", "-y", "other"]):
            _run(argv, sandbox, changes=argv[0] in ("create", "delete"))

    check()


CONFIG = "[general]\ndefault_resource = box\n\n[submitter-slurm]\nqueue = short\n"


def test_fuzz_config(sandbox: Path) -> None:
    @SETTINGS
    @given(user=contents(CONFIG, yaml_data=False), extra=contents(CONFIG, yaml_data=False))
    def check(user: bytes, extra: bytes) -> None:
        _write(config_dir() / "reproman.cfg", user)
        _write(sandbox / "extra.cfg", extra)
        _run(["ls"], sandbox)
        _run(["-c", str(sandbox / "extra.cfg"), "jobs"], sandbox)

    check()


def test_fuzz_job_record(sandbox: Path) -> None:
    job = api.run(command=["echo", "{p[a]}"], batch_parameters={"a": ["1", "2"]}, follow=True).job
    base = (data_dir() / "jobs" / f"{job.jobid}.yaml").read_text()

    @SETTINGS
    @given(data=contents(base))
    def check(data: bytes) -> None:
        record = data_dir() / "jobs" / f"{job.jobid}.yaml"
        _write(record, data)
        for argv in (["jobs"], ["jobs", "--json"], ["jobs", "--show"], ["jobs", "--show", "--json", job.jobid]):
            _run(argv, sandbox)
        try:
            Registry().load(job.jobid)
        except ReproManError:
            _run(["jobs", job.jobid], sandbox)  # fetch: a damaged record is reported, not acted on
            _run(["jobs", "--status", job.jobid], sandbox)
        _run(["jobs", "--delete", job.jobid], sandbox, changes=True)
        assert not record.exists()

    check()


BATCH = "- {a: 1, b: x}\n- a: 2\n  b: 'y z'\n- a: &v three\n  b: *v\n"


def test_fuzz_batch_spec(sandbox: Path) -> None:
    @settings(SETTINGS, max_examples=examples(50))
    @given(data=contents(BATCH))
    def check(data: bytes) -> None:
        _write(sandbox / "batch.yaml", data)
        _run(["run", "--bs", "batch.yaml", "-o", "out-{p[a]}", "--", "echo", "{p[a]}", "{p[b]!q}"], sandbox,
             changes=True, timeout=60)

    check()


JOB_SPEC = "num_processes: 2\nenv:\n  K: v\n  OTHER: 'x y'\nmemory: 4G\n"


def test_fuzz_job_spec(sandbox: Path) -> None:
    @settings(SETTINGS, max_examples=examples(50))
    @given(data=contents(JOB_SPEC).filter(lambda d: not any(k.encode() in d for k in _UNSAFE_KEYS)))
    def check(data: bytes) -> None:
        _write(sandbox / "jobspec.yaml", data)
        _run(["run", "--js", "jobspec.yaml", "--", "true"], sandbox, changes=True, timeout=60)

    check()


ENV_SPEC = """\
version: 0.0.1
distributions:
  - name: debian
    apt_sources: [{name: apt_1, component: main, archive: stable, origin: Debian}]
    packages:
      - {name: bash, version: 5.2.15-2+b2, architecture: amd64, files: [/usr/bin/bash]}
  - name: conda
    environments: [{path: /opt/c, packages: [{name: numpy, version: '1.26'}]}]
  - name: git
    packages: [{path: /src/repo, hexsha: abc, root_hexsha: def}]
  - name: venv
    environments: [{path: /opt/v, python_version: '3.11', packages: [{name: six, version: 1.16.0}]}]
files: [/opt/blah]
"""


def test_fuzz_environment_spec(sandbox: Path) -> None:
    @SETTINGS
    @given(data=contents(ENV_SPEC))
    def check(data: bytes) -> None:
        _write(sandbox / "spec.yml", data)
        for argv in (["diff", "spec.yml", "good.yml"], ["diff", "--satisfies", "good.yml", "spec.yml"],
                     ["diff", "--json", "spec.yml", "spec.yml"], ["install", "no such", "spec.yml"]):
            _run(argv, sandbox)

    check()


REPROZIP = "version: '0.8'\nruns:\n  - {binary: /bin/sh, argv: [sh]}\nother_files: [/bin/sh, /etc/hostname]\n" \
           "packages: []\n"


def test_fuzz_reprozip_trace(sandbox: Path) -> None:
    @settings(SETTINGS, max_examples=examples(25))
    @given(data=contents(REPROZIP))
    def check(data: bytes) -> None:
        _write(sandbox / "config.yml", data)
        _run(["retrace", "--spec", "config.yml"], sandbox, timeout=60)

    check()
