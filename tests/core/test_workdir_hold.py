"""Two jobs never share a working directory the user named (trial O, finding 4).

Real ``reproman`` commands on the built-in local resource; the hold is the
file ``<working directory>/.reproman/held-by`` a second machine would see.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from reproman.jobs.registry import Registry
from reproman.jobs.workdir_hold import HOLDER
from reproman.testing.cli import run_cli


def _submit(project: Path, wd: Path, word: str, *extra: str) -> tuple[int, str, str]:
    done = run_cli(["run", *extra, "--jp", f"working_directory={wd}", "--bp", "i=1..3", "-o", "o/{p[i]}",
                    "sh", "-c", f"mkdir -p o; sleep 1; echo {word} {{p[i]}} > o/{{p[i]}}"], cwd=project)
    return done.returncode, done.stdout, done.stderr


def _follow(project: Path, jobid: str) -> None:
    done = run_cli(["jobs", "--follow", jobid], cwd=project)
    assert done.returncode == 0, done.stderr
    assert Registry().load(jobid).was_fetched


def test_a_second_job_in_a_held_working_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    project, wd = tmp_path / "project", tmp_path / "shared wd"
    project.mkdir()
    rc, out, err = _submit(project, wd, "A")
    assert rc == 0, err
    first = out.strip()
    before = set(Registry().jobids())
    rc, out, err = _submit(project, wd, "B")
    assert rc == 1, (out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"working directory {wd} is in use by job {first} (not fetched yet)" in lines[0], err
    assert f"'reproman jobs {first}'" in lines[0] and f"'reproman jobs --delete {first}'" in lines[0], err
    assert set(Registry().jobids()) == before, "the refused job left a record"
    # A's results and A's checksums are A's content.
    _follow(project, first)
    record = Registry().load(first)
    for i in (1, 2, 3):
        assert (project / "o" / str(i)).read_text() == f"A {i}\n"
        assert record.checksums[f"o/{i}"]["sha256"] == hashlib.sha256(f"A {i}\n".encode()).hexdigest()
    # Fetched and freed: the directory is free again, and its content stays (the user named it).
    assert not (wd / HOLDER).exists() and (wd / "o" / "1").exists()
    rc, out, err = _submit(project, wd, "C", "--follow")
    assert rc == 0, err
    assert (project / "o" / "1").read_text() == "C 1\n"


def test_a_hold_whose_job_directory_is_gone_is_taken_over_with_a_word(tmp_path: Path) -> None:
    """A holder deleted from another machine (its job directory gone) no longer holds the directory."""
    project, wd = tmp_path / "project", tmp_path / "wd"
    project.mkdir()
    (wd / ".reproman").mkdir(parents=True)
    (wd / HOLDER).write_text(f"20200101-000000-abcdef\n{tmp_path / 'gone'}\nother\n")
    rc, out, err = _submit(project, wd, "A", "--follow")
    assert rc == 0, err
    assert "was held by job 20200101-000000-abcdef, whose job directory is gone" in err, err
    assert (project / "o" / "3").read_text() == "A 3\n"


def test_a_hold_of_a_job_this_machine_does_not_know_is_refused_with_its_way_out(tmp_path: Path) -> None:
    """Another machine's running job: its job directory exists; the hint names the hold to remove if it is gone."""
    project, wd = tmp_path / "project", tmp_path / "wd"
    project.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (wd / ".reproman").mkdir(parents=True)
    (wd / HOLDER).write_text(f"20200101-000000-abcdef\n{tmp_path / 'elsewhere'}\nother\n")
    rc, out, err = _submit(project, wd, "A")
    assert rc == 1 and out == "", (out, err)
    assert "in use by job 20200101-000000-abcdef, which was not submitted from here" in err, err
    assert f"remove {wd / HOLDER}" in err and len(err.strip().splitlines()) == 1, err
    assert (wd / HOLDER).read_text().startswith("20200101-000000-abcdef\n"), "the other job's hold was changed"


def test_a_job_fetched_with_keep_remote_lets_the_next_one_in(tmp_path: Path) -> None:
    project, wd = tmp_path / "project", tmp_path / "wd"
    project.mkdir()
    rc, out, err = _submit(project, wd, "A", "--follow", "--keep-remote")
    assert rc == 0, err
    first = out.split()[0]
    assert (wd / HOLDER).read_text().startswith(first), "keep-remote fetch dropped the hold"
    rc, out, err = _submit(project, wd, "B", "--follow")
    assert rc == 0, err
    assert "takes it over" in err, err
    assert (project / "o" / "2").read_text() == "B 2\n"
    # Trial P, 1: A's files there are B's now; fetching A again brought B's files back as A's.
    (project / "o" / "2").unlink()
    again = run_cli(["jobs", "--fetch", first], cwd=project)
    assert again.returncode == 1 and f"taken over by job {out.split()[0]}" in again.stderr, again.stderr
    assert not (project / "o" / "2").exists()
    sums = Registry().load(first).checksums
    assert sums["o/2"]["sha256"] == hashlib.sha256(b"A 2\n").hexdigest(), sums


