"""``reproman start RESOURCE``"""

from __future__ import annotations

import argparse

from reproman.cli.ui import UI


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman import api

    resource = api.start(args.resref, args.resref_type)
    ui.info(f"Started {resource.name!r} ({resource.status}).")
    return 0
