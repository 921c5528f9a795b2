"""``reproman create NAME -t TYPE -b KEY=VALUE...``"""

from __future__ import annotations

import argparse

from reproman.cli.ui import UI


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman import api

    resource = api.create(args.name, args.resource_type, args.backend_parameters)
    if args.json:
        ui.json({"name": resource.name, "type": resource.type, "id": resource.id, "status": resource.status})
    else:
        ui.info(f"Created {resource.type} resource {resource.name!r} (id {resource.id}, {resource.status}).")
    return 0
