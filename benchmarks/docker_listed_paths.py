"""Benchmark moving many listed paths to and from a container (issue 10: transfers at any scale).

    python benchmarks/docker_listed_paths.py [--counts 1000,10000]

On one busybox container (``reproman-test-busybox:latest``, imported first if
missing), for each count N: ``put_many`` of N files listed one by one (spread
over 10 directories, so the destinations are not one tree), then ``get_many``
of the same N paths to N local names; beside them, in the same run,
``docker cp`` of one directory holding the same N files each way (the
Engine's own single-archive copy, the floor for one stream).

Also counts the Engine exec instances each transfer opened, to show that the
number of commands does not grow with N. Target: each way in one stream (at
most 2 execs), and no argument-length failure at 10,000.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BENCH_LABEL = "reproman-bench=1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1000,10000", help="numbers of paths, comma-separated")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",") if c]
    if shutil.which("docker") is None:
        raise SystemExit("the docker CLI is needed for the baseline")

    import docker

    from reproman_backend_docker import execstream
    from reproman_backend_docker.resource import DockerContainer
    from reproman_backend_docker.testimages import ensure_busybox_image

    execs = [0]
    original_init = execstream.ExecStream.__init__

    def counting_init(self: execstream.ExecStream, *a: object, **k: object) -> None:
        execs[0] += 1
        original_init(self, *a, **k)  # type: ignore[arg-type]

    execstream.ExecStream.__init__ = counting_init  # type: ignore[method-assign]
    client = docker.from_env()
    resource = DockerContainer(f"rm-bench-{uuid.uuid4().hex[:8]}", image=ensure_busybox_image(client),
                               labels=[BENCH_LABEL])
    resource.create()
    rows: list[tuple[str, str, str, bool]] = []
    try:
        assert resource.id
        with resource.get_session() as session, tempfile.TemporaryDirectory(prefix="rm-bench-") as tmp:
            for count in counts:
                src = Path(tmp) / f"src{count}"
                src.mkdir()
                names = [f"file-with-a-longish-name-{i:05d}.txt" for i in range(count)]
                for i, name in enumerate(names):
                    (src / name).write_text(f"{i}\n")
                base = f"/tmp/listed{count}"
                remote = [posixpath.join(base, f"d{i % 10}", name) for i, name in enumerate(names)]

                execs[0] = 0
                started = time.perf_counter()
                session.put_many([(src / name, dest) for name, dest in zip(names, remote)])
                put_s, put_execs = time.perf_counter() - started, execs[0]
                execs[0] = 0
                down = Path(tmp) / f"down{count}"
                started = time.perf_counter()
                session.get_many([(path, down / f"o{i}") for i, path in enumerate(remote)])
                get_s, get_execs = time.perf_counter() - started, execs[0]
                intact = len(os.listdir(down)) == count and (down / f"o{count - 1}").read_text() == f"{count - 1}\n"

                started = time.perf_counter()
                subprocess.run(["docker", "cp", str(src), f"{resource.id}:/tmp/cp{count}"], check=True)
                cp_in = time.perf_counter() - started
                started = time.perf_counter()
                subprocess.run(["docker", "cp", f"{resource.id}:/tmp/cp{count}", str(Path(tmp) / f"cp{count}")],
                               check=True)
                cp_out = time.perf_counter() - started
                session.execute_command(f"rm -rf {base} /tmp/cp{count}")

                rows.append((f"put_many, {count} listed paths", f"{put_s:.2f} s, {put_execs} exec(s)",
                             f"one stream; docker cp of the tree {cp_in:.2f} s", put_execs <= 2 and intact))
                rows.append((f"get_many, {count} listed paths", f"{get_s:.2f} s, {get_execs} exec(s)",
                             f"one stream; docker cp of the tree {cp_out:.2f} s", get_execs <= 2 and intact))
    finally:
        resource.delete()

    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    twidth = max(len(r[2]) for r in rows)
    print(f"{'measure':<{width}}  {'value':<{vwidth}}  {'target / baseline':<{twidth}}  ok")
    print("-" * (width + vwidth + twidth + 8))
    for label, value, target, ok in rows:
        print(f"{label:<{width}}  {value:<{vwidth}}  {target:<{twidth}}  {'yes' if ok else 'NO'}")
    print(f"\nPython {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