def test_dot_output_of_a_named_working_directory_neither_fetches_nor_records_the_hold(tmp_path: Path) -> None:
    project, wd = tmp_path / "project", tmp_path / "wd"
    project.mkdir()
    done = run_cli(["run", "--follow", "--jp", f"working_directory={wd}", "-o", ".", "sh", "-c", "echo x > dot.txt"],
                   cwd=project)
    assert done.returncode == 0, done.stderr
    assert "not fetched" not in done.stderr, done.stderr
    assert not (project / ".reproman" / "held-by").exists()
    shown = run_cli(["jobs", "--show", "--json", done.stdout.split()[0]], cwd=project)
    data = json.loads(shown.stdout)
    record = data[0] if isinstance(data, list) else data
    assert set(record["checksums"]) == {"./dot.txt"}, record["checksums"]


def test_deleting_the_holder_frees_the_directory_and_keeps_its_files(tmp_path: Path) -> None:
    import time

    project, wd = tmp_path / "project", tmp_path / "wd"
    project.mkdir()
    done = run_cli(["run", "--jp", f"working_directory={wd}", "-o", "out.txt", "sh", "-c", "echo A > out.txt"],
                   cwd=project)
    assert done.returncode == 0, done.stderr
    jobid = done.stdout.strip()
    completed = Path(Registry().load(jobid).job_dir) / "completed"
    deadline = time.monotonic() + 60
    while not completed.exists():
        assert time.monotonic() < deadline, "the job never finished"
        time.sleep(0.1)
    deleted = run_cli(["jobs", "--delete", jobid], cwd=project)
    assert deleted.returncode == 0, deleted.stderr
    assert not (wd / HOLDER).exists() and (wd / "out.txt").read_text() == "A\n"
    again = run_cli(["run", "--follow", "--jp", f"working_directory={wd}", "-o", "out.txt", "sh", "-c",
                     "echo B > out.txt"], cwd=project)
    assert again.returncode == 0, again.stderr
    assert (project / "out.txt").read_text() == "B\n"


def test_a_claim_racing_a_fresh_hold_never_takes_it_as_stale(tmp_path: Path) -> None:
    """Trial R, 2: B read A's hold before A's job directory existed, took it over as stale, and both ran.

    A real shell runs both claims; ``ln`` is slowed (a wrapper first on PATH) for A only, so B claims
    between A's hold and whatever A's claim does after it.
    """
    import os
    import subprocess
    import time

    from reproman.jobs.spec import JobSpec
    from reproman.jobs.workdir_hold import claim_script

    wd, jobs = tmp_path / "wd", tmp_path / "root" / ".reproman" / "jobs" / "local"
    specs = [JobSpec(jobid=jobid, command="true", resource_name="local", resource_type="shell", submitter="local",
                     orchestrator="plain", working_directory=str(wd), job_dir=str(jobs / jobid))
             for jobid in ("20261202-000000-aaaaaa", "20261202-000000-bbbbbb")]
    slow = tmp_path / "slow-bin"
    slow.mkdir()
    (slow / "ln").write_text(f'#!/bin/sh\n{subprocess.check_output(["sh", "-c", "command -v ln"], text=True).strip()} '
                             '"$@" && : > "$0.done" && sleep 3\n')
    (slow / "ln").chmod(0o755)
    first = subprocess.Popen(["sh", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PATH": f"{slow}:{os.environ['PATH']}"})
    assert first.stdin is not None
    first.stdin.write(claim_script(specs[0]))
    first.stdin.close()
    deadline = time.monotonic() + 20
    while not (slow / "ln.done").exists():
        assert time.monotonic() < deadline and first.poll() is None, "the first claim never linked its hold"
        time.sleep(0.05)
    second = subprocess.run(["sh", "-s"], input=claim_script(specs[1]), capture_output=True, text=True)
    first.wait(timeout=20)
    assert first.stdout is not None and first.stdout.read() == ""
    assert second.returncode == 0 and second.stdout.split() == ["HELD", specs[0].jobid], second
    assert (wd / HOLDER).read_text().splitlines()[0] == specs[0].jobid
    assert not Path(specs[1].job_dir).exists(), "the refused claim left its job directory"
