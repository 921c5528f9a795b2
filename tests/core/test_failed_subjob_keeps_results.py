"""A subjob that did not succeed never replaces a file the user already had (trial O, finding 1).

Its partial output (an empty or half-written file) used to land over the
user's good result, silently. Now the local file stays, the subjob's
version goes to ``.reproman/jobs/<resource>/<jobid>/fetched/`` and one
warning line names it; new files and the files of subjobs that succeeded
land as before. Also: ``jobs --fetch`` of a job whose files were freed says
it cannot fetch, with a non-zero exit (finding 9).

Real local resource, ``plain`` orchestrator, the CLI as a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from reproman.jobs.registry import Registry
from reproman.testing.cli import run_cli

#: The trial's command: every subjob truncates its output first; only i=1 then writes a result.
PARTIAL = "mkdir -p o; : > o/{p[i]}; test {p[i]} = 1 || exit 1; echo new > o/{p[i]}"


def _good_results(workdir: Path) -> None:
    (workdir / "o").mkdir()
    for i in (1, 2, 3):
        (workdir / "o" / str(i)).write_text(f"good result {i}\n")


def _fetched(workdir: Path, jobid: str, rel: str) -> Path:
    return workdir / ".reproman" / "jobs" / "local" / jobid / "fetched" / rel


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line and "kept your" in line]


def test_failed_subjobs_keep_the_good_files_already_there(workdir: Path) -> None:
    _good_results(workdir)
    result = run_cli(["run", "--follow", "--bp", "i=1..3", "-o", "o/{p[i]}", "sh", "-c", PARTIAL])
    assert result.returncode == 1, result.stderr
    jobid = result.stdout.split()[0]
    assert (workdir / "o" / "1").read_text() == "new\n", "a succeeded subjob's output lands as before"
    for i in (2, 3):
        assert (workdir / "o" / str(i)).read_text() == f"good result {i}\n", result.stderr
        assert _fetched(workdir, jobid, f"o/{i}").read_bytes() == b"", "the failed subjob's version is kept aside"
    warnings = _warnings(result.stderr)
    assert len(warnings) == 2, result.stderr
    assert f"job {jobid}: kept your o/2 unchanged: subjob i=2 failed" in warnings[0]
    assert str(_fetched(workdir, jobid, "o/2")) in warnings[0]
    # Not also called an edit made after submission, nor offered to --overwrite.
    assert "changed here after" not in result.stderr and "--overwrite" not in result.stderr
    kept = Registry().load(jobid).extra["kept"]
    assert sorted((k["local"], k["subjob"], k["subjob_ended"]) for k in kept) == [
        (str(workdir / "o" / "2"), "i=2", "failed"), (str(workdir / "o" / "3"), "i=3", "failed")]
    # The record's checksums describe what the job made, here kept aside: no mismatch keeps files on the resource.
    assert "differ" not in result.stderr


def test_overwrite_does_not_put_a_failures_output_in_place(workdir: Path) -> None:
    """``--overwrite`` replaces your edits made since submission, as documented; not your results with a failure's."""
    _good_results(workdir)
    submitted = run_cli(["run", "--bp", "i=1..3", "-o", "o/{p[i]}", "sh", "-c", PARTIAL])
    assert submitted.returncode == 0, submitted.stderr
    jobid = submitted.stdout.split()[0]
    deadline = time.monotonic() + 60
    while (fetched := run_cli(["jobs", "--json", "--fetch", "--overwrite", jobid])).returncode == 3:
        assert time.monotonic() < deadline, fetched.stderr
        time.sleep(0.3)
    assert fetched.returncode == 1, fetched.stderr
    (row,) = json.loads(fetched.stdout)
    assert sorted(k["subjob"] for k in row["kept"]) == ["i=2", "i=3"]
    assert [(workdir / "o" / str(i)).read_text() for i in (1, 2, 3)] == ["new\n", "good result 2\n",
                                                                        "good result 3\n"]


def test_dot_output_in_a_git_repository_keeps_the_input_a_failed_command_emptied(workdir: Path) -> None:
    subprocess.run(["git", "init", "-q", "."], check=True)
    (workdir / "data.csv").write_text("a,b\n1,2\n")
    result = run_cli(["run", "--follow", "-i", "data.csv", "-o", ".",
                      "sh", "-c", ": > data.csv; echo new > new.txt; exit 2"])
    assert result.returncode == 1, result.stderr
    jobid = result.stdout.split()[0]
    assert (workdir / "data.csv").read_text() == "a,b\n1,2\n"
    assert _fetched(workdir, jobid, "data.csv").read_bytes() == b""
    assert (workdir / "new.txt").read_text() == "new\n", "a file that was not there lands as before"
    warnings = _warnings(result.stderr)
    assert len(warnings) == 1 and "kept your data.csv unchanged: its command failed" in warnings[0], result.stderr


