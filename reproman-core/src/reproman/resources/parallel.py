"""Talking to several resources at once, never to more than a few at a time.

A command that touches many resources (``ls --refresh``, ``jobs --status``)
spends its time waiting: on a handshake, a scheduler, a network round
trip. Done one after the other, four clusters cost four times one. With
:func:`map_bounded` they overlap, and the bound (``[general]
max_connections``, default 8) keeps a command from opening dozens of
connections to one login node's neighbours at once.

Calls run in threads; a question for the user (a password, a two-factor
code) is asked one at a time (see
:func:`reproman.resources.persistent.ask_on_terminal`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from reproman.errors import ReproManError

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_LIMIT = 8


def connection_limit() -> int:
    """``[general] max_connections``: resources talked to at the same time (default 8)."""
    from reproman.config import config_number, get_config

    return int(config_number(get_config().get("general", "max_connections"), "[general] max_connections",
                             default=DEFAULT_LIMIT, minimum=1, whole=True))


def map_bounded(fn: Callable[[T], R], items: Sequence[T], limit: int | None = None) -> list[R | ReproManError]:
    """``fn(item)`` for every item, at most ``limit`` at a time; results in the order of ``items``.

    A :class:`ReproManError` raised by ``fn`` takes the place of that
    item's result (one unreachable resource must not hide the others');
    anything else is a bug and is raised after all calls ended. With one
    item, or a limit of one, no thread is started.
    """
    size = min(len(items), limit or connection_limit())
    results: list[R | ReproManError | None] = [None] * len(items)
    if size <= 1:
        for i, item in enumerate(items):
            try:
                results[i] = fn(item)
            except ReproManError as exc:
                results[i] = exc
        return results  # type: ignore[return-value]
    failures: list[BaseException] = []
    pending = iter(enumerate(items))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                taken = next(pending, None)
            if taken is None:
                return
            i, item = taken
            try:
                results[i] = fn(item)
            except ReproManError as exc:
                results[i] = exc
            except BaseException as exc:  # raised in the caller's thread below
                with lock:
                    failures.append(exc)
                return

    # Daemon threads: a Ctrl-C in the caller ends the command without waiting for a slow resource.
    threads = [threading.Thread(target=worker, name=f"reproman-parallel-{n}", daemon=True) for n in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results  # type: ignore[return-value]
