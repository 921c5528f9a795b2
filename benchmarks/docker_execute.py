"""Benchmark large command output through the docker backend against ``docker exec`` (issue 10, item 7).

    python benchmarks/docker_execute.py [--sizes 5,20,50] [--runs 3] [--old]

On one busybox container (``reproman-test-busybox:latest``, imported first if
missing), for each size N MiB of stdout (``head -c N /dev/zero``), the
median of ``--runs`` runs, interleaved so that all see the same engine load:

* ``docker exec BOX sh -c ...`` (the CLI, output read through a pipe): the baseline;
* ``reproman execute -r BOX sh -c ...`` (the CLI, output streamed to a pipe),
  in an isolated inventory that records BOX;
* ``DockerSession.execute_command`` in this process, output collected as bytes;
* the same, streamed to a callback;
* with ``--old``: the SDK's ``exec_start(demux=True)``, the path the backend
  used before (quadratic in the output size).

Target: 50 MiB through ``execute`` within 2x of ``docker exec`` (both the CLI
and the API are checked), every byte received (a short output is reported for
every measure, and fails the run for all but the old path). Prints a table and
exits non-zero if a target is missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from _common import isolated_env

if TYPE_CHECKING:
    from reproman.resources.session import Session

BENCH_LABEL = "reproman-bench=1"


def _time(func: Callable[[], int]) -> tuple[float, int]:
    """Seconds taken by ``func`` and the number of bytes it received."""
    started = time.perf_counter()
    got = func()
    return time.perf_counter() - started, got


def _measures(
    command: str, container_id: str, name: str, env: dict[str, str], session: Session, old_client: Any
) -> dict[str, Callable[[], int]]:
    """Each way of running ``command``, returning how many bytes of stdout it got."""

    def docker_exec() -> int:
        argv = ["docker", "exec", container_id, "sh", "-c", command]
        return len(subprocess.run(argv, stdout=subprocess.PIPE, check=True).stdout)

    def reproman_execute() -> int:
        argv = [sys.executable, "-m", "reproman", "execute", "-r", name, "sh", "-c", command]
        return len(subprocess.run(argv, stdout=subprocess.PIPE, env=env, check=True).stdout)

    def collected() -> int:
        return len(session.execute_command(command).stdout_bytes)

    def streamed() -> int:
        received = [0]

        def count(_stream: int, data: bytes) -> None:
            received[0] += len(data)

        session.execute_command(command, on_output=count)
        return received[0]

    measures = {
        "docker exec (CLI)": docker_exec,
        "reproman execute -r (CLI)": reproman_execute,
        "execute_command, collected": collected,
        "execute_command, streamed": streamed,
    }
    if old_client is not None:
        def sdk_demux() -> int:
            api = old_client.api
            return len(api.exec_start(api.exec_create(container_id, ["/bin/sh", "-c", command])["Id"], demux=True)[0])

        measures["SDK exec_start(demux=True) (old path)"] = sdk_demux
    return measures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5,20,50", help="output sizes in MiB, comma-separated (default 5,20,50)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measure; the median is shown (default 3)")
    parser.add_argument("--old", action="store_true", help="also time the SDK's exec_start(demux=True) (slow)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if shutil.which("docker") is None:
        raise SystemExit("the docker CLI is needed for the baseline")

    import docker

    from reproman_backend_docker.session import DockerSession
    from reproman_backend_docker.testimages import ensure_busybox_image

    client = docker.from_env()
    image = ensure_busybox_image(client)
    env = isolated_env()
    name = f"rm-bench-{uuid.uuid4().hex[:8]}"
    created = subprocess.run(
        [sys.executable, "-m", "reproman", "create", name, "-t", "docker-container", "-b", f"image={image}",
         "-b", f"labels={BENCH_LABEL}"], env=env, capture_output=True, text=True,
    )
    if created.returncode != 0:
        raise SystemExit(f"cannot create the container: {created.stderr.strip()}")
    rows: list[tuple[str, str, str, bool]] = []
    try:
        container = client.containers.get(name)
        with DockerSession(container.id) as session:
            for mib in sizes:
                size = mib << 20
                command = f"head -c {size} /dev/zero"
                measures = _measures(command, container.id, name, env, session, client if args.old else None)
                times: dict[str, list[float]] = {label: [] for label in measures}
                short: dict[str, list[int]] = {label: [] for label in measures}
                for _run in range(args.runs):
                    for label, func in measures.items():
                        elapsed, got = _time(func)
                        times[label].append(elapsed)
                        if got != size:
                            short[label].append(size - got)
                baseline = statistics.median(times["docker exec (CLI)"])
                for label, values in times.items():
                    median = statistics.median(values)
                    ratio = median / baseline
                    checked = mib == 50 and label in ("reproman execute -r (CLI)", "execute_command, collected")
                    target = "<= 2x docker exec" if checked else ("(baseline)" if label.startswith("docker") else "")
                    value = f"{median:.3f} s  ({ratio:.2f}x, {mib / median:.0f} MiB/s)"
                    if short[label]:  # every byte must arrive, whatever the speed
                        value += f"  OUTPUT SHORT by {short[label]} bytes"
                    rows.append((f"{mib} MiB  {label}", value, target,
                                 (ratio <= 2 if checked else True) and (not short[label] or "old path" in label)))
    finally:
        subprocess.run([sys.executable, "-m", "reproman", "delete", "-y", name], env=env, capture_output=True)
        try:
            client.api.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass

    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'median of ' + str(args.runs):<{vwidth}}  {'target':<18}  ok")
    print("-" * (width + vwidth + 26))
    for label, value, target, ok in rows:
        print(f"{label:<{width}}  {value:<{vwidth}}  {target:<18}  {'yes' if ok else 'NO'}")
    engine = client.version()
    print(f"\nengine {engine.get('Version')} (API {engine.get('ApiVersion')}), docker SDK {docker.__version__}, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
