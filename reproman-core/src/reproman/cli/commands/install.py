"""``reproman install RESOURCE SPEC...``: rebuild traced environments on a resource."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from reproman.cli.ui import UI


def handle(args: argparse.Namespace, ui: UI) -> int:
    """Install, then say per distribution what happened (on stderr: it is a report, not data)."""
    from reproman import api

    results = api.install(args.resref, list(args.spec), resref_type=getattr(args, "resref_type", "auto"))
    for line in summary(results):
        ui.info(line)
    return 0


def summary(results: Any) -> list[str]:
    """One line per installed entry, whatever shape ``api.install`` returns."""
    if not isinstance(results, Iterable) or isinstance(results, (str, bytes)):
        return []
    lines = []
    for item in results:
        spec = getattr(item, "spec", None)
        dist = getattr(item, "distribution", None)
        status = getattr(item, "status", None)
        if dist is None and isinstance(item, dict):
            spec, dist, status = item.get("spec"), item.get("distribution"), item.get("status")
        if dist is None:
            continue
        message = getattr(item, "message", "") or (item.get("message", "") if isinstance(item, dict) else "")
        lines.append(f"{status}: {dist} from {spec}" + (f" ({message})" if message and status != "installed" else ""))
    return lines
