"""``reproman jobs``: list, show, fetch, cancel and delete jobs; read a subjob's log.

Exit codes (also in ``reproman jobs --help``), for scripts that wait for jobs:

* 0: done: every named job was fetched and all its subjobs succeeded (or a
  list/show/status/cancel/delete/log action worked);
* 1: a fetched job had failed subjobs (each named by its parameters, with
  the path of its stderr), or a job could not be acted on;
* 2: usage error (unknown option, ambiguous job name...);
* 3: a job is not finished, so nothing was fetched for it (or it can never
  start as submitted); try again later.

With several jobs, an error wins over "not finished", which wins over
failed subjobs.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reproman.cli.ui import UI

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FINISHED = 3

EPILOG = """\
exit codes:
  0  every named job fetched and all its subjobs succeeded (or the action worked)
  1  a fetched job had failed subjobs, or a job could not be acted on
  2  usage error
  3  a job is not finished (nothing fetched for it) or can never start as submitted; try later
  --follow JOB exits as 'run --follow': 0 all succeeded, 1 some failed, 3 can never start, 4 the follow
  stopped before the end (a full disk here, a resource that stopped answering): the job keeps running and
  'reproman jobs --follow JOB' takes it up again; 130 interrupted;
  a resource that stops answering is retried for up to [jobs] retry_for seconds (300) before it exits 4
"""

_COLUMNS = ["JOB", "RESOURCE", "SUBMITTER", "OUTCOME", "FETCHED", "COMMAND"]
#: Widest OUTCOME cell; a longer one (an error) is shortened there and printed in full below the table.
OUTCOME_WIDTH = 40
#: Per-subjob lines printed for one job by --status before "... N more".
SUBJOB_LINES = 50


def _one_line(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _show(ui: UI, row: dict[str, Any], first: bool) -> None:
    """The whole record as a YAML document: readable, and loadable again with 'run --job-spec'."""
    from reproman.yamlio import dump

    if not first:
        ui.out("---")
    body = dict(row)
    if body.get("environment"):
        from reproman.jobs.environment import brief

        body["environment"] = brief(body["environment"])
    if body.get("checksums"):
        body["checksums"] = f"{len(body['checksums'])} output files (see --json)"
    ui.out(dump(body, header=f"Job {row['jobid']}: {row.get('outcome', '')}").rstrip("\n"))


def _subjob_lines(ui: UI, row: dict[str, Any]) -> None:
    """Each subjob that did not (yet) succeed: its name, state and the scheduler's words."""
    status = row.get("subjobs_status")
    if not isinstance(status, dict) or "subjobs" not in status:
        return
    from reproman.cli.commands.run import failure_text
    from reproman.errors import one_line

    ui.out(f"Job {row['jobid']}: {row.get('summary', '')}")
    shown = [s for s in status["subjobs"] if s["state"] != "succeeded"]
    for sub in shown[:SUBJOB_LINES]:
        # In the words of the fetch's failure lines (failure_text), so a subjob reads the same in every view.
        why = [failure_text(sub, default="")] if sub["state"] == "failed" else (
            [sub["detail"]] if sub.get("detail") else [])
        why = [w for w in why if w]
        if sub.get("blocked"):
            why.append("can never start as submitted")
        ui.out(one_line(f"  {sub['subjob']}: {sub['state']}" + (f" ({', '.join(why)})" if why else "")))
    if len(shown) > SUBJOB_LINES:
        ui.out(f"  ... and {len(shown) - SUBJOB_LINES} more")


def _status_errors(ui: UI, rows: list[dict[str, Any]], *, as_errors: bool = False) -> None:
    """Why some jobs have no status, in full, once per distinct reason (the table shows it shortened).

    ``as_errors`` for ``--status``, which promises each job's state now: a
    job it could not ask about makes the command fail.
    """
    reasons: dict[str, list[str]] = {}
    for row in rows:
        if row.get("error") and row.get("status") != "malformed":
            reasons.setdefault(str(row["error"]), []).append(row["jobid"])
    for reason, jobids in reasons.items():
        who = f"job {jobids[0]}" if len(jobids) == 1 else f"{len(jobids)} jobs"
        if as_errors:
            ui.error(f"{who}: {reason}")
        else:
            ui.warning(f"{who}: {reason}")


