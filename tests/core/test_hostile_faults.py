"""Disk full, read-only and permission denied (issue 13, case 10): one line naming the path, nothing lost.

The full and read-only disks are real: a 256 KiB tmpfs mounted for the
test (root only: CI runs as root; elsewhere the tests skip, or fail under
CI). Permission denied cannot be produced for root, so that case injects
the error into ``os.open``.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error, checksums

from reproman import api
from reproman.errors import LocalFileError
from reproman.resources.inventory import inventory_path
from reproman.testing.cli import run_cli
from reproman.testing.services import service_missing


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        service_missing("mounting a small tmpfs for disk-full tests needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        service_missing(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path) -> None:
    """Use up every block of the file system (a real ENOSPC for the next write)."""
    try:
        with open(mount / "filler", "wb", buffering=0) as handle:
            while True:
                handle.write(b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC


def _remount_read_only(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)


def test_disk_full_while_writing_the_inventory(small_fs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(small_fs / "config"))
    assert run_cli(["create", "first", "-t", "shell"]).returncode == 0
    before = checksums(small_fs / "config")
    _fill(small_fs)
    line = assert_one_line_error(run_cli(["create", "second", "-t", "shell"]), code=1)
    assert line == f"reproman: error: cannot write {inventory_path()}: No space left on device. " \
                   "Its previous content is unchanged."
    assert checksums(small_fs / "config") == before
    assert not [p for p in inventory_path().parent.iterdir() if p.name.endswith(".tmp")]


def test_disk_full_while_writing_a_job_record(small_fs: Path, monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(small_fs / "data"))
    (small_fs / "data").mkdir()
    _fill(small_fs)
    line = assert_one_line_error(run_cli(["run", "true"]), code=1)
    assert f"cannot write {small_fs / 'data' / 'reproman' / 'jobs'}" in line or \
           f"cannot create directory {small_fs / 'data' / 'reproman'}" in line, line
    assert "No space left on device" in line
    home = workdir.parent / "home"
    assert not list(home.glob(".reproman/run-root/.reproman/jobs/local/*")), "nothing may run without a record"


def test_read_only_destinations(small_fs: Path, monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(small_fs / "config"))
    assert run_cli(["create", "first", "-t", "shell"]).returncode == 0
    before = checksums(small_fs)
    _remount_read_only(small_fs)
    line = assert_one_line_error(run_cli(["create", "second", "-t", "shell"]))
    assert str(small_fs / "config") in line and "Read-only file system" in line
    line = assert_one_line_error(run_cli(["retrace", "-o", str(small_fs / "env.yml"), "/bin/sh"]))
    assert line == f"reproman: error: cannot write {small_fs / 'env.yml'}: Read-only file system"
    assert checksums(small_fs) == before


def test_permission_denied_is_one_error_naming_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    api.create("first", "shell", [])
    before = checksums(inventory_path())
    real_open = os.open

    def denied(path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kw: object) -> int:
        if str(path).startswith(str(inventory_path().parent)) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, mode)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", denied)
        with pytest.raises(LocalFileError, match=f"^cannot write {inventory_path()}: Permission denied"):
            api.create("second", "shell", [])
    assert checksums(inventory_path()) == before


def test_a_removed_working_directory(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    script = f"cd {gone} && rmdir {gone} && exec \"$0\" -m reproman ls"
    import sys

    result = subprocess.run(["sh", "-c", script, sys.executable], capture_output=True, text=True, timeout=60)
    assert "the current directory does not exist" in assert_one_line_error(result, code=1)


def test_disk_full_in_home_while_writing_the_node_tool(small_fs: Path, monkeypatch: pytest.MonkeyPatch,
                                                      workdir: Path) -> None:
    """Re-trial: HOME on a full disk gave "No space left on device" naming no path, and left the node tool's
    half-written temporary files behind (one per run, in the cache and the data directory).

    The node tool (a few hundred KiB) does not fit in the 256 KiB disk; the job record does.
    """
    home = small_fs / "home"
    home.mkdir()
    for name, sub in (("HOME", ""), ("XDG_CACHE_HOME", ".cache"), ("XDG_DATA_HOME", ".local/share"),
                      ("XDG_CONFIG_HOME", ".config")):
        monkeypatch.setenv(name, str(home / sub) if sub else str(home))
    for _attempt in range(2):  # a second run finds no debris of the first
        line = assert_one_line_error(run_cli(["run", "true"]), code=1)
        assert line.startswith(f"reproman: error: cannot write the node tool {home}/.local/share/reproman/"
                               "node-tools/reproman-node-"), line
        assert f"(nor {home}/.cache/reproman/node-tools/reproman-node-" in line and "No space left on device" in line
        left = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
        assert not [p for p in left if "node-tools" in p], left
    listed = run_cli(["jobs"])
    assert listed.returncode == 0 and "No jobs" in listed.stderr, listed


def test_a_batch_that_fills_the_resources_disk_is_told_so(small_fs: Path, workdir: Path) -> None:
    """Trial O, 5: subjobs that filled the disk read "exit code 1" or "lost" with empty logs (their stderr, status
    and the launcher's log are on the full file system too), and "No space left" appeared nowhere. The fetch of a
    job with failed subjobs names the full file system and what to do."""
    subprocess.run(["mount", "-o", "remount,size=2m", str(small_fs)], check=True)  # room for the node tool
    result = run_cli(["run", "--follow", "--jp", f"root_directory={small_fs}", "--bp", "i=1..8",
                      "-o", "o{p[i]}", "sh", "-c", "head -c 400000 /dev/zero > o{p[i]}"])
    assert result.returncode == 1, result.stderr
    warned = [line for line in result.stderr.splitlines() if "run out of space" in line]
    assert len(warned) == 1 and str(small_fs) in warned[0] and "KiB free" in warned[0], result.stderr
    assert "rerun --failed" in warned[0]
    # Trial P, 4: the checksum step could not write its answer either; the fetched files are unverified, so the
    # job's files stay on the resource instead of being freed unchecked.
    assert "checksums could not be computed" in result.stderr, result.stderr
    jobid = result.stdout.split()[0]
    from reproman.jobs.registry import Registry

    record = Registry().load(jobid)
    assert not record.extra.get("remote_released") and not record.extra.get("checksummed"), record.extra
    assert Path(record.working_directory).is_dir()


def test_a_failed_batch_with_room_to_spare_says_nothing_of_space(workdir: Path) -> None:
    result = run_cli(["run", "--follow", "--bp", "i=1..2", "sh", "-c", "exit {p[i]}"])
    assert result.returncode == 1 and "failed" in result.stderr
    assert "out of space" not in result.stderr, result.stderr
