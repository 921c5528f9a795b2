"""``reproman execute [-r RESOURCE] COMMAND ARGS...``: the command's bytes and exit code are ours.

Output is streamed byte for byte as it arrives (binary output, non-UTF-8
bytes and NULs included). SIGINT (Ctrl-C) or SIGTERM stops the command and
its whole process group on the resource before ``reproman`` exits with
130 or 143. Standard input is never read: a ``reproman execute`` inside a
``while read`` loop must not eat the loop's input, and a pipe that never
closes must not hang it.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from reproman.cli.ui import UI


def _on_sigterm(signum: int, frame: Any) -> None:
    from reproman.errors import Terminated

    raise Terminated()


def _write(stream: int, data: bytes) -> None:
    """The command's bytes, unchanged, to our stdout or stderr (a text-only stream gets a lossless decoding)."""
    text = sys.stdout if stream == 1 else sys.stderr
    binary = getattr(text, "buffer", None)
    if binary is None:  # replaced by a caller embedding the CLI (tests, notebooks)
        text.write(data.decode("utf-8", "surrogateescape"))
        text.flush()
        return
    text.flush()
    binary.write(data)
    binary.flush()


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman import api
    from reproman.errors import Terminated, UsageError
    from reproman.resources.session import CommandResult

    if not args.command:
        raise UsageError("no command given", hint="Usage: reproman execute [-r RESOURCE] COMMAND [ARGS...]")
    streaming = not args.internal and not args.trace
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result = api.execute(args.command, args.args, resref=args.resref, resref_type=args.resref_type,
                             internal=args.internal, trace=args.trace, on_output=_write if streaming else None)
    except (Terminated, KeyboardInterrupt) as exc:
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        failure = getattr(exc, "reproman_not_stopped", None)
        if getattr(exc, "reproman_not_started", False):
            # At a password or code prompt, say: nothing ran, so there was nothing to stop.
            ui.info(f"reproman: {how} while connecting to the resource; the command was not started")
        elif failure:
            ui.info(f"reproman: {how}; the command may still run on the resource (it could not be stopped: "
                    f"{failure})")
        else:
            ui.info(f"reproman: {how}; the command was stopped on the resource")
        return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if isinstance(result, CommandResult):
        _write(1, result.stdout_bytes)
        _write(2, result.stderr_bytes)
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
        from reproman.resources.landing import LandingReport

        if isinstance(result, LandingReport):
            for kept in result.kept:
                ui.info(f"kept {kept.local}; the fetched version is {kept.fetched}")
            return 0
        text = result if isinstance(result, str) else __import__("reproman.yamlio", fromlist=["dump"]).dump(result)
        ui.out(text)
    return 0