def test_a_directory_shared_with_a_failed_subjob_keeps_every_existing_file(workdir: Path) -> None:
    """``-o out`` for all subjobs: what lands cannot be told apart by subjob, so one failure guards the whole
    directory (conservative); new files still arrive."""
    out = workdir / "out"
    out.mkdir()
    (out / "a").write_text("old a\n")
    (out / "b").write_text("old b\n")
    result = run_cli(["run", "--follow", "--jp", "num_processes=1", "--bp", "i=a,b", "-o", "out",
                      "sh", "-c", 'mkdir -p out; echo new > out/{p[i]}; echo {p[i]} > out/new-{p[i]}; '
                                  'test {p[i]} = a'])
    assert result.returncode == 1, result.stderr
    jobid = result.stdout.split()[0]
    assert (out / "a").read_text() == "old a\n" and (out / "b").read_text() == "old b\n", result.stderr
    assert (out / "new-a").read_text() == "a\n" and (out / "new-b").read_text() == "b\n"
    assert _fetched(workdir, jobid, "out/a").read_text() == "new\n"
    warnings = _warnings(result.stderr)
    assert len(warnings) == 2 and all("subjob i=b failed" in w for w in warnings), result.stderr


def test_a_failed_subjobs_new_file_and_an_identical_one_land_as_before(workdir: Path) -> None:
    (workdir / "same.txt").write_text("same\n")
    result = run_cli(["run", "--follow", "-o", "same.txt", "-o", "fresh.txt",
                      "sh", "-c", "echo same > same.txt; echo partial > fresh.txt; exit 5"])
    assert result.returncode == 1, result.stderr
    jobid = result.stdout.split()[0]
    assert (workdir / "fresh.txt").read_text() == "partial\n"
    assert (workdir / "same.txt").read_text() == "same\n"
    assert not _warnings(result.stderr) and "kept" not in Registry().load(jobid).extra


def test_rerun_failed_leaves_the_good_file_and_keeps_its_own_version_aside(workdir: Path) -> None:
    """After the fix the user's file is still the good one; a rerun never replaces existing outputs."""
    _good_results(workdir)
    first = run_cli(["run", "--follow", "--bp", "i=1..3", "-o", "o/{p[i]}", "sh", "-c", PARTIAL])
    assert first.returncode == 1, first.stderr
    rerun = run_cli(["rerun", "--failed", "--follow", first.stdout.split()[0]])
    assert rerun.returncode == 1, rerun.stderr  # the same command fails again
    assert (workdir / "o" / "2").read_text() == "good result 2\n"
    # Said once each: by the failure warning, not again as a kept original.
    assert rerun.stderr.count(str(workdir / "o" / "2")) == 0 and len(_warnings(rerun.stderr)) == 2, rerun.stderr


def test_fetch_again_after_the_files_were_freed_fails_in_one_line(workdir: Path) -> None:
    """Trial O, 9: ``jobs --fetch`` said "fetched already" and exited 0 while a removed result stayed missing."""
    made = run_cli(["run", "--follow", "-o", "r.txt", "sh", "-c", "echo r > r.txt"])
    assert made.returncode == 0, made.stderr
    jobid = made.stdout.split()[0]
    (workdir / "r.txt").unlink()
    again = run_cli(["jobs", "--fetch", jobid])
    assert again.returncode == 1, again.stderr
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot fetch job {jobid} again" in lines[0] and "freed" in lines[0], lines
    assert "Traceback" not in again.stderr and not (workdir / "r.txt").exists()
    # Without --fetch, 'reproman jobs JOB' still just says how the job ended and that it was fetched.
    said = run_cli(["jobs", jobid])
    assert said.returncode == 0 and "fetched to" in said.stderr, said.stderr


def test_cancelled_subjobs_keep_the_good_files_already_there(workdir: Path) -> None:
    """A cancelled subjob left what it had begun (here: emptied files); cancelling must not cost the results."""
    _good_results(workdir)
    submitted = run_cli(["run", "--jp", "num_processes=2", "--bp", "i=1,2", "-o", "o/{p[i]}",
                         "sh", "-c", "mkdir -p o; : > o/{p[i]}; sleep 60"])
    assert submitted.returncode == 0, submitted.stderr
    jobid = submitted.stdout.split()[0]
    remote = Path(Registry().load(jobid).working_directory) / "o"
    deadline = time.monotonic() + 60
    while not ((remote / "1").exists() and (remote / "2").exists()):
        assert time.monotonic() < deadline, "the subjobs never started"
        time.sleep(0.2)
    assert run_cli(["jobs", "--cancel", jobid]).returncode == 0
    while (fetched := run_cli(["jobs", jobid])).returncode == 3:
        assert time.monotonic() < deadline, fetched.stderr
        time.sleep(0.3)
    assert fetched.returncode == 1, fetched.stderr
    assert [(workdir / "o" / str(i)).read_text() for i in (1, 2)] == ["good result 1\n", "good result 2\n"]
    warnings = _warnings(fetched.stderr)
    assert len(warnings) == 2 and "subjob i=1 was cancelled" in warnings[0], fetched.stderr
