"""The CLI's logging, set up the moment anything imports :mod:`logging`, not before.

Importing :mod:`logging` costs about as much as half of Python's own
start-up, and commands such as ``reproman ls`` never log. So the CLI
validates ``--log-level`` at once but installs its handler lazily: if
:mod:`logging` is already imported it is configured now, otherwise an
import hook configures it right after its first import, before any module
can create a logger.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

_LEVELS = {"CRITICAL": 50, "FATAL": 50, "ERROR": 40, "WARN": 30, "WARNING": 30, "INFO": 20, "DEBUG": 10, "NOTSET": 0}


def level_number(level: str | None, debug: bool) -> int:
    """``--log-level`` as a number; an unknown name ends the program with one line."""
    name = (level or ("debug" if debug else "warning")).upper()
    if name.isdigit():
        return int(name)
    if name not in _LEVELS:
        # A usage error: exit 2, as argparse's own.
        sys.stderr.write(f"reproman: error: unknown log level {level!r}; use debug, info, warning, error or a number\n")
        raise SystemExit(2)
    return _LEVELS[name]


def setup_logging(level: str | None, debug: bool) -> None:
    """Configure the ``reproman`` logger now, or as soon as :mod:`logging` is first imported."""
    numeric = level_number(level, debug)
    if "logging" in sys.modules:
        _configure(numeric, debug)
        return
    for finder in list(sys.meta_path):
        if isinstance(finder, _AfterImport):
            sys.meta_path.remove(finder)  # type: ignore[arg-type]
    sys.meta_path.insert(0, _AfterImport("logging", lambda: _configure(numeric, debug)))  # type: ignore[arg-type]


def _configure(numeric: int, debug: bool) -> None:
    import logging

    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        from reproman.cli.ui import stderr_console

        handler = RichHandler(console=stderr_console(), show_time=False, show_path=False, rich_tracebacks=debug,
                              markup=False)
        handler.setFormatter(_terminal_safe(logging.Formatter)("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_terminal_safe(logging.Formatter)("reproman: %(levelname)s: %(message)s"))
    root = logging.getLogger("reproman")
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    root.propagate = False


def _terminal_safe(base: type) -> type:
    """``base`` (a :class:`logging.Formatter`) whose messages are one line, control characters escaped.

    Messages quote paths and values that users or files supplied: a CR in
    an output name must not overwrite the line, nor an ESC reset the
    terminal. A traceback (``--debug``) keeps its lines.
    """
    from reproman.errors import one_line

    class TerminalSafeFormatter(base):  # type: ignore[misc,valid-type]
        def formatMessage(self, record: Any) -> str:
            record.message = one_line(record.message)
            return super().formatMessage(record)  # type: ignore[no-any-return]

    return TerminalSafeFormatter


class _AfterImport:
    """A one-shot meta path finder: imports ``name`` as usual, then calls ``callback``."""

    def __init__(self, name: str, callback: Callable[[], None]) -> None:
        self.name = name
        self.callback = callback

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # type: ignore[arg-type]
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(fullname, path)  # type: ignore[arg-type]
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenCall(spec.loader, self.callback)  # type: ignore[assignment]
        return spec


class _ThenCall:
    """A loader that runs the real one, then a callback (the module is complete by then)."""

    def __init__(self, loader: object, callback: Callable[[], None]) -> None:
        self.loader = loader
        self.callback = callback

    def create_module(self, spec: object) -> ModuleType | None:
        return self.loader.create_module(spec)  # type: ignore[attr-defined,no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)  # type: ignore[attr-defined]
        self.callback()
