"""Small helpers shared by the benchmark scripts (timing and isolated users)."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any


def isolated_env() -> dict[str, str]:
    """An environment whose config and data dirs are fresh, so benchmarks touch nothing real."""
    home = tempfile.mkdtemp(prefix="reproman-bench-")
    return {
        **os.environ,
        "XDG_CONFIG_HOME": os.path.join(home, "config"),
        "XDG_DATA_HOME": os.path.join(home, "data"),
    }


def time_command(argv: Sequence[str], env: dict[str, str], runs: int = 20) -> list[float]:
    """Wall-clock seconds of ``argv`` over ``runs`` runs (after one warm-up)."""
    subprocess.run(argv, env=env, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def time_calls(func: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        func()
    return time.perf_counter() - start


def median_ms(times: Sequence[float]) -> float:
    return statistics.median(times) * 1000


def count_commands(session: Any) -> list[str]:
    """Wrap ``session.execute_command`` to record every remote command (one round trip each)."""
    issued: list[str] = []
    original = session.execute_command

    def counting(command: Any, *args: Any, **kwargs: Any) -> Any:
        issued.append(command if isinstance(command, str) else " ".join(command))
        return original(command, *args, **kwargs)

    session.execute_command = counting
    return issued
