"""What a subjob that did not succeed left is neither the user's file nor a result (trial, failkeep2).

1. A failed subjob's output where no local file was lands in place (nothing
   to keep). A ``rerun --failed`` that then succeeds used to take it for the
   user's file: the good result went aside and the failure's output stayed.
   Now a fetch lists such files, and a later fetch replaces one that is
   still exactly as it landed; one the user changed since stays, as always.
2. The kept-file warning of a directory output shared by several subjobs
   named the failed one as the writer of every file in it, and a lost
   subjob's kept entry read "failed".

Real local resource, ``plain`` orchestrator, the CLI as a user runs it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from reproman.jobs.commands import RunResult
from reproman.jobs.registry import Registry
from reproman.testing.cli import run_cli


def _fetched(workdir: Path, jobid: str, rel: str) -> Path:
    return workdir / ".reproman" / "jobs" / "local" / jobid / "fetched" / rel


def _fails_until(flag: Path, body: str) -> list[str]:
    """``sh -c`` words: subjob i=1 always succeeds; the others write a partial file and fail until ``flag`` exists.

    The local resource runs in its own working directory: the flag is the test's, by absolute path.
    """
    return ["sh", "-c", f"mkdir -p o; echo partial > o/{{p[i]}}; test {{p[i]}} = 1 || test -e {flag} || exit 1; "
                        f"{body}"]


def _first_run_fails(workdir: Path, *args: str) -> str:
    first = run_cli(["run", "--follow", "--bp", "i=1,2", "-o", "o/{p[i]}", *args])
    assert first.returncode == 1, first.stderr
    jobid = first.stdout.split()[0]
    assert (workdir / "o" / "2").read_text() == "partial\n", "with no local file there, the failure's output lands"
    return jobid


def test_a_rerun_that_succeeds_replaces_the_file_a_failure_left(workdir: Path) -> None:
    jobid = _first_run_fails(workdir, *_fails_until(workdir / "fixed", "echo good > o/{p[i]}"))
    (workdir / "fixed").touch()
    rerun = run_cli(["-l", "info", "rerun", "--failed", "--follow", jobid])
    assert rerun.returncode == 0, rerun.stderr
    new = rerun.stdout.split()[0]
    assert (workdir / "o" / "2").read_text() == "good\n", rerun.stderr
    assert not _fetched(workdir, new, "o/2").exists()
    assert "kept" not in Registry().load(new).extra and "kept the local" not in rerun.stderr, rerun.stderr
    assert f"replaced o/2, which subjob i=2 of job {jobid} had left there" in rerun.stderr, rerun.stderr


def test_a_failure_again_replaces_the_earlier_failures_file_and_a_success_then_replaces_it(workdir: Path) -> None:
    """Nobody's result is guarded: the latest attempt's output stands (not "your o/2"), and is listed in turn."""
    attempt = workdir / "attempt"
    attempt.write_text("attempt 1\n")
    words = ["sh", "-c", f"mkdir -p o; cat {attempt} > o/{{p[i]}}; test {{p[i]}} = 1 || test -e {workdir / 'fixed'} "
                         "|| exit 1; echo good > o/{p[i]}"]
    first = run_cli(["run", "--follow", "--bp", "i=1,2", "-o", "o/{p[i]}", *words])
    assert first.returncode == 1, first.stderr
    assert (workdir / "o" / "2").read_text() == "attempt 1\n"
    attempt.write_text("attempt 2\n")
    again = run_cli(["rerun", "--failed", "--follow", first.stdout.split()[0]])
    assert again.returncode == 1, again.stderr
    assert (workdir / "o" / "2").read_text() == "attempt 2\n"
    assert "kept your" not in again.stderr and "kept" not in Registry().load(again.stdout.split()[0]).extra
    (workdir / "fixed").touch()
    last = run_cli(["rerun", "--failed", "--follow", again.stdout.split()[0]])
    assert last.returncode == 0, last.stderr
    assert (workdir / "o" / "2").read_text() == "good\n", last.stderr


def test_a_file_changed_since_the_failure_left_it_stays(workdir: Path) -> None:
    """An edit keeps the file the user's, even one of the same size with its time put back (the content tells)."""
    jobid = _first_run_fails(workdir, *_fails_until(workdir / "fixed", "echo good > o/{p[i]}"))
    local = workdir / "o" / "2"
    before = local.stat()
    with open(local, "r+b") as handle:  # in place: the same inode, the same size
        handle.write(b"edited\n!")
    os.utime(local, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (local.stat().st_ino, local.stat().st_size, local.stat().st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns)
    (workdir / "fixed").touch()
    rerun = run_cli(["rerun", "--failed", "--follow", jobid])
    assert rerun.returncode == 0, rerun.stderr
    new = rerun.stdout.split()[0]
    assert local.read_bytes() == b"edited\n!"
    assert _fetched(workdir, new, "o/2").read_text() == "good\n"
    assert f"kept the local {local}" in rerun.stderr, rerun.stderr


def test_a_new_directory_a_failure_left_is_replaced_file_by_file(workdir: Path) -> None:
    """The failed subjob's directory output landed whole (one rename); its files are listed all the same."""
    flag = workdir / "fixed"
    first = run_cli(["run", "--follow", "-o", "out", "sh", "-c",
                     f"mkdir -p out/deep; echo partial > out/a; echo partial > out/deep/b; test -e {flag} || exit 3; "
                     "echo good > out/a; echo good > out/deep/b"])
    assert first.returncode == 1, first.stderr
    (workdir / "out" / "deep" / "b").write_text("mine\n")  # the user's now
    flag.touch()
    rerun = run_cli(["rerun", "--follow", first.stdout.split()[0]])
    assert rerun.returncode == 0, rerun.stderr
    assert (workdir / "out" / "a").read_text() == "good\n", rerun.stderr
    assert (workdir / "out" / "deep" / "b").read_text() == "mine\n"


def test_a_shared_directory_names_no_subjob_as_the_writer_of_a_kept_file(workdir: Path) -> None:
    """``-o out`` for both subjobs: out/a is subjob a's (which succeeded), yet b's failure guards it."""
    out = workdir / "out"
    out.mkdir()
    (out / "a").write_text("old a\n")
    (out / "b").write_text("old b\n")
    result = run_cli(["run", "--follow", "--jp", "num_processes=1", "--bp", "i=a,b", "-o", "out",
                      "sh", "-c", "mkdir -p out; echo new > out/{p[i]}; test {p[i]} = a"])
    assert result.returncode == 1, result.stderr
    jobid = result.stdout.split()[0]
    warnings = [line for line in result.stderr.splitlines() if "kept your" in line]
    assert len(warnings) == 2, result.stderr
    for name, line in zip(("a", "b"), sorted(warnings)):
        assert f"kept your out/{name} unchanged: it is in output out, where 2 subjobs write, and subjob i=b " \
               f"failed; the job's version (from any of them) is in {_fetched(workdir, jobid, 'out/' + name)}" in line
        assert "what it left" not in line
    kept = Registry().load(jobid).extra["kept"]
    assert [(k["subjob"], k["shared_by"], k["output"]) for k in kept] == [("i=b", 2, "out")] * 2


def test_a_lost_subjobs_kept_file_says_lost(workdir: Path) -> None:
    """Subjob i=2 kills the worker that would write its final status: lost, not "failed", in --json too."""
    (workdir / "o").mkdir()
    for i in (1, 2):
        (workdir / "o" / str(i)).write_text(f"good {i}\n")
    submitted = run_cli(["run", "--jp", "num_processes=1", "--bp", "i=1,2", "-o", "o/{p[i]}", "sh", "-c",
                         "mkdir -p o; : > o/{p[i]}; if [ {p[i]} = 2 ]; then kill -9 $PPID; fi; echo new > o/{p[i]}"])
    assert submitted.returncode == 0, submitted.stderr
    jobid = submitted.stdout.split()[0]
    deadline = time.monotonic() + 60
    while (fetched := run_cli(["jobs", "--json", "--fetch", jobid])).returncode == 3:
        assert time.monotonic() < deadline, fetched.stderr
        time.sleep(0.3)
    assert fetched.returncode == 1, fetched.stderr
    (row,) = json.loads(fetched.stdout)
    assert [(k["subjob"], k["subjob_ended"]) for k in row["kept"]] == [("i=2", "lost")], row
    assert "kept your o/2 unchanged: subjob i=2 was lost" in fetched.stderr, fetched.stderr
    assert (workdir / "o" / "2").read_text() == "good 2\n"


def test_files_past_the_hashing_budget_stay_kept_as_before(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not hashed, not listed: such a file stays in place and the result goes aside (nothing lost, as before).

    The budget is lowered in-process (the real one is 4 GiB) so that two small files exceed it.
    """
    from reproman import api
    from reproman.jobs import failure_files

    monkeypatch.setattr(failure_files, "HASH_BUDGET", 10)
    flag = workdir / "fixed"
    first = api.run(["sh", "-c", f"echo partial > a.txt; echo partial > b.txt; test -e {flag} || exit 1; "
                                 "echo good > a.txt; echo good > b.txt"], outputs=["a.txt", "b.txt"], follow=True)
    assert isinstance(first, RunResult) and first.status is not None and not first.status.ok
    flag.touch()
    rerun = api.rerun(first.job.jobid, failed=True, follow=True)
    assert rerun.status is not None and rerun.status.ok
    assert (workdir / "a.txt").read_text() == "good\n", "within the budget: listed, then replaced"
    assert (workdir / "b.txt").read_text() == "partial\n"
    assert _fetched(workdir, rerun.job.jobid, "b.txt").read_text() == "good\n"
