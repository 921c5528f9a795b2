"""``reproman ls``: the inventory, optionally refreshed from the backends."""

from __future__ import annotations

import argparse

from reproman.cli.ui import UI

ID_WIDTH = 12


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
    def cell(row: dict[str, object], column: str) -> object:
        value = row.get(column)
        # Any unique prefix names a resource, so humans get docker-ps-length IDs.
        if column == "id" and not args.verbose and isinstance(value, str) and len(value) > ID_WIDTH:
            return value[:ID_WIDTH]
        return value

    ui.table([c.upper() for c in columns], ([cell(row, c) for c in columns] for row in rows))
    return 0
