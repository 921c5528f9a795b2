#!/usr/bin/env python3
"""Benchmark: retrace through an SSH session costs a bounded number of round trips.

Issue target: "report round trips and time for 1,000 files". Starts a
throwaway sshd on 127.0.0.1 (``reproman_backend_ssh.testing.LocalSSHD``,
needs openssh-server and reproman-backend-ssh), then retraces N files of
/usr/bin through an ``SSHSession`` and through the local shell session,
counting ``execute_command`` calls (each one is a round trip over SSH).
For comparison it also retraces 10 files: the count must not grow with N.

Usage: python benchmarks/retrace_ssh.py [--files 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import tempfile
import time
from typing import Any

from _common import count_commands


def measure(session: Any, paths: list[str], repeat: int) -> tuple[float, int, int]:
    from reproman.tracing.retrace import trace_paths

    times, commands, packages = [], 0, 0
    for _ in range(repeat):
        issued = count_commands(session)
        began = time.perf_counter()
        spec = trace_paths(session, paths)
        times.append(time.perf_counter() - began)
        commands = len(issued)
        packages = sum(len(d.get("packages") or []) for d in spec.distributions)
        session.execute_command = type(session).execute_command.__get__(session)
    return statistics.median(times), commands, packages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    try:
        from reproman_backend_ssh.session import SSHSession
        from reproman_backend_ssh.testing import LocalSSHD, find_sshd
    except ImportError:
        print("needs reproman-backend-ssh installed", file=sys.stderr)
        return 2
    if find_sshd() is None:
        print("needs sshd (openssh-server)", file=sys.stderr)
        return 2
    from reproman.resources.shell import ShellSession

    paths = sorted(glob.glob("/usr/bin/*"))[: args.files]
    with tempfile.TemporaryDirectory(prefix="reproman-bench-") as tmp:
        server = LocalSSHD(tmp).start()
        try:
            session = SSHSession(**server.session_params())  # type: ignore[arg-type]
            session.open()
            try:
                for label, sess in (("shell", ShellSession()), ("ssh", session)):
                    seconds, commands, packages = measure(sess, paths, args.repeat)
                    small_seconds, small_commands, _ = measure(sess, paths[:10], args.repeat)
                    print(f"{label:5s} retrace {len(paths)} files: {seconds:.3f} s, {commands} round trips, "
                          f"{packages} packages | 10 files: {small_seconds:.3f} s, {small_commands} round trips")
            finally:
                session.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
