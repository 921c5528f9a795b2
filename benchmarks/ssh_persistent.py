"""Benchmark a short command over SSH from the CLI: ReproMan's persistent connection against OpenSSH.

Run standalone: ``python benchmarks/ssh_persistent.py`` (needs openssh-server
and openssh-client; see tools/ci/sshd.sh). It starts its own sshd on
127.0.0.1, creates an ``ssh`` resource in a throwaway ReproMan home, starts an
OpenSSH ControlMaster, and then runs, interleaved (A B C D A B C D ...) so
that drifting machine load hits all alike, each a given number of times
(default 20, after one warm-up each):

- A ``reproman execute -r bench true`` (through the resource's session host);
- B ``ssh rmtest true`` (plain OpenSSH: a new connection and login each time);
- C ``ssh -o ControlPath=... rmtest true`` (reusing the OpenSSH master);
- D ``reproman execute -r direct true`` (the same with ``persistent=no``).

It prints the median wall and CPU time of each and the ratios. Issue 17's
targets: A at or below B, and within 2x of C. The same pairs can be timed
with ``farm-bench`` (it prints the commands to do so).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reproman_backend_ssh.testing import LocalSSHD, find_sshd


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system of the process and its children) seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _stop(server: LocalSSHD, timeout: float = 5) -> None:
    """``server.stop()`` without :mod:`reproman.testing.services`, which needs pytest (not in a wheels venv).

    The sshd was started in its own session: its process group is it and
    every connection it forked. What is left for ``stop()`` is its PAM file.
    """
    process = server.process
    if process is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        server.process = None
    server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="runs of each command (default 20)")
    args = parser.parse_args(argv)
    if find_sshd() is None or shutil.which("ssh") is None:
        print("sshd or ssh not found: run tools/ci/sshd.sh first", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="reproman-bench-"))
    control = Path(tempfile.mkdtemp(prefix="rm-bench-", dir="/tmp"))
    env = {**os.environ, "HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp / "config"),
           "XDG_DATA_HOME": str(tmp / "data"), "REPROMAN_SESSIONS_CONTROL_DIR": str(control)}
    env.pop("SSH_AUTH_SOCK", None)
    reproman = [str(Path(sys.executable).with_name("reproman"))]
    if not os.access(reproman[0], os.X_OK):
        reproman = [sys.executable, "-m", "reproman"]
    master = str(control / "openssh-master")
    server = LocalSSHD(tmp / "sshd").start()
    ssh = ["ssh", "-F", str(server.ssh_config), "-o", f"UserKnownHostsFile={server.known_hosts}",
           "-o", "BatchMode=yes"]
    try:
        for name, extra in (("bench", []), ("direct", ["-b", "persistent=no"])):
            create = [*reproman, "create", name, "-t", "ssh", *extra]
            for key, value in server.session_params().items():
                create += ["-b", f"{key}={value}"]
            subprocess.run(create, env=env, check=True, capture_output=True)
        subprocess.run([*ssh, "-o", "ControlMaster=yes", "-o", f"ControlPath={master}", "-o", "ControlPersist=600",
                        "-fN", "rmtest"], env=env, check=True)
        commands = {
            "A reproman execute (persistent)": [*reproman, "execute", "-r", "bench", "true"],
            "B ssh (new connection)": [*ssh, "rmtest", "true"],
            "C ssh, ControlMaster reused": [*ssh, "-o", f"ControlPath={master}", "rmtest", "true"],
            "D reproman execute (persistent=no)": [*reproman, "execute", "-r", "direct", "true"],
        }
        for argv_ in commands.values():
            _run(argv_, env)  # warm-up (page cache, the session host's first command)
        walls: dict[str, list[float]] = {label: [] for label in commands}
        cpus: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.runs):
            for label, argv_ in commands.items():
                wall, cpu = _run(argv_, env)
                walls[label].append(wall)
                cpus[label].append(cpu)
        median = {label: statistics.median(times) for label, times in walls.items()}
        width = max(map(len, commands))
        print(f"{'command'.ljust(width)}  {'wall ms':>8}  {'cpu ms':>7}   (medians of {args.runs})")
        for label in commands:
            print(f"{label.ljust(width)}  {1000 * median[label]:8.1f}  {1000 * statistics.median(cpus[label]):7.1f}")
        a, b, c = (median[k] for k in list(commands)[:3])
        print(f"A/B = {a / b:.2f} (target <= 1)   A/C = {a / c:.2f} (target <= 2)")
        print("\nThe same pairs with farm-bench (while this environment exists):")
        for other in list(commands)[1:3]:
            print(f"  farm-bench -n {args.runs} --vs '{' '.join(commands[other])}' -- {' '.join(commands[list(commands)[0]])}")
    finally:
        subprocess.run([*ssh, "-o", f"ControlPath={master}", "-O", "exit", "rmtest"], env=env, capture_output=True)
        from reproman.resources.persistent import shutdown_all

        os.environ["REPROMAN_SESSIONS_CONTROL_DIR"] = str(control)
        shutdown_all(control)
        _stop(server)
        shutil.rmtree(control, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
