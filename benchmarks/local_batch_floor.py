"""Where a local batch's subjob time goes: process spawns against the per-subjob files (issue 17).

``local_batch.py`` measures ReproMan end to end; this script takes the
subjob phase apart with plain shell loops of the same 1,000 commands
(``sh -c 'mkdir -p out && echo N > out/N'``), two workers as the local
launcher runs them on a 2-CPU machine:

* **xargs**: ``xargs -P CPUS``, the issue's yardstick;
* **spawn**: two ``sh`` workers, each subjob a subshell running the command
  (what the launcher does, without any file of its own);
* **files**: the same, plus the files a subjob has in the job directory:
  claimed ``started.N`` (then its environment record), ``stdout.N``,
  ``stderr.N``, ``status.N`` written "running" then final;
* **files in memory**: the same with the job directory on tmpfs (``/dev/shm``),
  to tell the file system's cost per created file from the shell's;
* **launcher**: ReproMan's own launcher and runscript on a finished job's
  directory (``submit`` run again), environment capture included.

Interleaved repeats, medians. The difference between *spawn* and *files*
is what the per-subjob files cost on this machine's file system; the
difference between *files* and *launcher* is ReproMan's shell code.

    python benchmarks/local_batch_floor.py [--subjobs 1000] [--repeat 5]
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

SPAWN = r"""
n=$1; w() { i=$1; while [ "$i" -lt "$n" ]; do (sh -c "mkdir -p out && echo $i > out/$i"); i=$((i + 2)); done; }
w 0 & w 1 & wait
"""

FILES = r"""
n=$1; d=${2:-$PWD}/jd; mkdir -p "$d"
w() {
  i=0
  while [ "$i" -lt "$n" ]; do
    if { set -C; : > "$d/started.$i"; } 2>/dev/null; then
      set +C
      (
        exec > "$d/stdout.$i" 2> "$d/stderr.$i" < /dev/null
        printf 'running\n' > "$d/status.$i"
        printf 'host=%s\n' "$i" > "$d/started.$i"
        sh -c "mkdir -p out && echo $i > out/$i"; rc=$?
        printf 'succeeded %s\n' "$rc" > "$d/status.$i"
      )
    else
      set +C
    fi
    i=$((i + 1))
  done
}
w & w & wait
"""


def _timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def _fresh(root: Path, name: str) -> Path:
    path = root / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


def _reproman() -> list[str]:
    exe = shutil.which("reproman")
    return [exe] if exe else [sys.executable, "-m", "reproman"]


def _launcher_job(n: int, root: Path) -> tuple[Path, Path, dict[str, str]]:
    """A finished n-subjob local job, not fetched: its directory (to run ``submit`` again) and working directory."""
    env = {**os.environ, "HOME": str(root / "home"), "XDG_DATA_HOME": str(root / "data"),
           "XDG_CONFIG_HOME": str(root / "config")}
    (root / "home").mkdir(exist_ok=True)
    work = _fresh(root, "project")
    argv = [*_reproman(), "run", "--bp", f"i=1..{n}", "-o", "out/{p[i]}", "sh", "-c",
            "mkdir -p out && echo {p[i]} > out/{p[i]}"]
    jobid = subprocess.run(argv, cwd=work, env=env, check=True, capture_output=True, text=True).stdout.strip()
    (jobdir,) = glob.glob(str(root / "home" / ".reproman" / "run-root" / ".reproman" / "jobs" / "local" / jobid))
    deadline = time.monotonic() + 600
    while not os.path.exists(os.path.join(jobdir, "completed")):
        if time.monotonic() > deadline:
            raise SystemExit("the batch did not finish within 10 minutes")
        time.sleep(0.05)
    return Path(jobdir), root / "home" / ".reproman" / "run-root" / jobid, env


def _launcher(jobdir: Path, workdir: Path) -> float:
    for pattern in ("started.*", "status.*", "stdout.*", "stderr.*", "completed", "env/n.*.lock"):
        for path in glob.glob(str(jobdir / pattern)):
            os.unlink(path)
    shutil.rmtree(workdir / "out", ignore_errors=True)
    return _timed(["sh", str(jobdir / "submit")], workdir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.subjobs
    cpus = os.cpu_count() or 1
    times: dict[str, list[float]] = {"xargs": [], "spawn": [], "files": [], "shm": [], "launcher": []}
    shm = Path("/dev/shm") if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="reproman-floor-") as tmp:
        root = Path(tmp)
        jobdir, workdir, _env = _launcher_job(n, root)
        for _ in range(args.repeat):
            times["xargs"].append(_timed(["sh", "-c", f"seq 0 {n - 1} | xargs -P {cpus} -I{{}} "
                                          "sh -c 'mkdir -p out && echo {} > out/{}'"], _fresh(root, "x")))
            times["spawn"].append(_timed(["sh", "-c", SPAWN, "sh", str(n)], _fresh(root, "s")))
            times["files"].append(_timed(["sh", "-c", FILES, "sh", str(n)], _fresh(root, "f")))
            if shm is not None:
                with tempfile.TemporaryDirectory(prefix="reproman-floor-", dir=shm) as memory:
                    times["shm"].append(_timed(["sh", "-c", FILES, "sh", str(n), memory], _fresh(root, "m")))
            times["launcher"].append(_launcher(jobdir, workdir))
    med = statistics.median
    base = med(times["xargs"])
    print(f"{n} subjobs, {args.repeat} interleaved runs each, medians (min-max):")
    for name, label in (("xargs", f"xargs -P {cpus}"), ("spawn", "2 sh workers, a subshell per subjob"),
                        ("files", "the same with the 4 per-subjob files"),
                        ("shm", "the same, those files on tmpfs"),
                        ("launcher", "ReproMan's launcher and runscript")):
        values = times[name]
        if not values:
            continue
        print(f"  {label:42} {med(values):6.2f} s ({min(values):.2f}-{max(values):.2f})  {med(values) / base:5.2f}x")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {cpus} CPUs, load average {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
