"""Output for humans and scripts: tables, JSON, messages, questions.

Data goes to stdout, diagnostics to stderr. On a terminal tables are drawn
with rich; in a pipe they are plain aligned columns (no colour, no box
characters) that ``cut``/``awk`` handle, and rich is not even imported, which
keeps scripted calls fast.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings

if TYPE_CHECKING:
    from typing import Any, TextIO


def _text(value: Any) -> str:
    """A table cell: one line, control characters escaped (cells hold users' names, values and commands)."""
    from reproman.errors import one_line

    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    return one_line(str(value))


_stderr_console: Any = None


def stderr_console() -> Any:
    """The one rich Console on stderr, shared by log messages and progress bars.

    Sharing it lets rich print a log line above a live progress bar instead
    of through the middle of it.
    """
    global _stderr_console
    if _stderr_console is None:
        from rich.console import Console

        _stderr_console = Console(file=sys.stderr)
    return _stderr_console


class UI:
    """The one object commands print through."""

    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    @property
    def interactive(self) -> bool:
        return self.stdout.isatty()

    def json(self, data: Any) -> None:
        import json

        json.dump(data, self.stdout, indent=2, default=str, sort_keys=False)
        self.stdout.write("\n")

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
        rows = [[_text(c) for c in row] for row in rows]
        if self.interactive:
            from rich.console import Console
            from rich.table import Column, Table
            from rich.text import Text

            # Cells are user text (commands with "[i]", paths, names): Text objects are never read as markup.
            table = Table(*(Column(header=Text(c)) for c in columns), title=Text(title) if title else None,
                          header_style="bold")
            for row in rows:
                table.add_row(*(Text(cell) for cell in row))
            Console(file=self.stdout).print(table)
            return
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
        lines = [columns, *rows]
        for line in lines:
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() + "\n")

    def out(self, text: str = "") -> None:
        self.stdout.write(text if text.endswith("\n") else text + "\n")

    def info(self, text: str) -> None:
        """A message on stderr. Users' values in it (batch values, paths, commands) may hold control
        characters: they are shown escaped, so that none can reset the terminal or retitle its window."""
        from reproman.errors import terminal_lines

        self.stderr.write(terminal_lines(text.rstrip("\n")) + "\n")
        self.stderr.flush()

    def warning(self, text: str) -> None:
        """One line, in the words the log's warnings use (``reproman: WARNING: ...``)."""
        from reproman.errors import one_line

        self.info(f"reproman: WARNING: {one_line(text)}")

    def error(self, text: str) -> None:
        """One line, whatever ``text`` holds (names and paths from files may contain newlines)."""
        from reproman.errors import one_line

        self.info(f"reproman: error: {one_line(text)}")

    def confirm(self, question: str) -> bool:
        """Ask yes/no on the terminal; without one, the answer is no."""
        if not sys.stdin.isatty():
            return False
        self.stderr.write(f"{question} [y/N] ")
        self.stderr.flush()
        return sys.stdin.readline().strip().lower() in {"y", "yes"}
