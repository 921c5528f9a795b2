"""A large local batch end to end, and where its time goes (issue 17).

``reproman run --follow --bp i=1..N -o 'out/{p[i]}' sh -c 'mkdir -p out && echo {p[i]} > out/{p[i]}'``
on the built-in local resource, against ``xargs -P CPUS`` running the same
N commands. Every figure comes from the real CLI in subprocesses, each run
with a throwaway HOME and data directory. Besides the end-to-end time, one
detached run per repetition is taken apart:

* submit: ``reproman run`` without ``--follow`` (record, runscript, staging, launcher started);
* subjobs: from the launcher's start (its ``submission-id`` file) to its
  ``completed`` marker: the runscript and status files, i.e. what the
  subjobs cost beyond the commands;
* fetch: ``reproman jobs JOB`` once the job has finished (one status read,
  the output checksums, the transfer of N outputs and the logs, landing);
* polling: what ``--follow`` adds beyond those three (the wait between the
  last subjob's end and the poll that sees it, and the polls' own cost).

All runs share one HOME, as a user's runs do: the first job on a machine
traces its software environment once (issue 15; then cached on the
resource until a package database or the program changes), and that first
run is reported on its own. Each timed run starts after ``sync``: the
file system's pending work (the previous run's thousands of deleted files,
which this machine's ``discard`` mount turns into TRIM commands at the next
journal commit) would otherwise land in whichever run comes next, not in the
one that caused it. Target: ``run --follow`` of 1,000 subjobs under
3 s. Run:

    python benchmarks/local_batch.py [--subjobs 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 3.0


def _env(root: Path) -> dict[str, str]:
    (root / "home").mkdir(parents=True, exist_ok=True)
    return {**os.environ, "HOME": str(root / "home"), "XDG_DATA_HOME": str(root / "data"),
            "XDG_CONFIG_HOME": str(root / "config")}


def _reproman() -> list[str]:
    exe = shutil.which("reproman")
    return [exe] if exe else [sys.executable, "-m", "reproman"]


def _command(n: int, follow: bool) -> list[str]:
    argv = [*_reproman(), "run", "--bp", f"i=1..{n}", "-o", "out/{p[i]}"]
    if follow:
        argv.append("--follow")
    return [*argv, "sh", "-c", "mkdir -p out && echo {p[i]} > out/{p[i]}"]


def _check(work: Path, n: int) -> None:
    produced = len(os.listdir(work / "out")) if (work / "out").is_dir() else 0
    if produced != n:
        raise SystemExit(f"{produced} of {n} outputs were fetched")


def end_to_end(n: int, root: Path) -> float:
    with tempfile.TemporaryDirectory(prefix="work-", dir=root) as tmp:
        work = Path(tmp)
        os.sync()
        start = time.perf_counter()
        proc = subprocess.run(_command(n, follow=True), cwd=work, env=_env(root), capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr[-2000:]}")
        _check(work, n)
        return elapsed


def phases(n: int, root: Path) -> dict[str, float]:
    """Submit, subjobs (launcher start to completed marker) and fetch of one detached run."""
    with tempfile.TemporaryDirectory(prefix="work-", dir=root) as tmp:
        work = Path(tmp)
        env = _env(root)
        os.sync()
        start = time.perf_counter()
        proc = subprocess.run(_command(n, follow=False), cwd=work, env=env, capture_output=True, text=True)
        submit = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr[-2000:]}")
        jobid = proc.stdout.strip()
        (jobdir,) = glob.glob(str(root / "home" / ".reproman" / "run-root" / ".reproman" / "jobs" / "local" / jobid))
        completed = Path(jobdir, "completed")
        deadline = time.monotonic() + 600
        while not completed.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the batch did not finish within 10 minutes")
            time.sleep(0.05)
        subjobs = completed.stat().st_mtime - Path(jobdir, "submission-id").stat().st_mtime
        start = time.perf_counter()
        proc = subprocess.run([*_reproman(), "jobs", jobid], cwd=work, env=env, capture_output=True, text=True)
        fetch = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"fetch failed ({proc.returncode}): {proc.stderr[-2000:]}")
        _check(work, n)
        return {"submit": submit, "subjobs": subjobs, "fetch": fetch}


def xargs(n: int) -> float:
    with tempfile.TemporaryDirectory(prefix="reproman-bench-") as tmp:
        os.sync()
        start = time.perf_counter()
        subprocess.run(["sh", "-c", f"seq 1 {n} | xargs -P {os.cpu_count() or 1} -I{{}} "
                        "sh -c 'mkdir -p out && echo {} > out/{}'"], cwd=tmp, check=True)
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.subjobs
    totals, baselines, parts = [], [], []
    with tempfile.TemporaryDirectory(prefix="reproman-bench-") as tmp:
        root = Path(tmp)
        first = end_to_end(n, root)
        for _ in range(args.repeat):  # interleaved, so drifting machine load hits all figures alike
            totals.append(end_to_end(n, root))
            baselines.append(xargs(n))
            parts.append(phases(n, root))
    med = statistics.median
    total = med(totals)
    split = {k: med(p[k] for p in parts) for k in ("submit", "subjobs", "fetch")}
    polling = total - sum(split.values())
    print(f"{n} subjobs, {args.repeat} runs each, medians (min-max):")
    print(f"  first run on this machine (environment traced once): {first:.2f} s")
    print(f"  reproman run --follow   {total:6.2f} s  ({min(totals):.2f}-{max(totals):.2f})")
    print(f"  xargs -P {os.cpu_count()}              {med(baselines):6.2f} s  ({min(baselines):.2f}-{max(baselines):.2f})")
    print(f"  ratio                   {total / med(baselines):6.2f}x")
    for key, label in (("submit", "submit (record, staging, launch)"), ("subjobs", "subjobs (runscript + status files)"),
                       ("fetch", "fetch (status, checksums, transfer, landing)")):
        print(f"    {label:45} {split[key]:5.2f} s")
    print(f"    {'polling (rest of --follow)':45} {polling:5.2f} s")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load}; target < {TARGET} s: "
          f"{'ok' if total < TARGET else 'MISSED'}")
    return 0 if total < TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
