"""Start-up cost of the CLI with every installed plugin: ``reproman --help`` and ``reproman ls``.

Target (issue 2): median at most 120 ms wall for each. Run:

    python benchmarks/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from _common import isolated_env, median_ms, time_command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    opts = parser.parse_args()
    exe = shutil.which("reproman")
    if exe is None:
        sys.exit("reproman is not installed on PATH")
    env = isolated_env()
    for i in range(5):
        subprocess.run([exe, "create", f"bench-{i}", "-t", "shell"], env=env, check=True, capture_output=True)
    plugins = subprocess.run([exe, "plugins"], env=env, capture_output=True, text=True, check=True).stdout
    print("installed plugins:\n" + plugins)
    heavy = subprocess.run(
        [sys.executable, "-c",
         "import sys, runpy; sys.argv=['reproman','ls']; import reproman.cli.main as m; m.main(['ls']);"
         "print('HEAVY:' + ','.join(x for x in ('docker','boto3','fabric','paramiko','datalad','rich') if x in sys.modules))"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1].removeprefix("HEAVY:")
    baseline = time_command([sys.executable, "-c", "pass"], env, opts.runs)
    print(f"{'command':<28}{'median ms':>10}{'min ms':>10}")
    print(f"{'python -c pass (floor)':<28}{median_ms(baseline):>10.1f}{min(baseline) * 1000:>10.1f}")
    worst = 0.0
    for args in (["--help"], ["ls"], ["ls", "--json"]):
        times = time_command([exe, *args], env, opts.runs)
        worst = max(worst, median_ms(times))
        print(f"{'reproman ' + ' '.join(args):<28}{median_ms(times):>10.1f}{min(times) * 1000:>10.1f}")
    print(f"heavy modules imported by 'ls' (pipe): {heavy or 'none'}")
    print(f"target: median <= 120 ms -> {'PASS' if worst <= 120 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
