"""``reproman delete RESOURCE [-y] [-f]``"""

from __future__ import annotations

import argparse

from reproman.cli.ui import UI


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman import api

    name = api.delete(
        args.resref, args.resref_type, skip_confirmation=args.skip_confirmation, force=args.force, confirm=ui.confirm
    )
    ui.info(f"Deleted resource {name!r}.")
    return 0
