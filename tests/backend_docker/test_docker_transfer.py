"""Files and streams: tar-streamed put/get, relative paths, modes, separation of stdout and stderr, memory."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reproman_backend_docker.resource import DockerContainer
from reproman_backend_docker.session import DockerSession
from reproman_backend_docker.tarstream import ChunkReader, tar_chunks

Make = Callable[..., DockerContainer]


@pytest.fixture
def session(shared_container: DockerContainer) -> Iterator[DockerSession]:
    with shared_container.get_session() as session:
        yield session  # type: ignore[misc]


@pytest.fixture
def remote_tmp(session: DockerSession) -> Iterator[str]:
    path = session.execute_command("mktemp -d", check=True).stdout.strip()
    yield path
    session.remove(path, recursive=True)


def make_tree(root: Path, count: int) -> None:
    for i in range(count):
        target = root / f"d{i % 10}" / f"f{i}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"file {i}\n")


# -- the tar stream itself (no engine) ------------------------------------------------------
def test_tar_chunks_is_a_valid_bounded_stream(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", 30)
    (tmp_path / "t" / "big").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    (tmp_path / "t" / "exe").write_text("#!/bin/sh\n")
    (tmp_path / "t" / "exe").chmod(0o751)
    (tmp_path / "t" / "link").symlink_to("exe")
    chunks = list(tar_chunks([(tmp_path / "t", "x/t")], uid=7, gid=8, chunk_size=256 * 1024))
    assert max(len(c) for c in chunks) <= 256 * 1024 + tarfile.BLOCKSIZE * 3
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(iter(chunks))), mode="r|") as tar:
        members = {m.name: m for m in tar}
    assert members["x/t/exe"].mode == 0o751 and members["x/t/exe"].uid == 7
    assert members["x/t/link"].issym() and members["x/t/link"].linkname == "exe"
    assert members["x/t/big"].size == 3 * 1024 * 1024 + 7
    assert len([m for m in members.values() if m.isfile()]) == 32


# -- trees and speed ------------------------------------------------------------------------
def test_thousand_file_tree_put_get_under_a_second(session: DockerSession, remote_tmp: str, tmp_path: Path) -> None:
    make_tree(tmp_path / "src", 1000)
    started = time.perf_counter()
    session.put(str(tmp_path / "src"), f"{remote_tmp}/tree")
    put_seconds = time.perf_counter() - started
    assert session.execute_command(f"find {remote_tmp}/tree -type f | wc -l").stdout.strip() == "1000"
    started = time.perf_counter()
    session.get(f"{remote_tmp}/tree", str(tmp_path / "back"))
    get_seconds = time.perf_counter() - started
    assert len([p for p in (tmp_path / "back").rglob("*") if p.is_file()]) == 1000
    assert (tmp_path / "back" / "d3" / "f993.txt").read_text() == "file 993\n"
    # The target is 1 s each (benchmarks/docker_session.py checks it on a quiet machine); this is a
    # regression guard with room for a loaded CI machine, where local file creation alone slows down.
    assert put_seconds < 5 and get_seconds < 5, (put_seconds, get_seconds)


def test_modes_and_symlinks_survive_both_ways(session: DockerSession, remote_tmp: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    for name, mode in (("ro", 0o444), ("group", 0o664), ("exe", 0o751), ("private", 0o600), ("all", 0o777)):
        (src / name).write_text(name)
        (src / name).chmod(mode)
    (src / "dir").chmod(0o750)
    (src / "link").symlink_to("exe")
    session.put(str(src), f"{remote_tmp}/m")
    listing = session.execute_command(f"cd {remote_tmp}/m && stat -c '%n %a' ro group exe private all dir").stdout
    assert listing.split("\n")[:-1] == ["ro 444", "group 664", "exe 751", "private 600", "all 777", "dir 750"]
    assert session.execute_command(f"readlink {remote_tmp}/m/link").stdout.strip() == "exe"
    session.get(f"{remote_tmp}/m", str(tmp_path / "back"))
    back = tmp_path / "back"
    got = {p.name: oct(p.stat().st_mode & 0o777) for p in back.iterdir() if not p.is_symlink()}
    assert got == {"ro": "0o444", "group": "0o664", "exe": "0o751", "private": "0o600", "all": "0o777", "dir": "0o750"}
    assert os.readlink(back / "link") == "exe"


def test_single_file_mode_kept(session: DockerSession, remote_tmp: str, tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o750)
    session.put(str(script), f"{remote_tmp}/bin/run.sh")
    assert session.execute_command(f"{remote_tmp}/bin/run.sh").stdout == "ran\n"
    assert session.execute_command(f"stat -c %a {remote_tmp}/bin/run.sh").stdout.strip() == "750"


def test_put_replaces_existing_tree(session: DockerSession, remote_tmp: str, tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "old").write_text("old")
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "new").write_text("new")
    session.put(str(tmp_path / "v1"), f"{remote_tmp}/t")
    session.put(str(tmp_path / "v2"), f"{remote_tmp}/t")
    assert session.execute_command(f"ls {remote_tmp}/t").stdout.split() == ["new"]


def test_put_with_uid_gid(session: DockerSession, remote_tmp: str, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    session.put(str(tmp_path / "f"), f"{remote_tmp}/f", uid=65534, gid=65534)
    assert session.execute_command(f"stat -c %u:%g {remote_tmp}/f").stdout.strip() == "65534:65534"


def test_get_follows_symlink_and_defaults_to_basename(
    session: DockerSession, remote_tmp: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session.put_text("target text", f"{remote_tmp}/target.txt")
    session.execute_command(f"ln -s target.txt {remote_tmp}/alias.txt", check=True)
    monkeypatch.chdir(tmp_path)
    session.get(f"{remote_tmp}/alias.txt")
    assert (tmp_path / "alias.txt").read_text() == "target text"
    assert not (tmp_path / "alias.txt").is_symlink()


# -- relative paths -------------------------------------------------------------------------
def test_relative_paths_use_container_working_dir(make_container: Make, tmp_path: Path) -> None:
    resource = make_container(working_dir="/srv/work")
    (tmp_path / "in.txt").write_text("relative")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a").write_text("a")
    with resource.get_session() as session:
        session.put(str(tmp_path / "in.txt"), "sub/in.txt")
        session.put_many([(str(tmp_path / "tree"), "trees/t")])
        assert session.read("/srv/work/sub/in.txt") == "relative"
        assert session.read("/srv/work/trees/t/a") == "a"
        assert session.realpath("sub/../sub/in.txt") == "/srv/work/sub/in.txt"
        assert session.execute_command("cat sub/in.txt").stdout == "relative"
        session.get("sub/in.txt", str(tmp_path / "back.txt"))
        session.get_many([("trees/t", str(tmp_path / "tback"))])
    assert (tmp_path / "back.txt").read_text() == "relative"
    assert (tmp_path / "tback" / "a").read_text() == "a"


# -- streams ------------------------------------------------------------------------------------
def test_stdout_and_stderr_stay_apart_when_interleaved(session: DockerSession) -> None:
    result = session.execute_command(
        "i=0; while [ $i -lt 3000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; exit 3"
    )
    assert result.returncode == 3
    assert result.stdout.splitlines() == [f"out{i}" for i in range(3000)]
    assert result.stderr.splitlines() == [f"err{i}" for i in range(3000)]


def test_large_stdin_with_large_output_does_not_deadlock(session: DockerSession) -> None:
    data = os.urandom(4 * 1024 * 1024)
    result = session.execute_command("cat; echo done >&2", stdin=data.hex().encode())
    assert result.stdout == data.hex() and result.stderr == "done\n"


def test_stdin_absent_reads_eof(session: DockerSession) -> None:
    result = session.execute_command("cat; echo after")
    assert result.stdout == "after\n"


def test_undecodable_output_is_replaced_not_fatal(session: DockerSession) -> None:
    result = session.execute_command(r"printf 'a\377b'")
    assert result.stdout == "a\ufffdb"


# -- memory -------------------------------------------------------------------------------------
_MEMORY_CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, time
    from pathlib import Path
    from reproman_backend_docker.session import DockerSession

    def peak_kib():
        # VmHWM is this process's own peak; ru_maxrss would include the parent's, kept across fork+exec.
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    container, src, back = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    with DockerSession(container) as session:
        baseline = peak_kib()
        t0 = time.perf_counter()
        session.put(str(src), "/tmp/big.bin")
        t1 = time.perf_counter()
        session.get("/tmp/big.bin", str(back))
        t2 = time.perf_counter()
        remote_sum = session.execute_command("sha256sum /tmp/big.bin", check=True).stdout.split()[0]
        session.remove("/tmp/big.bin")
    peak = peak_kib()
    print(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "put_s": t1 - t0, "get_s": t2 - t1,
                      "remote_sha256": remote_sum}))
    """
)


@pytest.mark.slow
def test_large_file_streams_with_bounded_memory(shared_container: DockerContainer, tmp_path: Path) -> None:
    size = 256 * 1024 * 1024
    src = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(src, "wb") as out:
        block = os.urandom(1024 * 1024)
        for i in range(size // len(block)):
            piece = block[:-1] + bytes([i % 256])
            digest.update(piece)
            out.write(piece)
    assert shared_container.id
    child = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, shared_container.id, str(src), str(tmp_path / "back.bin")],
        capture_output=True, text=True, timeout=600,
    )
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    assert report["remote_sha256"] == digest.hexdigest()
    back = hashlib.sha256()
    with open(tmp_path / "back.bin", "rb") as stream:
        for piece in iter(lambda: stream.read(1 << 20), b""):
            back.update(piece)
    assert back.hexdigest() == digest.hexdigest()
    assert report["peak_kib"] < 100 * 1024, report  # a whole archive in memory would be 256 MiB
