"""``reproman jobs``: list, show, fetch, cancel and delete jobs.

Exit codes: 0 on success; 1 when a fetched job had failing subjobs (each
named with the path of its stderr) or a job could not be acted on; 2 for
usage errors such as an ambiguous job name.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reproman.cli.ui import UI

_COLUMNS = ["JOB", "RESOURCE", "SUBMITTER", "ORCHESTRATOR", "STATUS", "COMMAND"]


def _one_line(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _show(ui: UI, row: dict[str, Any]) -> None:
    from reproman.yamlio import dump

    ui.out(f"Job {row['jobid']}")
    body = {k: v for k, v in row.items() if k != "jobid"}
    if body.get("environment"):
        from reproman.jobs.environment import brief

        body["environment"] = brief(body["environment"])
    if body.get("checksums"):
        body["checksums"] = f"{len(body['checksums'])} output files (see --json)"
    if "subjobs" in body and len(body["subjobs"]) > 10:
        body["subjobs"] = body["subjobs"][:10] + [f"... {len(row['subjobs']) - 10} more"]
    for line in dump(body).splitlines():
        ui.out(f"  {line}")


def _export(args: argparse.Namespace, ui: UI) -> int:
    """``jobs --export JOB DIR``: write the job's RO-Crate (see :mod:`reproman.jobs.export`)."""
    from reproman.jobs.export import export

    query, directory = args.export
    metadata = export(query, directory)
    if args.json:
        ui.json({"jobid": query, "crate": str(metadata.parent), "metadata": str(metadata)})
    else:
        ui.info(f"Wrote the RO-Crate of job {query} to {metadata.parent}.")
    return 0


def _report(args: argparse.Namespace, ui: UI) -> int:
    """``--report JOB``: one HTML file; the report package (and plotly) is imported only here."""
    from reproman.errors import UsageError
    from reproman.report import write_report

    if len(args.queries) != 1 or args.all_:
        raise UsageError("--report takes exactly one job", hint="Example: reproman jobs --report JOB -o report.html")
    written = write_report(args.queries[0], args.output)
    if args.json:
        ui.json(written)
    else:
        ui.info(f"Wrote the report of job {written['jobid']} to {written['path']}.")
    return 0


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman.cli.commands.run import SUBJOBS_FAILED, report_failures, report_kept

    if getattr(args, "export", None):
        return _export(args, ui)
    from reproman.jobs.commands import jobs

    action = args.action
    if action == "report":
        return _report(args, ui)
    if args.output:
        from reproman.errors import UsageError

        raise UsageError("-o/--output goes with --report", hint="Example: reproman jobs --report JOB -o report.html")
    if action == "auto":
        action = "fetch" if (args.queries or args.all_) else "list"
    rows = jobs(queries=args.queries, action=args.action, all_=args.all_, status=args.status,
                overwrite=args.overwrite, keep_remote=args.keep_remote)
    if not args.show_env:
        from reproman.jobs.registry import hide_env

        rows = [hide_env(r) for r in rows]
    if args.json:
        ui.json(rows)
    elif action == "list":
        if not rows:
            ui.info("No jobs. Start one with 'reproman run'.")
        else:
            ui.table(_COLUMNS, [
                [r["jobid"], r.get("resource"), r.get("submitter"), r.get("orchestrator"),
                 r.get("summary") or r.get("status"), _one_line(r.get("command") or r.get("error") or "")]
                for r in rows
            ])
    elif action == "show":
        for row in rows:
            _show(ui, row)
    code = 0
    for row in rows:
        if action == "delete" and not row.get("deleted", True):
            code = max(code, 1)
            if not args.json:
                ui.error(row["error"])
            continue
        if row.get("error") and action not in ("list", "show", "delete"):
            code = max(code, 1)
            if not args.json:
                ui.error(f"job {row['jobid']}: {row['error']}")
        elif row.get("status") == "malformed" and not args.json and action in ("list", "show"):
            ui.info(f"warning: job record {row.get('path', row['jobid'])} is malformed: {row.get('error')}")
        if args.json:
            if row.get("failed"):
                code = SUBJOBS_FAILED
            continue
        if action == "delete":
            if row.get("warning"):
                ui.info(f"warning: job {row['jobid']}: {row['warning']}")
            ui.info(f"Deleted job {row['jobid']} from the registry.")
        elif action == "cancel" and row.get("cancelled"):
            ui.info(f"Cancelled job {row['jobid']}.")
        elif action == "fetch" and "fetched" in row:
            if "restored" in row:
                ui.info(f"Job {row['jobid']}: replaced {len(row['restored'])} local file(s) with the job's versions.")
            elif row["fetched"]:
                summary = ", ".join(f"{n} {s}" for s, n in row["status"]["counts"].items() if n)
                ui.info(f"Fetched job {row['jobid']}: {summary}.")
                if row.get("failed"):
                    report_failures(ui, row["failed"])
                    code = SUBJOBS_FAILED
                report_kept(ui, row["jobid"], row.get("kept", []))
            else:
                ui.info(f"Not fetching job {row['jobid']}: {row['reason']}.")
    return code
