#!/usr/bin/env python3
"""Benchmark: ``reproman retrace /usr/bin/*`` (issue target: under 0.6 s; old ReproMan 8.6 s).

Measures two things, because both matter:

* the wall time of the real command line, ``reproman retrace /usr/bin/*``,
  as a user runs it (interpreter start-up and imports included);
* inside one process, the time of the retrace itself and the number of
  remote commands it issued, counted by wrapping the session's
  ``execute_command``: that count is what an SSH round trip multiplies.

Usage: python benchmarks/retrace_usr_bin.py [--repeat N] [GLOB_DIR]
"""

from __future__ import annotations

import argparse
import glob
import statistics
import subprocess
import sys
import time

from _common import count_commands


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default="/usr/bin")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    paths = sorted(glob.glob(f"{args.directory}/*"))
    print(f"{len(paths)} paths under {args.directory}")

    # 1. The command line, as users run it.
    walls = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "reproman", "retrace", *paths],
                              capture_output=True, text=True)
        walls.append(time.perf_counter() - began)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
    print(f"CLI  reproman retrace {args.directory}/*: median {statistics.median(walls):.3f} s, "
          f"min {min(walls):.3f} s over {args.repeat} runs")

    # 2. In-process: retrace alone, and the remote commands it issued.
    from reproman.resources.shell import ShellSession
    from reproman.tracing.retrace import trace_paths

    times = []
    spec = None
    issued: list[str] = []
    for _ in range(args.repeat):
        session = ShellSession()
        issued = count_commands(session)
        began = time.perf_counter()
        spec = trace_paths(session, paths)
        times.append(time.perf_counter() - began)
    assert spec is not None
    packages = sum(len(d.get("packages") or []) for d in spec.distributions)
    print(f"API  trace_paths: median {statistics.median(times):.3f} s, min {min(times):.3f} s; "
          f"{len(issued)} remote commands; {packages} packages, {len(spec.files)} unclaimed files")
    for command in issued:
        print(f"     - {command.strip().splitlines()[0][:100]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
