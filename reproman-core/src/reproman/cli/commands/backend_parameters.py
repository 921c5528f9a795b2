"""``reproman backend-parameters [TYPE...]``"""

from __future__ import annotations

import argparse

from reproman.cli.ui import UI


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman import api

    data = api.backend_parameters(args.backends or None)
    if args.json:
        ui.json(data)
        return 0
    for rtype, params in data.items():
        ui.out(f"{rtype}:")
        if not params:
            ui.out("  (no parameters)")
        for p in params:
            flags = [p["type"]]
            if p["required"]:
                flags.append("required")
            elif p["default"] is not None:
                flags.append(f"default: {p['default']}")
            if p["choices"]:
                flags.append("one of " + "|".join(p["choices"]))
            if p.get("secret_variable"):
                flags.append(f"secret, never stored: later read from ${p['secret_variable']}")
            ui.out(f"  {p['name']} ({', '.join(flags)})")
            ui.out(f"      {p['doc']}")
    return 0
