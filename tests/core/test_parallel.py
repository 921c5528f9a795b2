"""map_bounded: concurrent, bounded, ordered; one failing resource does not hide the others."""

from __future__ import annotations

import threading
import time

import pytest

from reproman.errors import ConfigError, ResourceConnectionError
from reproman.resources.parallel import connection_limit, map_bounded


def test_results_keep_the_order_of_the_items() -> None:
    def slow_square(n: int) -> int:
        time.sleep(0.01 * (5 - n))
        return n * n

    assert map_bounded(slow_square, [1, 2, 3, 4], limit=4) == [1, 4, 9, 16]


def test_calls_overlap_up_to_the_limit_and_never_beyond() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def work(_: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.2)
        with lock:
            running -= 1

    start = time.monotonic()
    map_bounded(work, list(range(6)), limit=3)
    elapsed = time.monotonic() - start
    assert peak == 3
    assert 0.35 < elapsed < 1.0  # two rounds of 0.2 s, not six


def test_a_reproman_error_stands_in_for_its_result() -> None:
    def probe(name: str) -> str:
        if name == "down":
            raise ResourceConnectionError(f"cannot reach {name}")
        return name.upper()

    results = map_bounded(probe, ["a", "down", "b"], limit=2)
    assert results[0] == "A" and results[2] == "B"
    assert isinstance(results[1], ResourceConnectionError)


def test_a_bug_is_raised_not_swallowed() -> None:
    def broken(_: int) -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        map_bounded(broken, [1, 2], limit=2)


def test_one_item_runs_in_the_calling_thread() -> None:
    assert map_bounded(lambda _: threading.current_thread() is threading.main_thread(), [0]) == [True]


def test_limit_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from reproman.config import reset_config

    assert connection_limit() == 8
    monkeypatch.setenv("REPROMAN_GENERAL_MAX_CONNECTIONS", "2")
    reset_config()
    assert connection_limit() == 2
    monkeypatch.setenv("REPROMAN_GENERAL_MAX_CONNECTIONS", "0")
    reset_config()
    with pytest.raises(ConfigError, match="at least 1"):
        connection_limit()
