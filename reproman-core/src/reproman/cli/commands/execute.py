"""``reproman execute [-r RESOURCE] COMMAND ARGS...``: the command's exit code is ours."""

from __future__ import annotations

import argparse
import sys

from reproman.cli.ui import UI


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman import api
    from reproman.errors import UsageError
    from reproman.resources.session import CommandResult

    if not args.command:
        raise UsageError("no command given", hint="Usage: reproman execute [-r RESOURCE] COMMAND [ARGS...]")
    result = api.execute(args.command, args.args, resref=args.resref, resref_type=args.resref_type,
                         internal=args.internal, trace=args.trace)
    if isinstance(result, CommandResult):
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
        sys.stderr.write(result.stderr)
        spec = getattr(result, "spec", None)
        if spec is not None:
            # The command's own output stays on stdout/stderr untouched; the
            # environment it used goes to a file the user can diff or install.
            import time

            path = f"reproman-trace-{time.strftime('%Y%m%d-%H%M%S')}.yml"
            spec.write(path)
            ui.info(f"Traced environment written to {path}")
        return result.returncode
    if args.internal and args.command == "isdir":
        ui.out("true" if result else "false")
        return 0 if result else 1
    if result is not None and not isinstance(result, bool):
        text = result if isinstance(result, str) else __import__("reproman.yamlio", fromlist=["dump"]).dump(result)
        ui.out(text)
    return 0
