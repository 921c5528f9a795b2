"""New-user trial C: what a job, a fetch or the user can do to a dataset with subdatasets.

Every test starts from the user's world: a real dataset with subdatasets
(the YODA layout of :mod:`reproman_orchestrators_datalad.testing`), real
DataLad and git-annex, jobs on the local shell resource, and the user
editing, killing or fetching twice while a job holds the dataset.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datalad_testlib import fetch_when_done, git, run_job

from reproman_orchestrators_datalad import testing as yoda

#: A job that writes a file name DataLad cannot save (byte 0xFF), after a pause the user works in.
BAD_NAME_JOB = "sleep 2; mkdir -p nu && echo bad > \"nu/$(printf 'b\\377d')\""
BAD = os.fsdecode(b"b\xffd")


def _tree(ds: Path, sub: str = ".") -> str:
    """Everything git knows of one dataset: HEAD, its refs and the work tree's status."""
    return "\n".join([
        git(ds / sub, "rev-parse", "HEAD"),
        git(ds / sub, "for-each-ref", "--format=%(refname) %(objectname)"),
        git(ds / sub, "status", "--porcelain", "--untracked-files=all", "--ignore-submodules=none"),
    ])


def _gitlinks(ds: Path) -> list[str]:
    return [line.split("\t")[1] for line in git(ds, "ls-tree", "-r", "HEAD").splitlines() if line.startswith("160000")]


def _wait_finished(job: Any, timeout: float = 60) -> None:
    """Until the job's command has ended (its status file is written), without fetching."""
    status = Path(job.job_dir, "status.0")
    deadline = time.monotonic() + timeout
    while not (status.exists() and status.read_text().split()[:1] in (["succeeded"], ["failed"])):
        assert time.monotonic() < deadline, f"job {job.jobid} did not finish"
        time.sleep(0.2)


@pytest.mark.parametrize("orchestrator", ["datalad-no-remote", "datalad-pair"])
def test_non_utf8_name_is_refused_before_anything_is_saved(
    yoda_ds: Path, root: Path, orchestrator: str
) -> None:
    """Trial C findings 1 and 2: nothing saved, no subdataset removed, the user's edit kept; rename, fetch."""
    before_links = _gitlinks(yoda_ds)
    result = run_job(root, orchestrator, BAD_NAME_JOB, outputs=["nu"], follow=False)
    jobid = result.job.jobid
    # The user works in a subdataset while the job holds the dataset.
    (yoda_ds / "outputs" / "precious.txt").write_text("precious work\n")
    _wait_finished(result.job)
    workdir = Path(result.job.working_directory)
    local_before = {s: _tree(yoda_ds, s) for s in (".", "outputs", "outputs/derived")}
    clone_before = {s: _tree(workdir, s) for s in (".", "outputs", "outputs/derived")}

    row = fetch_when_done(jobid)
    assert "not valid UTF-8" in row.get("error", "") and "nothing was saved" in row["error"], row
    assert "Rename those files there" in row["error"], row
    # Exactly as it was, here and (pair) in the clone; the subdatasets are on disk with the user's file.
    assert {s: _tree(yoda_ds, s) for s in local_before} == local_before
    assert {s: _tree(workdir, s) for s in clone_before} == clone_before
    assert (yoda_ds / "outputs" / "precious.txt").read_text() == "precious work\n"
    assert os.path.lexists(workdir / "outputs" / "derived" / "ref.csv")
    assert not (workdir / ".reproman" / "jobs").exists() or not any((workdir / ".reproman" / "jobs").iterdir())

    # As the message says: rename the file there, fetch again.
    os.rename(workdir / "nu" / BAD, workdir / "nu" / "bad.txt")
    row = fetch_when_done(jobid)
    assert row.get("fetched"), row
    assert (yoda_ds / "nu" / "bad.txt").read_text() == "bad\n"
    assert _gitlinks(yoda_ds) == before_links
    assert (yoda_ds / "outputs" / "precious.txt").read_text() == "precious work\n"
    assert (yoda_ds / "inputs" / ".git").exists() and (yoda_ds / "outputs" / "derived" / ".git").exists()
    assert git(yoda_ds, "log", "--format=%s", "-1").startswith(("[ReproMan]", "Merge"))


