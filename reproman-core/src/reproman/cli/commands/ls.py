"""``reproman ls``: the inventory, optionally refreshed from the backends."""

from __future__ import annotations

import argparse

from reproman.cli.ui import UI


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman import api

    rows = api.ls(args.resrefs or None, args.resref_type, verbose=args.verbose, refresh=args.refresh)
    if args.json:
        ui.json(rows)
        return 0
    columns = ["name", "type", "id", "status"]
    if args.verbose:
        extra = sorted({k for row in rows for k in row} - set(columns))
        columns += extra
    ui.table([c.upper() for c in columns], ([row.get(c) for c in columns] for row in rows))
    return 0
