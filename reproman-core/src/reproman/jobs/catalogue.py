"""``reproman run --list``: what submitters, orchestrators and job parameters exist.

Built from the plugin records alone, so listing never imports a submitter's
or orchestrator's implementation.
"""

from __future__ import annotations

from typing import Any

from reproman.errors import UsageError
from reproman.jobs.parameters import GENERIC, JOB_PARAMETERS

SECTIONS = ("submitters", "orchestrators", "parameters")


def catalogue(what: str | None = "") -> dict[str, list[dict[str, Any]]]:
    """The requested sections (all for ``""`` or ``None``), each a list of records."""
    from reproman.plugins.manager import get_plugin_manager

    wanted = SECTIONS if not what else (what,)
    unknown = [w for w in wanted if w not in SECTIONS]
    if unknown:
        raise UsageError(f"cannot list {unknown[0]!r}; choose one of {', '.join(SECTIONS)} (or nothing for all)")
    manager = get_plugin_manager()
    submitters = list(manager.components("submitter").values())
    result: dict[str, list[dict[str, Any]]] = {}
    if "submitters" in wanted:
        result["submitters"] = [
            {"name": s.name, "description": s.description, "distribution": s.distribution,
             "job_parameters": sorted(set(s.job_parameters) | GENERIC)}
            for s in submitters
        ]
    if "orchestrators" in wanted:
        result["orchestrators"] = [
            {"name": o.name, "description": o.description, "distribution": o.distribution}
            for o in manager.components("orchestrator").values()
        ]
    if "parameters" in wanted:
        result["parameters"] = [
            {"name": p.name, "type": p.type, "doc": p.doc,
             "submitters": "all" if p.name in GENERIC else
             [s.name for s in submitters if p.name in s.job_parameters]}
            for p in JOB_PARAMETERS
        ]
    return result
