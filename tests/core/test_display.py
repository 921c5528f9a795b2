"""User text is shown as written: commands, paths and names with square brackets are not rich markup."""

from __future__ import annotations

import io

from reproman.cli.ui import UI


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_tables_show_brackets_literally() -> None:
    out = _Terminal()
    UI(stdout=out).table(["JOB", "COMMAND"], [["[bold]x[/bold]", "echo {p[i]} > o{p[i]}.txt [red]"]])
    text = out.getvalue()
    assert "echo {p[i]} > o{p[i]}.txt [red]" in text
    assert "[bold]x[/bold]" in text


def test_pipe_tables_show_brackets_literally() -> None:
    out = io.StringIO()
    UI(stdout=out).table(["COMMAND"], [["echo {p[i]} [i]x[/i]"]])
    assert "echo {p[i]} [i]x[/i]" in out.getvalue()
