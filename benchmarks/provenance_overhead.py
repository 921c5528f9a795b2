"""Benchmark: what environment capture and output checksums cost a batch (issue 15).

For a 100-subjob local batch and a 100-subjob Slurm array, ``reproman run
--follow`` is timed end to end (CLI start-up, submission, the subjobs,
polling, fetching 100 outputs) with provenance on (the default: environment
capture on the nodes, checksums at fetch) and off (``REPROMAN_RUN_CAPTURE=off``),
in the same run, alternating on and off so load from elsewhere hits both
alike. Target: steady-state overhead < 10 %.

Two figures per backend, honestly apart:

* **first run**: a fresh user and resource root: the node tool is sent and
  the node traces the executable's packages (once per node and environment);
* **steady state**: later jobs in the same root: the node finds its cached
  trace valid with shell builtins and links it; per subjob a few builtins.

Each job writes one small output per subjob. Usage::

    python benchmarks/provenance_overhead.py [--subjobs 100] [--repeat 5] [--repeat-local 21] [--skip-slurm]

The steady-state overhead is the median of the on/off pairs' differences
(each pair runs back to back) over the median run without provenance.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 0.10


class World:
    """A throwaway user (HOME, XDG dirs) and a directory to run from."""

    def __init__(self, tag: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"reproman-prov-{tag}-"))
        self.home = self.root / "home"
        self.home.mkdir()
        self.runs = 0

    def env(self, capture: bool) -> dict[str, str]:
        env = dict(os.environ)
        env.update(HOME=str(self.home), XDG_DATA_HOME=str(self.root / "data"),
                   XDG_CONFIG_HOME=str(self.root / "config"), XDG_CACHE_HOME=str(self.root / "cache"))
        env.pop("REPROMAN_RUN_CAPTURE", None)
        if not capture:
            env["REPROMAN_RUN_CAPTURE"] = "off"
        return env

    def run(self, subjobs: int, capture: bool, slurm: bool) -> float:
        self.runs += 1
        work = self.root / f"work-{self.runs}"
        work.mkdir()
        argv = [sys.executable, "-m", "reproman", "run", "--follow",
                "--bp", "i=" + ",".join(str(i) for i in range(subjobs)), "-o", "out/{p[i]}"]
        if slurm:
            argv += ["--submitter", "slurm", "--jp", f"root_directory={self.root / 'slurm-root'}",
                     "--jp", "directives=--oversubscribe"]
        argv += ["sh", "-c", "mkdir -p out && echo {p[i]} > out/{p[i]}"]
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=work, env=self.env(capture), capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr[-2000:]}")
        if len(list((work / "out").iterdir())) != subjobs:
            raise SystemExit("not every output was fetched")
        shutil.rmtree(work)
        return elapsed

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def measure(name: str, subjobs: int, repeat: int, slurm: bool) -> bool:
    cold_on: list[float] = []
    cold_off: list[float] = []
    on: list[float] = []
    off: list[float] = []
    for r in range(max(1, repeat // 2)):
        # First run: fresh worlds, one with provenance, one without.
        for capture, times in ((True, cold_on), (False, cold_off)) if r % 2 == 0 else \
                ((False, cold_off), (True, cold_on)):
            world = World(name)
            try:
                times.append(world.run(subjobs, capture, slurm))
            finally:
                world.close()
    world = World(name)
    try:
        world.run(subjobs, True, slurm)  # warm-up: tool sent, node trace cached
        world.run(subjobs, False, slurm)
        for r in range(repeat):
            order = (True, False) if r % 2 == 0 else (False, True)
            for capture in order:
                (on if capture else off).append(world.run(subjobs, capture, slurm))
    finally:
        world.close()
    ok = True
    for label, a, b in (("first run", cold_on, cold_off), ("steady state", on, off)):
        m_on, m_off = statistics.median(a), statistics.median(b)
        overhead = (m_on - m_off) / m_off
        verdict = ""
        if label == "steady state":
            # Each on/off pair ran back to back: the median of the pairs' differences cancels load that drifts
            # over the minutes of the measurement, which a difference of two medians does not.
            paired = sorted(x - y for x, y in zip(a, b))
            quartiles = statistics.quantiles(paired, n=4) if len(paired) > 1 else [paired[0]] * 3
            overhead = statistics.median(paired) / m_off
            ok = overhead < TARGET
            verdict = (f"; paired differences: median {statistics.median(paired) * 1e3:+.0f} ms, "
                       f"interquartile {quartiles[0] * 1e3:+.0f}..{quartiles[2] * 1e3:+.0f} ms; "
                       f"target < {TARGET:.0%}: {'ok' if ok else 'MISSED'}")
        print(f"{name:<6} {subjobs} subjobs, {label:<12}: with provenance {m_on:.3f} s, without {m_off:.3f} s "
              f"(medians of {len(a)}); overhead {overhead:+.1%}{verdict}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjobs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5, help="on/off pairs per backend")
    parser.add_argument("--repeat-local", type=int, default=None,
                        help="on/off pairs for the local batch (cheap: a pair takes about a second)")
    parser.add_argument("--skip-slurm", action="store_true")
    args = parser.parse_args()
    ok = measure("local", args.subjobs, args.repeat_local or args.repeat, slurm=False)
    if not args.skip_slurm:
        if shutil.which("sbatch") is None:
            raise SystemExit("sbatch not found: start Slurm with tools/ci/slurm.sh, or pass --skip-slurm")
        ok = measure("slurm", args.subjobs, args.repeat, slurm=True) and ok
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}, "
          f"Python {sys.version.split()[0]}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
