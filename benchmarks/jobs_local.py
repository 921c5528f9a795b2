"""Benchmark ``reproman run`` with the local submitter and plain orchestrator.

Measures, end to end through the real CLI in subprocesses (Python start-up
included):

(a) ``reproman run --follow`` of a 100-subjob batch of a trivial command
    (submit, run, poll, fetch 100 outputs); target < 3 s on a 2-core machine;
(b) submitting the same batch without ``--follow``; target < 1 s.

Each run uses a throwaway HOME and XDG data directory. Prints the median of
``--repeat`` runs (default 5) and exits non-zero if a target is missed.

    python benchmarks/jobs_local.py [--subjobs 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"follow": 3.0, "submit": 1.0}


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HOME=str(root / "home"), XDG_DATA_HOME=str(root / "data"), XDG_CONFIG_HOME=str(root / "config"))
    (root / "home").mkdir(parents=True, exist_ok=True)
    return env


def _time_run(subjobs: int, follow: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="reproman-bench-") as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        values = ",".join(str(i) for i in range(subjobs))
        argv = [sys.executable, "-m", "reproman", "run", "--bp", f"i={values}", "-o", "out/{p[i]}"]
        if follow:
            argv.insert(4, "--follow")
        argv += ["sh", "-c", "mkdir -p out && echo {p[i]} > out/{p[i]}"]
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=work, env=_env(root), capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr}")
        if follow and len(list((work / "out").iterdir())) != subjobs:
            raise SystemExit("not every output was fetched")
        if not follow:
            # Let the detached job finish before its directory is removed.
            jobid = proc.stdout.strip()
            subprocess.run([sys.executable, "-c", _WAIT, jobid], cwd=work, env=_env(root), check=True)
        return elapsed


_WAIT = """
import sys
from reproman.jobs.connection import Connection
from reproman.jobs.follow import follow
from reproman.jobs.registry import Registry
job = Registry().load(sys.argv[1])
with Connection.for_job(job) as c:
    follow(c, job, timeout=120)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjobs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    failed = False
    for name, follow in (("follow", True), ("submit", False)):
        times = [_time_run(args.subjobs, follow) for _ in range(args.repeat)]
        median = statistics.median(times)
        ok = median < TARGETS[name]
        failed |= not ok
        label = "run --follow" if follow else "run (submit only)"
        print(f"{label:20} {args.subjobs} subjobs: median {median:.3f} s over {args.repeat} runs "
              f"(min {min(times):.3f}, max {max(times):.3f}); target < {TARGETS[name]} s: {'ok' if ok else 'MISSED'}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load}, Python {sys.version.split()[0]}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
