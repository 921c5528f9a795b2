"""``reproman plugins``: which distributions provide which components."""

from __future__ import annotations

import argparse

from reproman.cli.ui import UI


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman import api

    rows = api.plugins()
    if args.json:
        ui.json(rows)
        return 0
    table = []
    for row in rows:
        comps = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in row["components"].items())
        table.append([row["distribution"], row["version"], row["plugin"], f"FAILED: {row['error']}" if row["error"] else comps])
    ui.table(["DISTRIBUTION", "VERSION", "PLUGIN", "COMPONENTS"], table)
    return 0
