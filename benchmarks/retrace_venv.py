"""Benchmark: retrace 1,876 ``.py`` files of a virtualenv's site-packages.

The old ReproMan took 15.9 s for this (``pip list`` + ``pip show`` per
package, several commands per file); the target is under 1 s.

The venv is built once (``python -m venv`` + a few pure-Python packages from
PyPI) and reused from ``--venv`` on later runs. The timed part is the whole
retrace pipeline (canonicalisation and every registered tracer, through a
session), then the venv tracer alone; remote commands are counted at the
session, so the figure holds for SSH/docker sessions too (one round trip
per command).

Usage::

    python benchmarks/retrace_venv.py [--venv /tmp/reproman-bench-venv] [--files 1876] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: Pure-Python packages that together ship well over 1,876 .py files.
PACKAGES = ("sympy==1.12", "mpmath==1.3.0", "docutils==0.20.1", "pygments==2.17.2")


def ensure_venv(path: Path) -> Path:
    """The benchmark venv, built on first use."""
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    marker = path / ".reproman-bench"
    if not marker.exists():
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PACKAGES],
                       check=True)
        marker.write_text("\n".join(PACKAGES))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default="/tmp/reproman-bench-venv", help="Where the venv is (built if absent).")
    parser.add_argument("--files", type=int, default=1876, help="How many .py files to retrace.")
    parser.add_argument("--repeat", type=int, default=5, help="Timed runs (the median is reported).")
    args = parser.parse_args(argv)

    from reproman.resources.session import CommandResult
    from reproman.resources.shell import ShellSession
    from reproman.tracing.retrace import trace_paths
    from reproman.tracing.venv import VenvTracer

    class CountingSession(ShellSession):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def _execute(self, command: str, stdin: bytes | None = None) -> CommandResult:
            self.count += 1
            return super()._execute(command, stdin=stdin)

    venv = ensure_venv(Path(args.venv).resolve())
    site = next((venv / "lib").glob("python*/site-packages"))
    files = sorted(str(p) for p in site.rglob("*.py"))
    if len(files) < args.files:
        print(f"only {len(files)} .py files in {site}; install more packages", file=sys.stderr)
        return 1
    files = files[: args.files]

    def run(label: str, fn) -> None:  # type: ignore[no-untyped-def]
        times, counts = [], []
        for _ in range(args.repeat):
            session = CountingSession()
            began = time.perf_counter()
            claimed = fn(session)
            times.append(time.perf_counter() - began)
            counts.append(session.count)
        print(f"{label}: {len(files)} files, median {statistics.median(times):.3f} s "
              f"(min {min(times):.3f}, max {max(times):.3f}), {counts[0]} remote commands, "
              f"{claimed} files claimed by venv")

    def full(session: CountingSession) -> int:
        spec = trace_paths(session, files)
        venv_entry = spec.get_distribution("venv") or {}
        return sum(len(p.get("files") or []) for e in venv_entry.get("environments") or []
                   for p in e.get("packages") or [])

    def tracer_only(session: CountingSession) -> int:
        return len(VenvTracer(session).identify(files).claimed)

    run("retrace (all tracers)", full)
    run("venv tracer alone    ", tracer_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
