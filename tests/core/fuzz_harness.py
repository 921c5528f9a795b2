"""The fuzz suite's harness: run the CLI in-process on a sandboxed user, check the outcome.

Running ``reproman.cli.main.main`` in the test process (not a subprocess)
makes an example cost milliseconds instead of an interpreter start, which is
what lets the suite try hundreds of argument lists and files in CI's couple
of minutes. Each example:

* starts from fresh configuration and plugin state (nothing cached from the
  previous example),
* runs under a wall-clock limit (SIGALRM), so a hang is a failure, not a
  stuck CI job,
* must end cleanly: exit 0, or a non-zero exit with exactly one line on
  stderr and no traceback; any exception escaping ``main`` is a failure
  with its traceback,
* must leave every file it was not meant to change as it was (compared by
  checksum).

The sandbox is the isolated user of ``tests/conftest.py`` plus the
``workdir`` fixture's HOME and working directory, so nothing outside the
test's temporary directory is touched.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
from hostile_helpers import checksums

from reproman.cli.main import main
from reproman.config import reset_config
from reproman.paths import config_dir, data_dir
from reproman.plugins.manager import reset_plugin_manager

#: Examples per Hypothesis test; REPROMAN_FUZZ_SCALE=10 tries ten times as many.
SCALE = float(os.environ.get("REPROMAN_FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


class FuzzTimeout(BaseException):
    """Raised in the main thread when an example overruns (a BaseException: no handler eats it)."""


@attrs.frozen
class Outcome:
    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        argv = [w if len(w) <= 60 else f"{w[:40]}...({len(w)} chars)" for w in self.argv]
        return f"argv={argv!r} exit={self.code}\nstderr={self.stderr[:2000]!r}\nstdout={self.stdout[:500]!r}"


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise FuzzTimeout(f"example ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def invoke(argv: Sequence[str], timeout: float = 30) -> Outcome:
    """``reproman ARGV`` in this process, as a fresh process would see it."""
    reset_config()
    reset_plugin_manager()
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr, sys.stdin
    sys.stdout, sys.stderr, sys.stdin = out, err, io.StringIO()
    try:
        with time_limit(timeout), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")  # what a real process prints on stderr
            try:
                code = main(list(argv))
            except SystemExit as exc:
                if isinstance(exc.code, str):
                    err.write(exc.code + "\n")
                    code = 1
                else:
                    code = int(exc.code or 0)
        for warning in caught:
            err.write(warnings.formatwarning(warning.message, warning.category, warning.filename, warning.lineno))
    finally:
        sys.stdout, sys.stderr, sys.stdin = saved
    return Outcome(tuple(argv), code, out.getvalue(), err.getvalue())


#: Exit codes that are answers, not failures: ``diff`` exits 3 when the specs differ.
#: Exit codes that answer a question rather than report an error: diff's "different", jobs' "some subjobs
#: failed" (1) and "not finished" (3). Their stderr may carry information (which subjobs failed), never a traceback.
ANSWERS = {"diff": {3}, "jobs": {1, 3}, "isdir": {1}}  # execute --internal isdir: 1 is "no"


def assert_clean(outcome: Outcome) -> None:
    """Exit 0, or a non-zero exit with one line on stderr and no traceback."""
    assert "Traceback" not in outcome.stderr, outcome.describe()
    command = next((w for w in outcome.argv if w in ANSWERS), None)
    if command is not None and outcome.code in ANSWERS[command]:
        return
    if outcome.code != 0:
        assert outcome.stderr.count("\n") == 1 and outcome.stderr.endswith("\n"), outcome.describe()
        assert outcome.stderr.startswith("reproman"), outcome.describe()


def watched(workdir: Path) -> list[Path]:
    """The user's ReproMan files and working directory (HOME holds the resource side)."""
    return [config_dir(), data_dir(), workdir]


def snapshot(workdir: Path) -> dict[str, str]:
    return checksums(*[p for p in watched(workdir) if p.exists()])


def assert_unchanged(before: dict[str, str], workdir: Path, outcome: Outcome) -> None:
    """Every file that existed before has its old content (new files are checked by callers)."""
    after = snapshot(workdir)
    changed = sorted(path for path, digest in before.items() if after.get(path) != digest)
    assert not changed, f"{outcome.describe()}\nchanged or removed: {changed}"


def new_job_records(before: dict[str, str]) -> list[str]:
    jobs = data_dir() / "jobs"
    if not jobs.is_dir():
        return []
    return [str(p) for p in jobs.glob("*.yaml") if str(p) not in before]
