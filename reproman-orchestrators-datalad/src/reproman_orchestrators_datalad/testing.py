"""A YODA-style dataset and the checks every DataLad orchestrator must pass on it, for tests.

The layout is the one researchers use (``code/`` in git, inputs and outputs
in subdatasets, one of them nested two levels deep)::

    code/count.sh           in git (the yoda procedure)
    inputs/                 subdataset: s00.csv ... s19.csv, annexed
    outputs/                subdataset
    outputs/derived/        subdataset two levels deep; ref.csv annexed

``count.sh IN OUT`` writes the number of lines of IN and a random nonce to
OUT, so a rerun that really ran a subjob changes its output.

The checks (:func:`single_job`, :func:`batch`, :func:`failing_batch`,
:func:`rerun`) take a ``run`` callable, so the same checks serve the shell
resource in this package's tests and SSH or Docker resources in the
integration tests. They use plain ``assert`` and need DataLad and
git-annex on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reproman.plugins import JobSpec

INPUTS = 20
COUNT_SCRIPT = """#!/bin/sh
# count.sh IN OUT: the number of lines of IN, and a nonce that shows when this ran.
set -e
mkdir -p "$(dirname "$2")"
printf '%s %s\\n' "$(wc -l < "$1" | tr -d ' ')" "$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')" > "$2"
"""
#: Declared as an input everywhere: ``datalad-local-run`` sends only declared inputs.
CODE = "code/count.sh"
#: ``run(command, inputs=..., outputs=..., batch=..., message=...)`` -> ``reproman.api.run``'s result.
Runner = Callable[..., Any]


# -- commands -----------------------------------------------------------------------
def sh(cwd: Path | str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command in ``cwd``; with ``check`` a failure is an AssertionError showing its output."""
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
    return proc


def git(cwd: Path | str, *args: str) -> str:
    return sh(cwd, "git", *args).stdout.strip()


def head(ds: Path, sub: str = ".") -> str:
    return git(ds / sub, "rev-parse", "HEAD")


