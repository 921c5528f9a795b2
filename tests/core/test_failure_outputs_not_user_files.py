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
import time
from pathlib import Path

from reproman.jobs.registry import Registry
from reproman.testing.cli import run_cli


def _fetched(workdir: Path, jobid: str, rel: str) -> Path:
    return workdir / ".reproman" / "jobs" / "local" / jobid / "fetched" / rel


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
        assert f"kept your out/{name} unchanged: it is in output out, which 2 subjobs write, and subjob i=b " \
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
