"""Benchmark ``reproman jobs --report`` for a 1,000-subjob job (issue 16: generation < 1 s).

A real job is run first: ``reproman run --follow`` with 1,000 batch values on
the local resource (one subjob in 50 fails), in a throwaway HOME and XDG
directories. Then, with everything on disk as a user would have it:

* **generation**: in one process, gather the data (status read, one ``find``
  for the subjobs' times) and render and write the HTML; median of
  ``--repeat`` runs, plus the rendering alone;
* **command**: ``reproman jobs --report JOB -o FILE`` end to end (Python
  start-up, plotly import included); median of ``--repeat`` runs;
* the file's size (plotly.js, inlined, is most of it).

Needs the report extra (``pip install 'reproman-core[report]'``).

    python benchmarks/report.py [--subjobs 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reproman-bench-report-") as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        (root / "home").mkdir()
        env = {**os.environ, "HOME": str(root / "home"), "XDG_DATA_HOME": str(root / "data"),
               "XDG_CONFIG_HOME": str(root / "config")}
        os.environ.update(env)  # the in-process measurement reads the same registry
        values = ",".join(str(i) for i in range(args.subjobs))
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "reproman", "run", "--follow", "--json", "--bp", f"i={values}",
                              "sh", "-c", "[ $(( {p[i]} % 50 )) -ne 7 ]"], cwd=work, env=env,
                             capture_output=True, text=True)
        run_s = time.perf_counter() - t0
        if run.returncode not in (0, 1):
            raise SystemExit(f"benchmark: reproman run failed ({run.returncode}): {run.stderr[-2000:]}")
        data = json.loads(run.stdout)
        jobid = (data[0] if isinstance(data, list) else data)["jobid"]

        from reproman.jobs.registry import Registry
        from reproman.report import write_file
        from reproman.report.collect import collect
        from reproman.report.render import render_html

        job = Registry().load(jobid)
        out = work / "report.html"
        generation, rendering = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            report = collect(job)
            middle = time.perf_counter()
            text = render_html(report)
            write_file(str(out), text)
            end = time.perf_counter()
            generation.append(end - start)
            rendering.append(end - middle)
        commands = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "reproman", "jobs", "--report", jobid, "-o", str(out)],
                           cwd=work, env=env, capture_output=True, check=True)
            commands.append(time.perf_counter() - start)
        size = out.stat().st_size
        timed = [r for r in report.subjobs if r.start is not None and r.end is not None]
    results = {
        "subjobs": args.subjobs,
        "failed_subjobs": report.counts()["failed"],
        "subjobs_with_times": len(timed),
        "run_follow_seconds": round(run_s, 2),
        "generation_seconds_median": round(statistics.median(generation), 3),
        "render_and_write_seconds_median": round(statistics.median(rendering), 3),
        "command_seconds_median": round(statistics.median(commands), 3),
        "file_bytes": size,
        "file_mib": round(size / 1024**2, 2),
    }
    results["target_generation_under_1s"] = results["generation_seconds_median"] < TARGET_S
    print(json.dumps(results, indent=2))
    return 0 if results["target_generation_under_1s"] else 1


if __name__ == "__main__":
    sys.exit(main())
