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
        shown = comps
        if row["error"]:
            shown = f"{comps}; FAILED: {row['error']}" if comps else f"FAILED: {row['error']}"
        table.append([row["distribution"], row["version"], row["plugin"], shown])
    ui.table(["DISTRIBUTION", "VERSION", "PLUGIN", "COMPONENTS"], table)
    return 0


def _check(args: argparse.Namespace, ui: UI) -> int:
    from reproman.plugins.manager import PluginManager

    rows = PluginManager(strict=False, quiet=True).check()
    broken = [row for row in rows if row["error"]]
    if args.json:
        ui.json(rows)
    else:
        for row in broken:
            ui.error(row["error"])
        plugins = len({row["distribution"] for row in rows if row["distribution"]})
        components = [row for row in rows if row["kind"] != "plugin" and row["name"]]
        ui.out(f"Checked {len(components)} components of {plugins} distributions: "
               + (f"{len(broken)} problem{'s' if len(broken) != 1 else ''}." if broken else "all load."))
    return 1 if broken else 0
