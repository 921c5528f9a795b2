"""``reproman plugins``: which distributions provide which components.

``--check`` imports every component's implementation and validates its
record, printing one line per broken one (exit 1 if any): the same line
``create`` or ``run`` would stop with when they need that component.
"""

from __future__ import annotations

import argparse

from reproman.cli.ui import UI


def handle(args: argparse.Namespace, ui: UI) -> int:
    if args.check:
        return _check(args, ui)
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


def _check(args: argparse.Namespace, ui: UI) -> int:
    from reproman.plugins.manager import PluginManager

    rows = PluginManager(strict=False).check()
    broken = [row for row in rows if row["error"]]
    if args.json:
        ui.json(rows)
    else:
        for row in broken:
            ui.error(row["error"])
        plugins = len({row["distribution"] for row in rows if row["distribution"]})
        ui.out(f"Checked {len(rows)} components of {plugins} distributions: "
               + (f"{len(broken)} broken." if broken else "all load."))
    return 1 if broken else 0
