"""The orchestrator contract (result safety included) on the built-in local resource with the plain orchestrator."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from reproman.jobs.commands import RunResult, run
from reproman.jobs.registry import Registry
from reproman.testing.orchestrator_contract import OrchestratorContract


class TestLocalPlainResults(OrchestratorContract):
    """shell resource, local submitter, plain orchestrator: what `pip install reproman-core` gives."""

    def test_a_kept_edit_under_dot_output_is_no_checksum_mismatch(self, project: Path, runner: Any) -> None:
        """``-o .`` names files ``./a.txt``; the kept local edit must not read as a corrupted transfer."""
        (project / "a.txt").write_text("before\n")
        result = runner("sleep 2; echo job > a.txt", outputs=["."])
        (project / "a.txt").write_text("edited while the job ran\n")
        self.wait(result)
        self.fetch(result.job.jobid)
        record = Registry().load(result.job.jobid)
        assert record.extra["verified"]["mismatched"] == []
        assert record.extra["verified"]["matched"] >= 1
        assert record.extra.get("remote_released") is True
        assert (project / "a.txt").read_text() == "edited while the job ran\n"


def test_a_mismatch_keeps_the_files_on_the_resource(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When a fetched file differs from the resource's checksum, the resource's copy is not freed."""
    from reproman.jobs import checksums

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    real_verify = checksums.verify

    def altered(*args: Any, **kwargs: Any) -> checksums.Verification:  # a transfer that changed a file
        found = real_verify(*args, **kwargs)
        return checksums.Verification(matched=[], mismatched=[*found.matched, *found.mismatched], absent=found.absent)

    monkeypatch.setattr(checksums, "verify", altered)
    result = run(command="echo job > out.txt", outputs=["out.txt"], follow=True)
    assert isinstance(result, RunResult)
    record = Registry().load(result.job.jobid)
    assert record.extra["verified"]["mismatched"] == ["out.txt"]
    assert not record.extra.get("remote_released")
    assert os.path.exists(os.path.join(result.job.working_directory, "out.txt"))


def _abandoned_staging(where: Path) -> Path:
    """A staging directory made by a real ReproMan process that then died without cleaning up (as under kill -9)."""
    import subprocess
    import sys

    code = ("import os, sys; from pathlib import Path; from reproman.resources.landing import staging_dir; "
            "p = staging_dir([Path(sys.argv[1]) / 'out.txt']); (p / '1').mkdir(); "
            "(p / '1' / 'big.bin').write_bytes(b'x' * 1000); print(p, flush=True); os._exit(0)")
    made = subprocess.run([sys.executable, "-c", code, str(where)], capture_output=True, text=True, check=True)
    return Path(made.stdout.strip())


