"""SIGTERM and SIGHUP in the commands that wait on a job: handled like Ctrl-C.

Why: a closed terminal or ssh session (SIGHUP) or a ``kill`` (SIGTERM)
ended ``run --follow`` without a word, and the job ID, printed on stdout at
the end, never came (trial O, finding 10). Raising :class:`Signalled` where
the signal lands runs the same path as Ctrl-C: the job ID on stdout, one
line saying the job keeps running and how to follow it again, and the exit
status a shell gives a process killed by that signal (128 + its number).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any

from reproman.errors import Terminated

#: The signals that end a command the way Ctrl-C does, with the name the message gives them.
HANDLED: dict[int, str] = {signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class Signalled(Terminated):
    """SIGTERM or SIGHUP raised as an interruption; :attr:`signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(HANDLED.get(signum, str(signum)))
        self.signum = signum


def _raise(signum: int, frame: Any) -> None:
    raise Signalled(signum)


@contextlib.contextmanager
def as_interrupts() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Signalled`; the previous handlers come back after."""
    previous = {signum: signal.signal(signum, _raise) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def exit_status(exc: BaseException) -> int:
    """128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + (exc.signum if isinstance(exc, Signalled) else signal.SIGINT)


def interrupted_by(exc: BaseException) -> str:
    """How a message starts: ``interrupted`` (Ctrl-C, as before) or ``interrupted by SIGTERM``."""
    return f"interrupted by {HANDLED[exc.signum]}" if isinstance(exc, Signalled) and exc.signum in HANDLED \
        else "interrupted"


def quietly(write: Callable[[], object]) -> None:
    """Write, unless the terminal is gone: after SIGHUP a write may fail, and the exit status must still come."""
    with contextlib.suppress(OSError, ValueError):
        write()