def _gone_words(row: dict[str, Any]) -> str:
    """A finished job whose files are no longer on its resource: its outcome stands, its files do not."""
    dirs = row["gone_from_resource"]
    what = " and ".join(f"its {kind} {path}" for kind, path in dirs.items())
    return (f"job {row['jobid']}: {what} {'are' if len(dirs) > 1 else 'is'} gone from resource "
            f"{row.get('resource')!r}: its outcome stands as recorded, but its files there are no longer available "
            f"('reproman jobs --delete {row['jobid']}' forgets the job)")


def _log(ui: UI, row: dict[str, Any]) -> None:
    """The streams as they are (like ``tail``); the headers, which name the subjob by the user's values,
    with control characters escaped."""
    from reproman.errors import one_line

    where = "fetched copy" if row.get("source") == "local" else "on the resource"
    for stream in ("stdout", "stderr"):
        path = row.get(f"{stream}_path")
        if path is None:
            ui.out(one_line(f"==> no {stream} of subjob {row['subjob']}: it never started <=="))
            continue
        ui.out(one_line(f"==> {stream} of subjob {row['subjob']} ({where}: {path}) <=="))
        text = row.get(stream) or ""
        if text:
            ui.out(text.rstrip("\n"))
    if row.get("scheduler"):
        source = f"{where}: {row['scheduler_path']}" if row.get("scheduler_path") else "as recorded from the scheduler"
        ui.out(one_line(f"==> the scheduler's words on subjob {row['subjob']} ({source}) <=="))
        ui.out(row["scheduler"].rstrip("\n"))


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
    from reproman.cli.commands.run import report_failures, report_kept

    if getattr(args, "export", None):
        return _export(args, ui)
    from reproman.jobs.commands import jobs

    action = args.action
    if action == "report":
        return _report(args, ui)
    if args.output:
        from reproman.errors import UsageError

        raise UsageError("-o/--output goes with --report", hint="Example: reproman jobs --report JOB -o report.html")
    if action == "follow":
        return _follow(args, ui)
    if action == "auto":
        action = "list" if args.status or not (args.queries or args.all_) else "fetch"
    try:
        rows = jobs(queries=args.queries, action=args.action, all_=args.all_, status=args.status, lines=args.lines,
                    overwrite=args.overwrite, keep_remote=args.keep_remote)
    except KeyboardInterrupt as exc:
        if action != "fetch":
            raise
        # Trial Q: "reproman: error: interrupted" alone left the user wondering what a half fetch left.
        from reproman.cli import signals

        again = getattr(exc, "reproman_jobid", None) or " ".join(args.queries) or "--all"
        flag = "--fetch " if args.action == "fetch" else ""
        line = (f"{signals.interrupted_by(exc)} while fetching: 'reproman jobs {flag}{again}' fetches again (what "
                "arrived so far stays; files are replaced whole or not at all, and the resource keeps the job's "
                "files until a fetch completes).")
        signals.quietly(lambda: ui.info(line))
        return signals.exit_status(exc)
    if not args.show_env:
        from reproman.jobs.registry import hide_env

        rows = [hide_env(r) for r in rows]
    if args.json:
        ui.json(rows)
    elif action == "log":
        _log(ui, rows[0])
    elif action == "list":
        if not rows:
            ui.info("No jobs. Start one with 'reproman run'.")
        else:
            table = [
                [r["jobid"], r.get("resource"), f"{r.get('submitter')}/{r.get('orchestrator')}"
                 if r.get("submitter") else None,
                 _one_line(r.get("summary") or r.get("outcome") or r.get("status") or "", OUTCOME_WIDTH),
                 ("yes" if r.get("fetched") else "no") if "fetched" in r else "",
                 _one_line(r.get("command") or r.get("error") or "")]
                for r in rows
            ]
            ui.table(_COLUMNS, table)
            for row in rows:
                _subjob_lines(ui, row)
            _status_errors(ui, rows, as_errors=bool(args.status))
            for row in rows:
                if row.get("gone_from_resource"):
                    ui.warning(_gone_words(row))
            from reproman.jobs.outcome import NOT_CHECKED, UNKNOWN

            # Each legend only under a table whose OUTCOME column shows its word.
            shown = [f" {cells[3]}" for cells in table]
            if any(f" {NOT_CHECKED}" in cell for cell in shown):
                ui.info(f"'{NOT_CHECKED}': no poll has seen those subjobs finish yet; "
                        "'reproman jobs --status' asks the resources now.")
            if any(f" {UNKNOWN}" in cell for cell in shown):
                ui.info(f"'{UNKNOWN}': the job's directory is gone from the resource, so how those subjobs "
                        "ended cannot be known; 'reproman jobs JOB' says where their outputs are.")
    elif action == "show":
        for i, row in enumerate(rows):
            _show(ui, row, first=i == 0)
    failed = not_finished = errors = False
    skipped = refused_before = 0
    for row in rows:
        if action == "delete" and not row.get("deleted", True):
            errors = True
            if not args.json:
                ui.error(row["error"])
            continue
        # --status promises each job's state now: a job it could not ask about is an error, not a row.
        if action == "list" and args.status and row.get("error") and row.get("status") != "malformed":
            errors = True  # said once per reason with the table
        elif row.get("error") and action not in ("list", "show", "delete"):
            errors = True
            if not args.json:
                error = str(row["error"])
                # Errors raised deep down often name the job already: say it once.
                ui.error(error if f"job {row['jobid']}" in error else f"job {row['jobid']}: {error}")
        elif row.get("status") == "malformed" and not args.json and action in ("list", "show"):
            ui.warning(f"job record {row.get('path', row['jobid'])} is malformed: {row.get('error')}")
        if row.get("stuck") and action in ("list", "show") and not args.json:
            ui.error(f"job {row['jobid']} can never start as submitted: {_blocked_reason(row)}")
        if action == "fetch" and "fetched" in row:
            if row.get("skipped"):
                skipped += 1
                refused_before += bool(row.get("submission_failed"))
            elif row.get("submission_failed"):
                pass  # reported above as an error
            elif row.get("already"):
                failed = failed or bool(row.get("failed"))
            elif row["fetched"]:
                failed = failed or bool(row.get("failed"))
            else:
                not_finished = True
        if args.json:
            continue
        if action == "delete":
            if row.get("warning"):
                ui.warning(f"job {row['jobid']}: {row['warning']}")
            ui.info(f"Deleted job {row['jobid']} from the registry."
                    + (f" It was never fetched: its files stay on resource {row.get('resource')!r} in "
                       f"{row['kept_results']} (remove them there when you no longer need them)."
                       if row.get("kept_results") else "")
                    + _freed_words(row))
            if row.get("remote_files") == "not removed":
                ui.warning(f"job {row['jobid']}: its files on resource {row.get('resource')!r} could not all be "
                           f"removed ({row.get('why') or 'no reason given'}); still there: {', '.join(row['left'])}. "
                           "Remove them there by hand.")
            for kept in row.get("kept_local") or ():
                ui.info(f"Job {row['jobid']}: kept {kept}")
        elif action == "cancel" and "cancelled" in row:
            ui.info(f"Cancelled job {row['jobid']}." if row["cancelled"]
                    else f"Not cancelling job {row['jobid']}: {row['reason']}.")
        elif action == "fetch" and "fetched" in row and not row.get("skipped") and not row.get("submission_failed"):
            if row.get("already"):
                ui.info(f"Job {row['jobid']} ({row.get('outcome')}): {row['reason']}.")
                if row.get("failed"):
                    report_failures(ui, row["failed"])
            elif "restored" in row:
                ui.info(f"Job {row['jobid']}: replaced {len(row['restored'])} local file(s) with the job's versions.")
            elif row["fetched"]:
                where = f" Results in {row['local_directory']}." if row.get("local_directory") else ""
                ui.info(f"Fetched job {row['jobid']}: {row.get('outcome') or row['status']['counts']}.{where}")
                if row.get("failed"):
                    report_failures(ui, row["failed"])
                report_kept(ui, row["jobid"], row.get("kept", []), rerun_of=row.get("rerun_of"))
            elif row.get("stuck"):
                ui.error(f"job {row['jobid']} can never start as submitted: {_blocked_reason(row)}")
            else:
                ui.info(f"Not fetching job {row['jobid']}: {row['reason']}.")
    if skipped - refused_before and not args.json:
        ui.info(f"Skipped {skipped - refused_before} job(s) fetched already "
                "(fetch one again with 'reproman jobs --fetch JOB').")
    if refused_before and not args.json:
        ui.info(f"Skipped {refused_before} job(s) whose submission failed (reported before; "
                "'reproman jobs' lists them, 'reproman jobs --delete JOB' removes one).")
    if errors:
        return EXIT_FAILED
    if not_finished:
        return EXIT_NOT_FINISHED
    return EXIT_FAILED if failed else EXIT_OK