def _job_commits(ds: Path, jobid: str) -> list[str]:
    return git(ds, "log", "--all", "--format=%H", f"--grep=^ReproMan job: {jobid}$").split()


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-no-remote"])
def test_killed_fetch_records_the_job_once_with_its_checksums(
    yoda_ds: Path, root: Path, orchestrator: str
) -> None:
    """Trial C finding 4: kill -9 of the CLI mid-fetch; its child keeps saving; the next fetch records nothing twice."""
    from reproman import api
    from reproman.jobs.checksums import sha256_file
    from reproman.jobs.registry import Registry

    command = "mkdir -p outputs/df && head -c 30000000 /dev/urandom > outputs/df/a && echo 2 > outputs/df/b"
    result = run_job(root, orchestrator, command, outputs=["outputs/df"], follow=False)
    job = result.job
    _wait_finished(job)
    workdir = Path(job.working_directory)
    copied = workdir / ".reproman" / "jobs" / job.resource_name / job.jobid / "spec.yaml"
    cli = subprocess.Popen([sys.executable, "-m", "reproman", "jobs", job.jobid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not copied.exists():
        assert cli.poll() is None and time.monotonic() < deadline, "the fetch never reached the save"
        time.sleep(0.02)
    cli.kill()  # SIGKILL: the shell saving on the resource is not told
    cli.wait()
    # Its child goes on and commits the job there (its outputs become annexed links).
    while subprocess.run(["git", "-C", str(workdir), "rev-parse", "-q", "--verify", f"refs/reproman/{job.jobid}"],
                         capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "the interrupted fetch's child made no commit"
        time.sleep(0.1)
    time.sleep(0.5)

    row = fetch_when_done(job.jobid)
    assert row.get("fetched"), row
    assert len(_job_commits(yoda_ds, job.jobid)) == 1, git(yoda_ds, "log", "--oneline", "-5")
    assert api.jobs([job.jobid], action="fetch")[0].get("already"), "a third fetch did something"
    assert len(_job_commits(yoda_ds, job.jobid)) == 1
    fetched = Registry().load(job.jobid)
    local = yoda_ds / "outputs" / "df" / "a"
    assert fetched.checksums.get("outputs/df/a", {}).get("sha256") == sha256_file(local), fetched.checksums
    committed = git(yoda_ds, "show", f"HEAD:.reproman/jobs/{job.resource_name}/{job.jobid}/spec.yaml")
    assert '"outputs/df/a"' in committed
    yoda.assert_clean(yoda_ds)


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-pair-run", "datalad-no-remote", "datalad-local-run"])
def test_output_git_ignores_is_refused_before_anything_is_written(
    yoda_ds: Path, root: Path, orchestrator: str
) -> None:
    """Trial C finding 3 (and 9's raw unlock error): refused at submission, nothing written, no false warning."""
    from reproman import api
    from reproman.errors import OrchestratorError

    (yoda_ds / ".gitignore").write_text("ign.txt\n")
    yoda.datalad(yoda_ds, "save", "-m", "ignore ign.txt")
    (yoda_ds / "ign.txt").write_text("precious\n")
    head = yoda.head(yoda_ds)
    with pytest.raises(OrchestratorError, match=r"output\(s\) ign.txt are ignored by git in .*nothing was submitted"):
        run_job(root, orchestrator, "echo job > ign.txt", outputs=["ign.txt"])
    assert api.jobs() == []
    assert (yoda_ds / "ign.txt").read_text() == "precious\n"
    assert yoda.head(yoda_ds) == head
    # The dataset (or clone) is not held: a job with a saved output runs and comes back.
    result = run_job(root, orchestrator, "echo job > kept.txt", outputs=["kept.txt"])
    assert result.status.ok and (yoda_ds / "kept.txt").read_text() == "job\n"
    yoda.assert_clean(yoda_ds)


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-pair-run", "datalad-no-remote", "datalad-local-run"])
@pytest.mark.parametrize("where", ["top", "subdataset"])
def test_an_output_directory_git_ignores_by_a_directory_pattern_is_refused(
    yoda_ds: Path, root: Path, orchestrator: str, where: str
) -> None:
    """Trial G: with ``scratch/`` in .gitignore and no scratch directory yet, ``-o scratch`` was accepted,
    the job "succeeded", and its results never came back (git ignores a directory pattern only for a
    path it knows is a directory)."""
    from reproman import api
    from reproman.errors import OrchestratorError

    dataset = yoda_ds if where == "top" else yoda_ds / "outputs"
    output = "scratch" if where == "top" else "outputs/scratch"
    (dataset / ".gitignore").write_text("scratch/\n")
    yoda.datalad(yoda_ds, "save", "-r", "-m", "ignore scratch/")
    head = yoda.head(yoda_ds)
    with pytest.raises(OrchestratorError, match=rf"output\(s\) {output} are ignored by git in .*nothing was submitted"):
        run_job(root, orchestrator, f"mkdir -p {output} && echo job > {output}/r.txt", outputs=[output])
    assert api.jobs() == []
    assert yoda.head(yoda_ds) == head and not (yoda_ds / output).exists()
    yoda.assert_clean(yoda_ds)


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-no-remote"])
def test_two_fetches_of_one_job_at_once(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    """Trial C finding 5: the second fetch waits for the first, then finds the job fetched; one commit."""
    command = "mkdir -p outputs/df && head -c 5000000 /dev/urandom > outputs/df/a"
    result = run_job(root, orchestrator, command, outputs=["outputs/df"], follow=False)
    _wait_finished(result.job)
    clis = [subprocess.Popen([sys.executable, "-m", "reproman", "jobs", result.job.jobid],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    said = [cli.communicate(timeout=120) for cli in clis]
    assert [cli.returncode for cli in clis] == [0, 0], said
    assert not any("cannot get" in err or "Traceback" in err for _out, err in said), said
    assert len(_job_commits(yoda_ds, result.job.jobid)) == 1
    assert (yoda_ds / "outputs" / "df" / "a").stat().st_size == 5000000
    yoda.assert_clean(yoda_ds)


def test_a_fetch_waits_while_another_holds_the_dataset(yoda_ds: Path, root: Path) -> None:
    """Trial C finding 5: while a fetch into the dataset runs (its lock held here), another only waits."""
    import fcntl

    result = run_job(root, "datalad-pair", "echo job > waited.txt", outputs=["waited.txt"], follow=False)
    _wait_finished(result.job)
    head = yoda.head(yoda_ds)
    lock_path = yoda_ds / ".git" / "reproman" / "fetch.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cli = subprocess.Popen([sys.executable, "-m", "reproman", "jobs", result.job.jobid],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(4)
        assert cli.poll() is None, cli.communicate()
        assert yoda.head(yoda_ds) == head and not (yoda_ds / "waited.txt").exists()
        clone = Path(result.job.working_directory)
        assert not (clone / ".reproman" / "jobs" / result.job.resource_name / result.job.jobid).exists()
    out, err = cli.communicate(timeout=120)
    assert cli.returncode == 0 and "succeeded" in out + err, (out, err)
    assert (yoda_ds / "waited.txt").read_text() == "job\n"


@pytest.mark.parametrize("orchestrator", ["datalad-pair", "datalad-pair-run", "datalad-local-run"])
def test_rerun_verify_keeps_the_outputs_it_is_compared_with(yoda_ds: Path, root: Path, orchestrator: str) -> None:
    """Trial C finding 7: the rerun's version lands in fetched/; the original's outputs and export stay valid."""
    from reproman import api
    from reproman.jobs.checksums import verify
    from reproman.jobs.registry import Registry

    command = "sh code/count.sh inputs/s01.csv outputs/derived/n.txt"
    original = run_job(root, orchestrator, command, inputs=[yoda.CODE, "inputs/s01.csv"],
                       outputs=["outputs/derived/n.txt"]).job
    output = yoda_ds / "outputs" / "derived" / "n.txt"
    before = output.read_text()
    heads = {sub: yoda.head(yoda_ds, sub) for sub in (".", "outputs", "outputs/derived")}

    rerun = api.rerun(original.jobid, verify=True)
    assert rerun.comparison is not None and not rerun.comparison.equal  # count.sh writes a nonce
    assert output.read_text() == before
    assert {sub: yoda.head(yoda_ds, sub) for sub in heads} == heads
    kept = yoda_ds / ".reproman" / "jobs" / rerun.job.resource_name / rerun.job.jobid / "fetched" / "outputs" / \
        "derived" / "n.txt"
    assert kept.read_text() != before and yoda.rows(kept) == yoda.rows(output)
    yoda.assert_clean(yoda_ds)
    # What 'reproman jobs --export ORIGINAL' checks: the original's outputs are what it produced.
    stored = Registry().load(original.jobid)
    assert not verify(stored.checksums, yoda_ds).mismatched
    assert "outputs/derived/n.txt" in verify(stored.checksums, yoda_ds).matched
    # The rerun's own record checks its kept copy, not the original.
    assert not Registry().load(rerun.job.jobid).extra.get("verified", {}).get("mismatched")
    # Re-trial: '--fetch --overwrite RERUN' must not write through the annex link into .git/annex/objects.
    if output.is_symlink():
        (row,) = api.jobs([rerun.job.jobid], action="fetch", overwrite=True)
        assert "symbolic link" in row.get("error", ""), row
        assert output.read_text() == before
        assert subprocess.run(["git", "annex", "fsck", "-q", "n.txt"], cwd=yoda_ds / "outputs" / "derived",
                              capture_output=True).returncode == 0


def test_no_remote_input_with_no_copy_anywhere_is_one_clear_line(yoda_ds: Path, root: Path) -> None:
    """Trial C finding 9: not "preparing the dataset failed ...: " with nothing after the colon."""
    from reproman import api
    from reproman.errors import OrchestratorError

    yoda.sh(yoda_ds / "inputs", "git", "annex", "drop", "--force", "s02.csv")
    with pytest.raises(OrchestratorError) as caught:
        run_job(root, "datalad-no-remote", "cat inputs/s02.csv > outputs/x.txt", inputs=["inputs/s02.csv"],
                outputs=["outputs/x.txt"])
    message = str(caught.value)
    assert "could not get the content of input(s) inputs/s02.csv" in message, message
    assert "\n" not in message and caught.value.hint and "git annex whereis" in caught.value.hint
    assert api.jobs() == []
    assert not (yoda_ds / ".git" / "reproman" / "active").is_dir() or \
        not any((yoda_ds / ".git" / "reproman" / "active").iterdir())


def test_deleting_an_unfetched_pair_job_frees_its_leftovers_in_the_clone(yoda_ds: Path, root: Path) -> None:
    """Trial C finding 10: the partial output of a failed, deleted job must not stay in the clone."""
    from reproman import api

    result = run_job(root, "datalad-pair", "head -c 1000000 /dev/urandom > outputs/partial.bin; exit 1",
                     outputs=["outputs/partial.bin"], follow=False)
    _wait_finished(result.job)
    clone = Path(result.job.working_directory)
    assert (clone / "outputs" / "partial.bin").exists()
    api.jobs([result.job.jobid], action="delete")
    assert not (clone / "outputs" / "partial.bin").exists()
    assert git(clone, "status", "--porcelain") == ""
    # The next job runs in the clone.
    again = run_job(root, "datalad-pair", "echo ok > outputs/ok.txt", outputs=["outputs/ok.txt"])
    assert again.status.ok and (yoda_ds / "outputs" / "ok.txt").read_text() == "ok\n"


def test_local_run_creates_the_parent_directory_of_an_output(yoda_ds: Path, root: Path) -> None:
    """Trial C finding 11: 'outputs/deep/x.txt' failed with "Directory nonexistent" under datalad-local-run."""
    result = run_job(root, "datalad-local-run", "sh code/count.sh inputs/s01.csv outputs/deep/x.txt 2>/dev/null; "
                     "echo done > outputs/deeper/still/y.txt", inputs=[yoda.CODE, "inputs/s01.csv"],
                     outputs=["outputs/deep/x.txt", "outputs/deeper/still/y.txt"])
    assert result.status.ok, result.failed
    assert (yoda_ds / "outputs" / "deeper" / "still" / "y.txt").read_text() == "done\n"
    yoda.assert_clean(yoda_ds)


@pytest.fixture
def full_root(tmp_path: Path) -> Iterator[Path]:
    """A real full disk as the resource's root directory: a 256 KiB tmpfs, filled (root only)."""
    from reproman.testing.services import service_missing

    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        service_missing("mounting a small tmpfs for disk-full tests needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        service_missing(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        try:
            with open(mount / "filler", "wb", buffering=0) as handle:
                while True:
                    handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_on_the_resource_is_one_line_and_leaves_nothing(yoda_ds: Path, full_root: Path) -> None:
    """Trial C finding 9: not "cannot put : [(...), ...]", and no empty per-job directory left behind."""
    from reproman import api
    from reproman.errors import ReproManError

    with pytest.raises(ReproManError) as caught:
        run_job(full_root, "datalad-local-run", "echo hi > out.txt", outputs=["out.txt"])
    message = str(caught.value)
    assert "\n" not in message and "[(" not in message, message
    assert re.search(r"cannot put /\S+: No space left on device", message), message
    assert api.jobs() == []
    assert sorted(p.name for p in full_root.iterdir() if p.name != "filler") in ([], [".reproman"])
    leftovers = [p for p in full_root.rglob("*") if p.is_file() and p.name != "filler"]
    assert not leftovers and not [p for p in full_root.iterdir() if p.name.startswith(".reproman-incoming")]
    assert not [p for p in full_root.iterdir() if p.name not in ("filler", ".reproman")], list(full_root.iterdir())


def test_a_save_that_fails_half_way_is_undone_and_never_followed_by_a_second_commit(
    yoda_ds: Path, root: Path
) -> None:
    """Trial C finding 1, the class of bug: a save failing in one subdataset leaves no commit anywhere."""
    result = run_job(root, "datalad-no-remote", "echo a > outputs/a.txt; echo d > outputs/derived/d.txt; echo t > t.txt",
                     outputs=["outputs", "t.txt"], follow=False)
    _wait_finished(result.job)
    heads = {sub: yoda.head(yoda_ds, sub) for sub in (".", "outputs", "outputs/derived")}
    lock = Path(git(yoda_ds / "outputs", "rev-parse", "--absolute-git-dir")) / "index.lock"
    lock.write_text("")  # git cannot update this subdataset's index: its save fails
    row = fetch_when_done(result.job.jobid)
    assert "recording the job's results failed" in row.get("error", ""), row
    assert "put back to their state before the save" in row["error"], row
    assert {sub: yoda.head(yoda_ds, sub) for sub in heads} == heads
    assert not _job_commits(yoda_ds, result.job.jobid)
    assert (yoda_ds / "outputs" / "derived" / "d.txt").read_text() == "d\n"
    lock.unlink()
    assert fetch_when_done(result.job.jobid).get("fetched")
    assert len(_job_commits(yoda_ds, result.job.jobid)) == 1
    assert (yoda_ds / "t.txt").read_text() == "t\n" and (yoda_ds / "outputs" / "a.txt").read_text() == "a\n"
    yoda.assert_clean(yoda_ds)


def test_a_subdataset_gone_is_never_saved_as_removed(yoda_ds: Path, root: Path) -> None:
    """A subdataset the job started with and that is gone at fetch would be committed as deleted: refused."""
    result = run_job(root, "datalad-pair", "echo x > outputs/x.txt", outputs=["outputs/x.txt"], follow=False)
    _wait_finished(result.job)
    clone = Path(result.job.working_directory)
    before = git(clone, "rev-parse", "HEAD")
    import shutil

    shutil.rmtree(clone / "outputs" / "derived")
    row = fetch_when_done(result.job.jobid)
    assert "subdataset outputs/derived" in row.get("error", "") and "nothing was saved" in row["error"], row
    assert git(clone, "rev-parse", "HEAD") == before
    assert "derived" in git(clone / "outputs", "ls-tree", "HEAD")


def test_no_remote_rerun_says_it_overwrites_the_outputs(
    yoda_ds: Path, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Trial C finding 7 under datalad-no-remote: the rerun runs in the dataset itself, and says so."""
    from reproman import api

    original = run_job(root, "datalad-no-remote", "sh code/count.sh inputs/s01.csv outputs/n.txt",
                       inputs=[yoda.CODE, "inputs/s01.csv"], outputs=["outputs/n.txt"]).job
    first, before = yoda.head(yoda_ds), (yoda_ds / "outputs" / "n.txt").read_text()
    rerun = api.rerun(original.jobid, verify=True)
    assert rerun.comparison is not None
    assert f"the original's outputs stay in commit {first[:10]}" in caplog.text
    assert "overwrites outputs/n.txt" in caplog.text
    assert (yoda_ds / "outputs" / "n.txt").read_text() != before
    # The original's version is in its commit, content and all.
    sub = git(yoda_ds, "rev-parse", f"{first}:outputs")
    key = os.path.basename(git(yoda_ds / "outputs", "show", f"{sub}:n.txt"))
    assert (yoda_ds / "outputs" / git(yoda_ds / "outputs", "annex", "contentlocation", key)).read_text() == before


@pytest.mark.parametrize("orchestrator", ["datalad-pair-run", "datalad-pair"])
def test_a_message_with_bytes_that_are_not_utf8_is_refused_before_it_runs(yoda_ds: Path, root: Path,
                                                                          orchestrator: str) -> None:
    """Re-trial N3, then D4: byte 0xff in --message was a traceback, then a silent U+00FF; now refused up front.

    The commit message is UTF-8 text for DataLad; such a byte cannot be kept
    as it was given, so nothing is submitted (one line, no traceback).
    """
    from reproman import api
    from reproman.errors import OrchestratorError

    message = b"msg \xff".decode("utf-8", "surrogateescape")
    head = yoda.head(yoda_ds)
    with pytest.raises(OrchestratorError, match=r"the --message holds bytes that are not valid UTF-8 \(0xff at "
                                                 r"character 5.*nothing was submitted"):
        run_job(root, orchestrator, "echo ok > outputs/m.txt", outputs=["outputs/m.txt"], message=message)
    assert api.jobs() == [] and yoda.head(yoda_ds) == head
    assert not (yoda_ds / "outputs" / "m.txt").exists()
    yoda.assert_clean(yoda_ds)
