"""Per-call overhead of the shell session against a bare ``subprocess.run``.

200 ``execute_command`` calls through one shell session, in one process,
beside 200 ``subprocess.run`` calls of the same command. Run:

    python benchmarks/shell_session.py [--calls N]
"""

from __future__ import annotations

import argparse
import subprocess

from _common import time_calls

from reproman.resources.shell import ShellSession


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    opts = parser.parse_args()
    n = opts.calls
    session = ShellSession()
    for label, func in (
        ("subprocess.run(['sh','-c',...])", lambda: subprocess.run(["sh", "-c", "echo hi"], capture_output=True)),
        ("ShellSession.execute_command(str)", lambda: session.execute_command("echo hi")),
        ("ShellSession.execute_command(list)", lambda: session.execute_command(["echo", "hi"])),
        ("  ... with env and cwd", lambda: session.execute_command(["echo", "hi"], env={"A": "b"}, cwd="/tmp")),
    ):
        time_calls(func, 10)
        total = time_calls(func, n)
        print(f"{label:<38} {n} calls {total:6.3f} s  {total / n * 1000:6.2f} ms/call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
