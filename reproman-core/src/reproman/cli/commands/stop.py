"""``reproman stop RESOURCE``"""

from __future__ import annotations

import argparse

from reproman.cli.ui import UI


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman import api

    resource = api.stop(args.resref, args.resref_type)
    ui.info(f"Stopped {resource.name!r} ({resource.status}).")
    return 0
