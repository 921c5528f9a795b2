"""``reproman run --list``: what submitters, orchestrators and job parameters exist.

Built from the plugin records alone, so listing never imports a submitter's
or orchestrator's implementation. Parameters a submitter declares itself
(typed :class:`~reproman.plugins.records.Parameter` records) are listed
after core's, each with the submitter that takes it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from reproman.errors import PluginError, UsageError
from reproman.jobs.parameters import CORE, GENERIC, JOB_PARAMETERS, submitter_parameters

if TYPE_CHECKING:
    from reproman.plugins.records import Parameter, SubmitterType

lgr = logging.getLogger(__name__)

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
    accepted = {s.name: _accepted(s) for s in submitters}
    result: dict[str, list[dict[str, Any]]] = {}
    if "submitters" in wanted:
        result["submitters"] = [
            {"name": s.name, "description": s.description, "distribution": s.distribution,
             "job_parameters": sorted(accepted[s.name])}
            for s in submitters
        ]
    if "orchestrators" in wanted:
        result["orchestrators"] = [
            {"name": o.name, "description": o.description, "distribution": o.distribution}
            for o in manager.components("orchestrator").values()
        ]
    if "parameters" in wanted:
        rows = [
            {"name": p.name, "type": p.type, "doc": p.doc,
             "submitters": "all" if p.name in GENERIC else [s.name for s in submitters if p.name in accepted[s.name]]}
            for p in JOB_PARAMETERS
        ]
        # Each submitter's own parameters, after core's: one row per declaration.
        for s in submitters:
            for name, p in accepted[s.name].items():
                if name not in CORE:
                    rows.append({"name": p.name, "type": p.type, "doc": p.doc, "submitters": [s.name]})
        result["parameters"] = rows
    return result


def _accepted(submitter: SubmitterType) -> dict[str, Parameter]:
    """What ``submitter`` takes; a submitter whose declaration core refuses is listed with core's alone."""
    try:
        return submitter_parameters(submitter)
    except PluginError as exc:
        lgr.warning("%s", exc.args[0] if exc.args else exc)
        return {name: CORE[name] for name in submitter.parameter_names if name in CORE} | {n: CORE[n] for n in GENERIC}