def datalad(cwd: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    return sh(cwd, datalad_command(), *args)


def datalad_command() -> str:
    """``datalad`` beside this Python (a virtualenv not on PATH), else the one on PATH."""
    import sys

    beside = os.path.join(os.path.dirname(sys.executable), "datalad")
    return beside if os.path.exists(beside) else "datalad"


# -- the dataset ----------------------------------------------------------------------
def make_yoda(path: Path, inputs: int = INPUTS) -> Path:
    """Create the YODA hierarchy at ``path`` (about 5 s; copy it with :func:`copy_dataset`)."""
    datalad(path.parent, "create", "-c", "yoda", str(path))
    (path / "code" / "count.sh").write_text(COUNT_SCRIPT)
    datalad(path, "create", "-d", ".", "inputs")
    for i in range(inputs):
        (path / "inputs" / f"s{i:02d}.csv").write_text("a,b\n" + "".join(f"{i},{j}\n" for j in range(i % 3 + 1)))
    datalad(path, "create", "-d", ".", "outputs")
    datalad(path, "create", "-d", "outputs", "outputs/derived")
    (path / "outputs" / "derived" / "ref.csv").write_text("x\ny\nz\n")
    datalad(path, "save", "-r", "-m", "code, inputs and outputs")
    assert_clean(path)
    return path


def copy_dataset(template: Path, dest: Path) -> Path:
    """A copy of a dataset made by :func:`make_yoda` (``cp -a``: annex, subdatasets and all)."""
    shutil.copytree(template, dest, symlinks=True)
    return dest


def rows(path: Path) -> int:
    """The line count ``count.sh`` wrote."""
    return int(path.read_text().split()[0])


def expected_rows(name: str) -> int:
    """Lines of ``inputs/<name>.csv`` as :func:`make_yoda` wrote it."""
    return int(name[1:]) % 3 + 2


def assert_clean(ds: Path) -> None:
    """``datalad status -r`` reports nothing: every dataset saved, every subdataset state recorded."""
    out = sh(ds, datalad_command(), "-f", "json", "status", "-r").stdout
    states = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    unclean = [f"{r.get('state')}: {os.path.relpath(r['path'], ds)}" for r in states if r.get("state") != "clean"]
    assert not unclean, f"datalad status in {ds}: {unclean}"


def commits_since(ds: Path, base: str, sub: str = ".") -> list[str]:
    return git(ds / sub, "rev-list", f"{base}..HEAD").split()


def record(ds: Path, job: JobSpec) -> Path:
    return ds / ".reproman" / "jobs" / job.resource_name / job.jobid


def is_run_record(ds: Path, rev: str = "HEAD") -> bool:
    return git(ds, "log", "-1", "--format=%B", rev).startswith("[DATALAD RUNCMD]")


def _heads(ds: Path) -> dict[str, str]:
    return {sub: head(ds, sub) for sub in (".", "inputs", "outputs", "outputs/derived")}


def _one_commit_each(ds: Path, before: dict[str, str], changed: Sequence[str]) -> None:
    """Exactly one new commit in the top dataset and in each changed subdataset, none elsewhere."""
    for sub, old in before.items():
        new = commits_since(ds, old, sub)
        if sub == "." or sub in changed:
            assert len(new) == 1, f"{sub}: {len(new)} commits since {old[:10]}: {new}"
            assert git(ds / sub, "rev-parse", "HEAD~1") == old, f"{sub} does not continue from {old[:10]}"
        else:
            assert new == [], f"{sub} has commits it should not: {new}"


# -- the checks -------------------------------------------------------------------------
def single_job(ds: Path, run: Runner, orchestrator: str) -> Any:
    """One job reading inputs in subdatasets (one two levels deep) and writing into both output levels."""
    before = _heads(ds)
    result = run(
        "sh code/count.sh inputs/s00.csv outputs/summary.txt && "
        "sh code/count.sh outputs/derived/ref.csv outputs/derived/ref-count.txt",
        inputs=[CODE, "inputs/s00.csv", "outputs/derived/ref.csv"],
        outputs=["outputs/summary.txt", "outputs/derived/ref-count.txt"],
        message="count in subdatasets",
    )
    assert result.status.ok, result.failed
    assert rows(ds / "outputs" / "summary.txt") == expected_rows("s00")
    assert rows(ds / "outputs" / "derived" / "ref-count.txt") == 3
    _one_commit_each(ds, before, ["outputs", "outputs/derived"])
    assert "count in subdatasets" in git(ds, "log", "-1", "--format=%B")
    assert git(ds, "rev-parse", f"refs/reproman/{result.job.jobid}") == head(ds)
    assert (record(ds, result.job) / "status.0").read_text().strip() == "succeeded 0"
    assert is_run_record(ds) == orchestrator.endswith("-run")
    assert_clean(ds)
    return result


def batch(ds: Path, run: Runner, orchestrator: str, n: int = INPUTS) -> Any:
    """``n`` subjobs writing two levels deep: one commit per changed dataset, all outputs here."""
    names = [f"s{i:02d}" for i in range(n)]
    before = _heads(ds)
    result = run(
        "sh code/count.sh inputs/{p[s]}.csv outputs/derived/{p[s]}.txt",
        batch=[f"s={','.join(names)}"],
        inputs=[CODE, "inputs/{p[s]}.csv"],
        outputs=["outputs/derived/{p[s]}.txt"],
        message=f"batch of {n}",
    )
    assert result.job.n_subjobs == n and result.status.ok, result.failed
    for name in names:
        assert rows(ds / "outputs" / "derived" / f"{name}.txt") == expected_rows(name), name
    _one_commit_each(ds, before, ["outputs", "outputs/derived"])
    assert sorted(p.name for p in record(ds, result.job).glob("status.*")) == sorted(f"status.{i}" for i in range(n))
    assert is_run_record(ds) == orchestrator.endswith("-run")
    assert_clean(ds)
    return result


def failing_batch(ds: Path, run: Runner, orchestrator: str) -> Any:
    """Three subjobs, the middle one fails after writing its output: recorded, dataset usable."""
    before = _heads(ds)
    result = run(
        "sh code/count.sh inputs/{p[s]}.csv outputs/{p[s]}.txt; test {p[s]} != s01 || exit 3",
        batch=["s=s00,s01,s02"],
        inputs=[CODE, "inputs/{p[s]}.csv"],
        outputs=["outputs/{p[s]}.txt"],
        message="with a failure",
    )
    assert not result.status.ok
    assert [f["index"] for f in result.failed] == [1] and result.failed[0]["exit_code"] == 3
    for name in ("s00", "s01", "s02"):
        assert rows(ds / "outputs" / f"{name}.txt") == expected_rows(name), name
    _one_commit_each(ds, before, ["outputs"])
    assert "1 of 3 subjobs failed" in git(ds, "log", "-1", "--format=%B")
    assert (record(ds, result.job) / "status.1").read_text().strip() == "failed 3"
    assert_clean(ds)
    return result


def rerun(ds: Path, result: Any) -> None:
    """``datalad rerun`` of a job's commit redoes every subjob, also after a failure, and ends clean."""
    commit = git(ds, "rev-parse", f"refs/reproman/{result.job.jobid}")
    assert is_run_record(ds, commit)
    outputs = [ds / o for o in result.job.outputs]
    before = {o: o.read_text() for o in outputs}
    datalad(ds, "rerun", commit)
    for path in outputs:
        after = path.read_text()
        assert after != before[path], f"rerun did not redo the subjob writing {path}"
        assert after.split()[0] == before[path].split()[0], path
    assert_clean(ds)
