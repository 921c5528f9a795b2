"""Entry point of the ``reproman`` command.

Start-up is kept small: only argparse and the chosen command's module are
imported; plugins load when that command needs a component.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from reproman.cli.logsetup import setup_logging
from reproman.cli.parser import COMMANDS, TRAILING_COMMAND, build_parser, split_trailing_command

_GLOBAL_WITH_VALUE = {"-l", "--log-level", "-c", "--config"}


def _split_global(argv: list[str], commands: set[str]) -> int:
    """Index of the command word in ``argv`` (len(argv) if there is none)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in commands:
            return i
        if word in _GLOBAL_WITH_VALUE:
            i += 2
            continue
        i += 1
    return len(argv)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    words = list(argv)
    at = _split_global(words, set(COMMANDS))
    parser = build_parser(only=words[at] if at < len(words) else "")
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    trailing: list[str] | None = None
    if at < len(words) and words[at] in TRAILING_COMMAND:
        own, trailing = split_trailing_command(subparsers.choices[words[at]], words[at + 1:])
        words = words[: at + 1] + own
    args = parser.parse_args(words)
    if args.cmd is None:
        parser.print_help(sys.stdout)
        parser.exit(2, "reproman: error: no command given (see the list above)\n")
    if trailing is not None:
        first, rest = TRAILING_COMMAND[args.cmd]
        if rest is None:
            args.command = trailing
        else:
            setattr(args, first, trailing[0] if trailing else None)
            setattr(args, rest, trailing[1:])
    return args


def _os_error_line(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(str(p) for p in paths)
    return f"{where}: {reason}" if where else reason


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.log_level, args.debug)
    from reproman.cli.ui import UI
    from reproman.errors import ReproManError

    ui = UI()
    try:
        os.getcwd()
    except FileNotFoundError:
        ui.error("the current directory does not exist any more; cd to one that does")
        return 1
    if args.config:
        from reproman.config import set_config_files

        set_config_files(args.config)
    module = importlib.import_module(f"reproman.cli.commands.{args.cmd.replace('-', '_')}")
    try:
        return int(module.handle(args, ui) or 0)
    except ReproManError as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        ui.error(str(exc))
        return exc.exit_code
    except OSError as exc:
        # Disk full, permission denied, a read-only destination, a working
        # directory that was removed: the user's to fix, so one line naming
        # the path. (Library code wraps the ones it expects; this is the net.)
        if isinstance(exc, BrokenPipeError):
            return 0
        if args.debug:
            import traceback

            traceback.print_exc()
        ui.error(_os_error_line(exc))
        return 1
    except KeyboardInterrupt:
        ui.error("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