def test_a_killed_fetch_leaves_no_staging_behind_the_next_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetch killed with -9 cannot clean up; the next fetch into the same place removes what it left."""
    import subprocess

    from reproman.resources import landing

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    abandoned = _abandoned_staging(tmp_path)
    assert abandoned.parent == tmp_path and (abandoned / "1" / "big.bin").exists()
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        host = landing._host()
        busy = tmp_path / f"{landing.STAGING_PREFIX}{host}-{alive.pid}-def456"
        elsewhere = tmp_path / f"{landing.STAGING_PREFIX}otherhost-{dead.pid}-ghi789"
        for directory in (busy, elsewhere):
            (directory / "1").mkdir(parents=True)
            (directory / "1" / "big.bin").write_bytes(b"x" * 1000)
        result = run(command="echo job > out.txt", outputs=["out.txt"], follow=True)
        assert isinstance(result, RunResult) and result.ok
        assert not abandoned.exists()
        assert busy.exists() and elsewhere.exists()  # a running fetch's, and another machine's
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(landing.STAGING_PREFIX)
                    and p not in (busy, elsewhere)]
    finally:
        alive.kill()
        alive.wait()


def test_a_user_directory_named_like_staging_survives_a_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-trial (data loss): a user's directory whose name looks like an abandoned staging directory is the
    user's; only directories ReproMan made (and marked) are ever removed, whatever their name says."""
    import shutil
    import subprocess

    from reproman.resources import landing

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = landing._host()
    mine = tmp_path / f"{landing.STAGING_PREFIX}{host}-{dead.pid}-thesis"
    (mine / "chapters").mkdir(parents=True)
    (mine / "chapters" / "one.tex").write_text("three years of work\n")
    # A copy of a real staging directory, marker and all, is not that directory either.
    copied = tmp_path / f"{landing.STAGING_PREFIX}{host}-{dead.pid}-backup"
    (tmp_path / "elsewhere-made").mkdir()
    shutil.copytree(_abandoned_staging(tmp_path / "elsewhere-made"), copied, symlinks=True)
    (copied / "notes.txt").write_text("mine now\n")
    # A marker that is a symbolic link to a real one proves nothing.
    linked = tmp_path / f"{landing.STAGING_PREFIX}{host}-{dead.pid}-linked"
    real = _abandoned_staging(tmp_path / "elsewhere-made")
    linked.mkdir()
    (linked / landing.STAGING_MARKER).symlink_to(real / landing.STAGING_MARKER)
    (linked / "data.csv").write_text("1,2\n")
    result = run(command="echo job > out.txt", outputs=["out.txt"], follow=True)
    assert isinstance(result, RunResult) and result.ok
    assert (tmp_path / "out.txt").read_text() == "job\n"
    assert (mine / "chapters" / "one.tex").read_text() == "three years of work\n"
    assert (copied / "notes.txt").read_text() == "mine now\n"
    assert (linked / "data.csv").read_text() == "1,2\n"


def test_a_skipped_record_path_is_no_checksum_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-trial: `-o .` writing under .reproman (skipped, never fetched) must not read as a corrupted transfer."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    first = run(command="echo one > one.txt", outputs=["."], follow=True)
    assert isinstance(first, RunResult) and first.ok
    victim = f".reproman/jobs/local/{first.job.jobid}/spec.yaml"
    second = run(command=f"mkdir -p {os.path.dirname(victim)} && echo evil > {victim}; echo two > two.txt",
                 outputs=["."], follow=True)
    assert isinstance(second, RunResult) and second.ok
    record = Registry().load(second.job.jobid)
    assert record.extra["verified"]["mismatched"] == []
    assert record.extra.get("remote_released") is True
    assert (tmp_path / "two.txt").read_text() == "two\n"
    assert "evil" not in (tmp_path / victim).read_text()


def _wait_for_file(path: Path, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.1)


def test_an_output_edited_after_a_keep_remote_fetch_is_kept_on_the_next_fetch(tmp_path: Path) -> None:
    """A local result and the resource's kept copy are two files: the edit stays, the job's version is kept aside.

    (Trial I: the local copy was a hard link to the resource's, so the edit changed both, and the next
    fetch silently found nothing to keep while the job's own output was gone.)
    """
    from reproman.testing.cli import run_cli

    jobid = run_cli(["run", "-o", "r.txt", "sh", "-c", "echo job > r.txt"], cwd=tmp_path).stdout.strip()
    assert run_cli(["jobs", "--follow", "--keep-remote", jobid], cwd=tmp_path).returncode == 0
    assert (tmp_path / "r.txt").read_text() == "job\n"
    with open(tmp_path / "r.txt", "r+") as handle:  # an edit in place: same inode, as an editor or '>' makes
        handle.truncate()
        handle.write("my edit\n")
    refetch = run_cli(["jobs", "--fetch", jobid], cwd=tmp_path)
    assert refetch.returncode == 0, refetch.stderr
    assert (tmp_path / "r.txt").read_text() == "my edit\n"
    kept = tmp_path / ".reproman" / "jobs" / "local" / jobid / "fetched" / "r.txt"
    assert kept.read_text() == "job\n" and "kept" in refetch.stderr + refetch.stdout


