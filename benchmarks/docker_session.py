"""Benchmark the docker session against the targets of issue 6, on a real Docker Engine.

    python benchmarks/docker_session.py [--calls 200] [--files 1000] [--big-mib 1024]

Measures, on one busybox container (``reproman-test-busybox:latest``, imported
first if missing):

* the median time of ``execute_command`` over N calls, next to the SDK's own
  ``Container.exec_run`` measured in the same run, interleaved call by call
  so that both see the same engine load (target: within 1.5x);
* ``put`` and ``get`` of a tree of 1,000 small files (target: under 1 s each);
* ``put`` and ``get`` of a 1 GiB file in a fresh child process, reporting its
  peak resident memory (``VmHWM``, the kernel's own high-water mark, which
  unlike ``ru_maxrss`` does not inherit the parent's peak; target: < 100 MiB).

Prints a table and exits non-zero if a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH_LABEL = "reproman-bench=1"


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB (``VmHWM``; ``ru_maxrss`` where /proc is absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def big_file_child(container_id: str, src: str, back: str) -> None:
    """Child mode: put then get one large file, print timings and peak memory as JSON."""
    from reproman_backend_docker.session import DockerSession

    with DockerSession(container_id) as session:
        before = peak_rss_kib()
        started = time.perf_counter()
        session.put(src, "/tmp/bench-big.bin")
        put_s = time.perf_counter() - started
        started = time.perf_counter()
        session.get("/tmp/bench-big.bin", back)
        get_s = time.perf_counter() - started
        size = session.execute_command("stat -c %s /tmp/bench-big.bin", check=True).stdout.strip()
        session.remove("/tmp/bench-big.bin")
    print(json.dumps({"put_s": put_s, "get_s": get_s, "peak_kib": peak_rss_kib(), "before_kib": before,
                      "remote_size": int(size)}))


def write_big_file(path: Path, mib: int) -> str:
    """A file of ``mib`` MiB of incompressible-ish data; returns its SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, "wb") as out:
        for i in range(mib):
            piece = block[:-8] + i.to_bytes(8, "big")
            digest.update(piece)
            out.write(piece)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for piece in iter(lambda: stream.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="execute_command calls to time (default 200)")
    parser.add_argument("--files", type=int, default=1000, help="files in the tree to put/get (default 1000)")
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the large file in MiB (default 1024)")
    parser.add_argument("--big-file-child", nargs=3, metavar=("CONTAINER", "SRC", "BACK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.big_file_child:
        big_file_child(*args.big_file_child)
        return 0

    import docker

    from reproman_backend_docker.resource import DockerContainer
    from reproman_backend_docker.testimages import ensure_busybox_image

    client = docker.from_env()
    image = ensure_busybox_image(client)
    resource_ = DockerContainer(f"rm-bench-{uuid.uuid4().hex[:8]}", image=image, labels=[BENCH_LABEL])
    rows: list[tuple[str, str, str, bool]] = []
    resource_.create()
    try:
        assert resource_.id
        container = client.containers.get(resource_.id)
        with resource_.get_session() as session, tempfile.TemporaryDirectory(prefix="rm-bench-") as tmp:
            # 1. per-call latency, ours vs the SDK's exec_run, interleaved
            for _ in range(10):  # warm up connections and the engine's exec path
                session.execute_command("true")
                container.exec_run(["/bin/sh", "-c", "true"])
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(args.calls):
                t0 = time.perf_counter()
                result = session.execute_command("true")
                t1 = time.perf_counter()
                sdk = container.exec_run(["/bin/sh", "-c", "true"])
                t2 = time.perf_counter()
                assert result.returncode == 0 and sdk.exit_code == 0
                ours.append(t1 - t0)
                theirs.append(t2 - t1)
            m_ours, m_sdk = statistics.median(ours), statistics.median(theirs)
            ratio = m_ours / m_sdk
            rows.append((f"execute_command x{args.calls}, median per call", f"{m_ours * 1000:.2f} ms",
                         "<= 1.5x exec_run", ratio <= 1.5))
            rows.append((f"SDK exec_run x{args.calls}, median per call", f"{m_sdk * 1000:.2f} ms", "(reference)", True))
            rows.append(("ratio execute_command / exec_run", f"{ratio:.2f}x", "<= 1.5x", ratio <= 1.5))

            # 2. a tree of many small files
            tree = Path(tmp) / "tree"
            for i in range(args.files):
                leaf = tree / f"d{i % 20}" / f"file{i}.txt"
                leaf.parent.mkdir(parents=True, exist_ok=True)
                leaf.write_text(f"content of file {i}\n")
            put_times, get_times = [], []
            for attempt in range(3):
                t0 = time.perf_counter()
                session.put(str(tree), "/tmp/bench-tree")
                t1 = time.perf_counter()
                session.get("/tmp/bench-tree", str(Path(tmp) / f"back{attempt}"))
                t2 = time.perf_counter()
                put_times.append(t1 - t0)
                get_times.append(t2 - t1)
            count = sum(1 for p in (Path(tmp) / "back0").rglob("*") if p.is_file())
            assert count == args.files, count
            put_tree, get_tree = statistics.median(put_times), statistics.median(get_times)
            rows.append((f"put tree of {args.files} files (median of 3)", f"{put_tree:.3f} s", "< 1 s", put_tree < 1))
            rows.append((f"get tree of {args.files} files (median of 3)", f"{get_tree:.3f} s", "< 1 s", get_tree < 1))

            # 3. one large file, measured in a fresh process
            big = Path(tmp) / "big.bin"
            digest = write_big_file(big, args.big_mib)
            child = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--big-file-child", resource_.id, str(big),
                 str(Path(tmp) / "big-back.bin")],
                capture_output=True, text=True, check=False,
            )
            if child.returncode != 0:
                print(child.stderr, file=sys.stderr)
                return 1
            report: dict[str, Any] = json.loads(child.stdout)
            intact = report["remote_size"] == args.big_mib << 20 and sha256_of(Path(tmp) / "big-back.bin") == digest
            rate = args.big_mib / 1024
            rows.append((f"put {args.big_mib} MiB file", f"{report['put_s']:.2f} s ({rate / report['put_s']:.2f} GiB/s)",
                         "streamed", intact))
            rows.append((f"get {args.big_mib} MiB file", f"{report['get_s']:.2f} s ({rate / report['get_s']:.2f} GiB/s)",
                         "streamed, sha256 equal", intact))
            peak = report["peak_kib"] / 1024
            rows.append(("peak RSS of the transferring process", f"{peak:.1f} MiB "
                         f"(after imports: {report['before_kib'] / 1024:.1f})", "< 100 MiB", peak < 100))
    finally:
        resource_.delete()

    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'value':<{vwidth}}  {'target':<22}  ok")
    print("-" * (width + vwidth + 30))
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:<{vwidth}}  {target:<22}  {'yes' if ok else 'NO'}")
    engine = client.version()
    print(f"\nengine {engine.get('Version')} (API {engine.get('ApiVersion')}), docker SDK {docker.__version__}, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