def _stop_quietly(display: Any) -> None:
    """End the progress line; a terminal that hung up (SIGHUP) must not turn the exit into a traceback."""
    if display is not None:
        with contextlib.suppress(OSError, ValueError):
            display.stop()


def _freed_words(row: dict[str, Any]) -> str:
    """What ``--delete`` did to the job's files on the resource, as it really was (see ``remote_files``)."""
    if not row.get("freed"):
        return ""
    where = f"Its files on resource {row.get('resource')!r} ({row['freed']})"
    said = row.get("remote_files", "removed")
    if said == "already gone":
        return f" {where} were already gone; nothing there was changed."
    if said == "not removed":
        return f" {where} could not all be removed, as the next line says."
    return f" {where} were removed."


def _follow(args: argparse.Namespace, ui: UI) -> int:
    """``jobs --follow JOB``: ``run --follow`` for a job already submitted, with its exit codes."""
    from reproman.cli import signals
    from reproman.cli.commands.run import (
        CANNOT_START,
        STOPPED_AFTER_SUBMISSION,
        SUBJOBS_FAILED,
        ProgressDisplay,
        local_failure,
        report_failures,
        report_kept,
        stopped_after_submission,
    )
    from reproman.jobs.commands import jobs

    display = ProgressDisplay(ui) if not args.json else None
    try:
        with signals.as_interrupts():
            rows = jobs(queries=args.queries, action="follow", all_=args.all_, overwrite=args.overwrite,
                        keep_remote=args.keep_remote, progress=display.update if display else None)
    except KeyboardInterrupt as exc:
        # Ctrl-C, or SIGTERM/SIGHUP (a closed terminal): the job runs on; say how to get back to it.
        _stop_quietly(display)
        jobid = getattr(exc, "reproman_jobid", None)
        again = jobid or " ".join(args.queries)
        how = signals.interrupted_by(exc)
        if getattr(exc, "reproman_stage", None) == "fetching":
            line = (f"{how} while fetching the finished job: 'reproman jobs {again}' fetches it again "
                    "(what arrived so far stays; files are replaced whole or not at all).")
        else:
            line = (f"{how}; {f'job {jobid}' if jobid else 'the job'} keeps running on the resource. "
                    f"Resume with 'reproman jobs --follow {again}'.")
        signals.quietly(lambda: ui.info(line))
        return signals.exit_status(exc)
    except Exception as exc:
        # A full disk or a read-only home here stops the follow, not the job: not "some subjobs failed".
        jobid = getattr(exc, "reproman_jobid", None) or (args.queries[0] if len(args.queries) == 1 else None)
        if jobid and local_failure(exc):
            _stop_quietly(display)
            ui.error(stopped_after_submission(exc, jobid))
            return STOPPED_AFTER_SUBMISSION
        raise
    finally:
        _stop_quietly(display)
    row = rows[0]
    if args.json:
        ui.json(rows)
    if row.get("stuck"):
        if not args.json:
            ui.error(f"job {row['jobid']} can never start as submitted: {_blocked_reason(row)}")
        return CANNOT_START
    if row.get("submission_failed"):
        # Nothing to wait for or fetch (refused, or its submission was interrupted).
        if not args.json:
            ui.error(f"job {row['jobid']}: {row['error']}")
        return 1
    if not args.json:
        if row.get("already"):
            ui.info(f"Job {row['jobid']} ({row.get('outcome')}): {row['reason']}.")
        else:
            ui.info(f"Job {row['jobid']}: {row.get('outcome')}. Results fetched.")
        report_failures(ui, row.get("failed") or [])
        report_kept(ui, row["jobid"], row.get("kept", []), rerun_of=row.get("rerun_of"))
    return SUBJOBS_FAILED if row.get("failed") else 0


def _blocked_reason(row: dict[str, Any]) -> str:
    status = row.get("subjobs_status") if isinstance(row.get("subjobs_status"), dict) else row.get("status")
    reasons = status.get("pending_reasons", {}) if isinstance(status, dict) else {}
    reason = next(iter(reasons), "the scheduler refuses to start it")
    return (f"the scheduler says {reason!r}. It stays queued: cancel it with "
            f"'reproman jobs --cancel {row['jobid']}' and submit it again with a request the queue can meet")