def test_a_later_job_in_a_named_working_directory_does_not_change_a_fetched_result(tmp_path: Path) -> None:
    """Job 2 appends, in place, to the file job 1 wrote there: the user's fetched copy of job 1's result stays."""
    from reproman.testing.cli import run_cli

    shared = tmp_path / "shared wd"
    project = tmp_path / "project"
    project.mkdir()
    first = run_cli(["run", "--follow", "--jp", f"working_directory={shared}", "-o", "out.txt",
                     "sh", "-c", "echo one > out.txt"], cwd=project)
    assert first.returncode == 0, first.stderr
    assert (project / "out.txt").read_text() == "one\n"
    second = run_cli(["run", "--jp", f"working_directory={shared}", "-o", "out.txt",
                      "sh", "-c", "echo two >> out.txt"], cwd=project)
    jobid = second.stdout.strip()
    home = Path(os.environ["HOME"])
    _wait_for_file(home / ".reproman" / "run-root" / ".reproman" / "jobs" / "local" / jobid / "completed")
    assert (shared / "out.txt").read_text() == "one\ntwo\n"
    assert (project / "out.txt").read_text() == "one\n"  # not fetched yet: the user's result is job 1's


def test_a_link_a_job_made_does_not_redirect_a_later_fetch_into_your_file(tmp_path: Path) -> None:
    """Trial J: job 1's output out.txt arrived as a link to data.csv; job 2's out.txt was then written through
    it, replacing data.csv (never an output). The link is replaced now, whatever it points to."""
    from reproman.testing.cli import run_cli

    data = tmp_path / "data.csv"
    data.write_text("my data\n")
    first = run_cli(["run", "--follow", "-o", "out.txt", "sh", "-c", f"ln -s {data} out.txt"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert os.readlink(tmp_path / "out.txt") == str(data)
    second = run_cli(["run", "--follow", "-o", "out.txt", "sh", "-c", "echo job2 > out.txt"], cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert data.read_text() == "my data\n"
    assert not (tmp_path / "out.txt").is_symlink() and (tmp_path / "out.txt").read_text() == "job2\n"


def test_an_arriving_link_that_points_outside_the_project_is_said(tmp_path: Path) -> None:
    """Trial J: a job's output link to its own working directory landed silently; writing "the result"
    then wrote the resource's copy, which --delete removed. It lands as the job made it, and is said."""
    from reproman.testing.cli import run_cli

    made = run_cli(["run", "--follow", "--keep-remote", "-o", "link.txt", "-o", "inside.txt", "-o", "real.txt",
                    "sh", "-c", 'echo real > real.txt; ln -s "$PWD/real.txt" link.txt; ln -s real.txt inside.txt'],
                   cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    warnings = [line for line in made.stderr.splitlines() if "pointing outside" in line]
    assert len(warnings) == 1 and "link.txt -> " in warnings[0] and "inside.txt" not in warnings[0], made.stderr
    assert os.readlink(tmp_path / "inside.txt") == "real.txt"


def test_a_misspelt_output_keeps_what_the_job_wrote_on_the_resource(workdir: Path) -> None:
    """Trial K: ``-o resutl.txt`` for a job writing result.txt warned, then freed the only copy of result.txt."""
    from reproman.testing.cli import run_cli

    result = run_cli(["run", "--follow", "-o", "resutl.txt", "-o", "log.txt",
                      "sh", "-c", "echo precious > result.txt; echo log > log.txt"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    jobid = result.stdout.splitlines()[0]
    assert "resutl.txt was not produced" in result.stderr
    assert "stay on the resource" in result.stderr and f"reproman jobs --delete {jobid}" in result.stderr
    record = Registry().load(jobid)
    kept = Path(record.working_directory) / "result.txt"
    assert kept.read_text() == "precious\n", "the working directory holding the job's real output was freed"
    assert not record.extra.get("remote_released")
    listed = run_cli(["jobs"], cwd=workdir).stdout
    assert "1 succeeded; 1 output not produced" in listed, listed
    # The output that did arrive is a copy of its own, not a link to the file that stays there.
    fetched = workdir / "log.txt"
    assert fetched.read_text() == "log\n"
    assert not os.path.samefile(fetched, Path(record.working_directory) / "log.txt")
    deleted = run_cli(["jobs", "--delete", jobid], cwd=workdir)
    assert deleted.returncode == 0, deleted.stderr
    assert not kept.exists(), "'jobs --delete' frees what the warning said it would"
    assert fetched.read_text() == "log\n"


def test_fetching_again_after_the_kept_files_vanished_says_so_and_changes_nothing(workdir: Path) -> None:
    """Trial M: the files kept for a misspelt output were removed on the resource; `reproman jobs JOB` then
    said the output it had fetched was "not produced", that the files "stay" there, rewrote the record
    with it and exited 0. Now: one line that the working directory is gone, exit 1, record and files as they were."""
    import shutil

    from reproman.testing.cli import run_cli

    made = run_cli(["run", "--follow", "-o", "good.txt", "-o", "misspelt.txt",
                    "sh", "-c", "echo good > good.txt; echo other > mispelt.txt"], cwd=workdir)
    assert made.returncode == 0, made.stderr
    jobid = made.stdout.splitlines()[0]
    record = Registry().load(jobid)
    shutil.rmtree(record.working_directory)
    shutil.rmtree(record.job_dir)
    again = run_cli(["jobs", jobid], cwd=workdir)
    assert again.returncode == 1, again.stderr
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "working directory" in lines[0] and "is gone from resource 'local'" in lines[0], lines
    assert "not produced" not in again.stderr and "stay on the resource" not in again.stderr
    after = Registry().load(jobid)  # what it says of the job stays (a poll may note the directory is gone)
    assert (after.extra["missing_outputs"], after.extra["result"]) == (["misspelt.txt"], "1 succeeded")
    assert (after.checksums, after.environment, after.fetched) == (record.checksums, record.environment,
                                                                   record.fetched)
    assert (workdir / "good.txt").read_text() == "good\n"


def test_a_failed_subjobs_missing_output_does_not_hold_the_batchs_files(workdir: Path) -> None:
    """A failed subjob is expected not to have made its output (its outcome says it failed): the batch's
    files are freed as usual, without the misspelt-output warning. An output owed by a subjob that
    succeeded still keeps them."""
    from reproman.testing.cli import run_cli

    partly = run_cli(["run", "--follow", "--bp", "i=1,2", "-o", "r{p[i]}.txt",
                      "sh", "-c", 'if [ {p[i]} = 2 ]; then exit 3; fi; echo {p[i]} > r{p[i]}.txt'], cwd=workdir)
    assert partly.returncode == 1, partly.stderr
    record = Registry().load(partly.stdout.splitlines()[0])
    assert "stay on the resource" not in partly.stderr, partly.stderr
    assert record.extra.get("remote_released") and not Path(record.working_directory).exists()
    assert "not produced" not in record.extra.get("result", "") and "missing_outputs" not in record.extra
    assert (workdir / "r1.txt").read_text() == "1\n"
    owed = run_cli(["run", "--follow", "--bp", "i=1,2", "-o", "s{p[i]}.txt",
                    "sh", "-c", 'if [ {p[i]} = 2 ]; then exit 3; fi; echo {p[i]} > t{p[i]}.txt'], cwd=workdir)
    assert owed.returncode == 1, owed.stderr
    kept = Registry().load(owed.stdout.splitlines()[0])
    assert "s1.txt was not produced" in owed.stderr and "stay on the resource" in owed.stderr, owed.stderr
    assert kept.extra["missing_outputs"] == ["s1.txt"]
    assert (Path(kept.working_directory) / "t1.txt").read_text() == "1\n"


def test_a_link_to_a_directory_made_by_the_job_is_fetched_again_over_its_earlier_copy(workdir: Path) -> None:
    """Trial K: the second fetch of ``dl -> d`` said 'dl is a directory here' (it followed the local link)."""
    from reproman.testing.cli import run_cli

    argv = ["run", "--follow", "-o", "d", "-o", "dl", "sh", "-c", "mkdir -p d; echo x > d/f; ln -sfn d dl"]
    for attempt in range(2):
        result = run_cli(argv, cwd=workdir)
        assert result.returncode == 0, (attempt, result.stderr)
        assert os.readlink(workdir / "dl") == "d" and (workdir / "d" / "f").read_text() == "x\n"
    rerun = run_cli(["rerun", "--verify", result.stdout.splitlines()[0]], cwd=workdir)
    assert rerun.returncode == 0, rerun.stderr


def test_a_file_arriving_where_a_local_link_to_a_directory_is_replaces_the_link_only(workdir: Path,
                                                                                   tmp_path: Path) -> None:
    from reproman.testing.cli import run_cli

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mine.txt").write_text("mine\n")
    (workdir / "out").symlink_to(elsewhere)
    result = run_cli(["run", "--follow", "-o", "out", "sh", "-c", "echo job > out"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert not (workdir / "out").is_symlink() and (workdir / "out").read_text() == "job\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["mine.txt"]
    assert (elsewhere / "mine.txt").read_text() == "mine\n"


def test_deleting_a_job_kept_for_a_missing_output_says_what_it_removed(workdir: Path) -> None:
    from reproman.testing.cli import run_cli

    result = run_cli(["run", "--follow", "-o", "resutl.txt", "sh", "-c", "echo 1 > result.txt"], cwd=workdir)
    jobid = result.stdout.splitlines()[0]
    wd = Registry().load(jobid).working_directory
    deleted = run_cli(["jobs", "--delete", jobid], cwd=workdir)
    assert deleted.returncode == 0, deleted.stderr
    assert f"Its files on resource 'local' ({wd}) were removed." in deleted.stderr
    assert not os.path.exists(wd)


def test_an_arriving_link_to_a_file_that_was_not_an_output_is_said(workdir: Path) -> None:
    """Trial K: links whose targets were not outputs arrived dangling, without a word."""
    from reproman.testing.cli import run_cli

    result = run_cli(["run", "--follow", "-o", "res", "sh", "-c",
                      "mkdir -p res && echo data > data.txt && ln -s ../data.txt res/link && ln -s kept res/ok "
                      "&& echo k > res/kept"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "symbolic links to nothing here" in result.stderr and "res/link -> ../data.txt" in result.stderr
    assert "res/ok" not in result.stderr, "a link to an output that arrived is fine"
    assert os.readlink(workdir / "res" / "link") == "../data.txt"


@pytest.mark.parametrize(("links", "output", "script"), [
    ({"out": "out"}, "out", "mkdir -p out && echo job > out/f"),
    ({"out": "out"}, "out/f", "mkdir -p out && echo job > out/f"),
    ({"x": "y", "y": "x"}, "x/sub/f", "mkdir -p x/sub && echo job > x/sub/f"),
], ids=["at-the-output", "in-a-parent", "two-links"])
def test_a_local_symlink_loop_in_the_way_is_a_conflict_and_the_job_stays_fetchable(
        workdir: Path, links: dict[str, str], output: str, script: str) -> None:
    """A fetch meeting a local link that loops said "[Errno 40] Too many levels of symbolic links"."""
    from reproman.testing.cli import run_cli

    submitted = run_cli(["run", "-o", output, "sh", "-c", script], cwd=workdir)
    assert submitted.returncode == 0, submitted.stderr
    jobid = submitted.stdout.splitlines()[0]
    for name, target in links.items():
        (workdir / name).symlink_to(target)
    _wait_for_file(Path(Registry().load(jobid).job_dir) / "completed")
    fetched = run_cli(["jobs", jobid], cwd=workdir)
    assert fetched.returncode == 1, fetched.stderr
    errors = [line for line in fetched.stderr.splitlines() if line.startswith("reproman: error:")]
    assert len(errors) == 1 and "Traceback" not in fetched.stderr and "Errno" not in fetched.stderr, fetched.stderr
    first = next(iter(links))
    assert f"{workdir / first} is a symbolic link here that loops" in errors[0], errors[0]
    assert "Nothing was changed. Move the local path away" in errors[0], errors[0]
    assert {name: os.readlink(workdir / name) for name in links} == links
    assert sorted(p.name for p in workdir.iterdir()) == sorted(links), "nothing local was written"
    for name in links:
        (workdir / name).unlink()
    again = run_cli(["jobs", jobid], cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert (workdir / (output if output.endswith("f") else "out/f")).read_text() == "job\n"
