"""``reproman run``: submit a command, optionally follow it to the end.

Exit codes (also in ``reproman run --help``): 0 when the job was submitted
(detached) or every subjob succeeded (``--follow``); :data:`SUBJOBS_FAILED`
(1) when a followed job had failing subjobs (their outputs and logs are
fetched all the same, and each failure is named by its parameters with the
path of its stderr); 2 for usage errors; :data:`CANNOT_START` (3) when the
scheduler says what is left of a followed job can never start as submitted
(it stays queued, unfetched); :data:`STOPPED_AFTER_SUBMISSION` (4) when the follow stopped
before the end (a full disk here, a resource that stopped answering: the job keeps running); 130 when
interrupted (the job keeps running).
The job ID is printed on stdout, so ``JOB=$(reproman run ...)`` works;
everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING, Any

from reproman.cli import signals

if TYPE_CHECKING:
    from reproman.cli.ui import UI
    from reproman.jobs.status import JobStatus

#: How a subjob that never ran is described (as in :data:`reproman.jobs.status.NEVER_STARTED`, not imported
#: here: the status module is not needed to print a line).
NEVER_STARTED = "it never started"
#: Exit code of ``run --follow`` and ``jobs --fetch`` when a subjob failed.
SUBJOBS_FAILED = 1
#: Exit code of ``run --follow`` when the scheduler will never start the job as submitted.
CANNOT_START = 3
#: Exit code of ``run`` when the follow stopped before the end, after the job was submitted: a local failure
#: (a full disk under the job records), or a resource that stopped answering for ``[jobs] retry_for``
#: seconds (:class:`reproman.errors.FollowStoppedError` carries the same code). The job runs on, and
#: ``reproman jobs --follow JOB`` takes it up again.
STOPPED_AFTER_SUBMISSION = 4

EPILOG = """\
exit codes:
  0    submitted (detached), or followed and every subjob succeeded
  1    followed, and some subjobs failed (outputs and logs fetched all the same)
  2    usage error
  3    followed, and the scheduler says the job can never start as submitted (it stays queued)
  4    submitted, then the follow stopped before the end (a full disk here, a resource that stopped
       answering): the job keeps running; 'reproman jobs --follow JOB' takes it up again
  130  interrupted (the job keeps running; follow it again with 'reproman jobs --follow JOB');
       129 and 143 for SIGHUP (a closed terminal) and SIGTERM, with the same words
"""


class ProgressDisplay:
    """A rich progress bar with pending/running/succeeded/failed counts on a terminal; else a line per change.

    Created lazily from the first status, so a run that fails before
    submission draws nothing. Without a terminal (a batch script, a log
    file) a line is written whenever the counts or the scheduler's pending
    reason change, so a job waiting in the queue says why.
    """

    def __init__(self, ui: UI | None = None) -> None:
        self.enabled = sys.stderr.isatty()
        self.ui = ui
        self.jobid: str | None = None
        self._progress: Any = None
        self._task: Any = None
        self._last = ""

    def update(self, status: JobStatus) -> None:
        self.jobid = status.jobid
        if not self.enabled:
            line = status.summary()
            if self.ui is not None and line != self._last:
                self.ui.info(f"Job {status.jobid}: {line}")
            self._last = line
            return
        counts = status.counts()
        done = counts["succeeded"] + counts["failed"] + counts["cancelled"]
        reasons = status.pending_reasons()
        # The scheduler's words go into rich markup: control characters and brackets escaped.
        why = f" ({_markup_text(next(iter(reasons)))})" if reasons and counts["pending"] else ""
        text = (f"[yellow]{counts['pending']} pending{why}[/] [blue]{counts['running']} running[/] "
                f"[green]{counts['succeeded']} succeeded[/] [red]{counts['failed']} failed[/]"
                + (f" [magenta]{counts['cancelled']} cancelled[/]" if counts["cancelled"] else ""))
        if self._progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from reproman.cli.ui import stderr_console

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=stderr_console(), transient=False,
            )
            self._progress.start()
            self._progress.console.print(f"Following job {status.jobid} (Ctrl-C detaches; the job keeps running)")
            self._task = self._progress.add_task(text, total=len(status.subjobs))
        self._progress.update(self._task, description=text, completed=done)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _markup_text(text: str) -> str:
    from rich.markup import escape

    from reproman.errors import one_line

    return str(escape(one_line(text)))


def failure_text(item: dict[str, Any], default: str = "failed") -> str:
    """How a failed subjob (a row of the fetch or of ``jobs --status``) ended: :func:`reproman.jobs.outcome.failure_words`."""
    from reproman.jobs.outcome import failure_words

    return failure_words(item.get("reason"), item.get("exit_code"), item.get("detail")) or default


def report_failures(ui: UI, failed: list[dict[str, Any]], limit: int = 20) -> None:
    """Name each failed subjob by its parameters, with its reason, exit code and the path of its stderr."""
    for item in failed[:limit]:
        name = item.get("subjob") or f"#{item['index']}"
        how = failure_text(item)
        where = (f"stderr: {item['stderr']}" if item.get("stderr")
                 else "no stderr" if NEVER_STARTED in how else f"no stderr: {NEVER_STARTED}")
        ui.info(f"  subjob {name} failed ({how}); {where}")
    if len(failed) > limit:
        ui.info(f"  ... and {len(failed) - limit} more failed subjobs")


def report_kept(ui: UI, jobid: str, kept: list[dict[str, str]], limit: int = 20, *,
                rerun_of: str | None = None) -> None:
    """Name each local output that was kept because it changed after submission, and the job's copy.

    A rerun (``rerun_of`` the original's ID) kept the original's outputs by design: said so instead.
    Files kept because a subjob that did not succeed owes them (``subjob``) were named by the fetch's
    own warning, and ``--overwrite`` does not replace them: left out here.
    """
    kept = [k for k in kept if not k.get("subjob")]
    if rerun_of:
        report_kept_originals(ui, rerun_of, jobid, kept, limit)
        return
    for item in kept[:limit]:
        ui.info(f"  kept {item['local']}: it changed here after job {jobid} was submitted; "
                f"the job's version is {item['fetched']}")
    if len(kept) > limit:
        ui.info(f"  ... and {len(kept) - limit} more kept files")
    if kept:
        ui.info(f"  To replace them with the job's versions: reproman jobs --fetch --overwrite {jobid}")


def report_kept_originals(ui: UI, original: str, jobid: str, kept: list[dict[str, str]], limit: int = 20) -> None:
    """Name each output of the original that the rerun left in place (by design), and the rerun's copy.

    No hint to overwrite: that would throw away the results the rerun is
    compared with.
    """
    for item in kept[:limit]:
        ui.info(f"  kept the local {item['local']}; the rerun's version is {item['fetched']}")
    if len(kept) > limit:
        ui.info(f"  ... and {len(kept) - limit} more outputs of the original kept")
    if kept:
        ui.info(f"  A rerun never replaces existing outputs (the original's, or your edits); compare with "
                f"'reproman diff {original} {jobid}'.")


def _print_catalogue(ui: UI, data: dict[str, list[dict[str, Any]]]) -> None:
    if "submitters" in data:
        ui.table(["SUBMITTER", "DESCRIPTION", "DISTRIBUTION"],
                 [[s["name"], s["description"], s["distribution"]] for s in data["submitters"]])
    if "orchestrators" in data:
        if "submitters" in data:
            ui.out()
        ui.table(["ORCHESTRATOR", "DESCRIPTION", "DISTRIBUTION"],
                 [[o["name"], o["description"], o["distribution"]] for o in data["orchestrators"]])
    if "parameters" in data:
        if len(data) > 1:
            ui.out()
        ui.table(["PARAMETER", "TYPE", "SUBMITTERS", "DESCRIPTION"],
                 [[p["name"], p["type"], p["submitters"], p["doc"]] for p in data["parameters"]])


def local_failure(exc: BaseException) -> bool:
    """A failure on this machine (a full disk, a read-only home) rather than the job's or the resource's."""
    from reproman.errors import LocalFileError

    return isinstance(exc, LocalFileError) or (isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError))


def stopped_after_submission(exc: BaseException, jobid: str) -> str:
    """The error, and what became of the job: it runs on; how to pick it up once the local problem is fixed."""
    from reproman.localfiles import os_error_text

    said = str(exc) if not isinstance(exc, OSError) else (
        f"{exc.filename}: {os_error_text(exc)}" if exc.filename else os_error_text(exc))
    said = said if said.endswith(".") else said + "."
    stage = getattr(exc, "reproman_stage", None)
    if stage == "fetched":
        return f"{said} Job {jobid} was fetched; its results are in place."
    if stage == "fetching":
        return (f"{said} Job {jobid} has finished on the resource; nothing there was freed. Once this is fixed, "
                f"'reproman jobs {jobid}' fetches it again.")
    return (f"{said} Job {jobid} was submitted and keeps running on the resource. Once this is fixed, follow it "
            f"again with 'reproman jobs --follow {jobid}'.")


def _stop_quietly(display: ProgressDisplay | None) -> None:
    """End the progress line; a terminal that hung up (SIGHUP) must not turn the exit into a traceback."""
    if display is not None:
        with contextlib.suppress(OSError, ValueError):
            display.stop()


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman.errors import ReproManError
    from reproman.jobs.commands import RunResult, run

    if args.list_ is not None:
        if args.command:
            from reproman.errors import UsageError

            # 'run --list bogus': a word --list does not take starts the command, which --list would not run.
            raise UsageError(f"--list runs no command; {args.command[0][:40]!r} is neither submitters, orchestrators "
                             "nor parameters", hint="Use --list WHAT, or drop --list to run the command.")
        catalogue = run(list_=args.list_)
        assert isinstance(catalogue, dict)
        if args.json:
            ui.json(catalogue)
        else:
            _print_catalogue(ui, catalogue)
        return 0
    display = ProgressDisplay(ui) if args.follow and not args.json else None
    try:
        with signals.as_interrupts():
            result = run(
                command=args.command, message=args.message, resref=args.resref, resref_type=args.resref_type,
                submitter=args.submitter, orchestrator=args.orchestrator, batch_spec=args.batch_spec,
                batch_parameters=args.batch_parameters, job_specs=args.job_specs, job_parameters=args.job_parameters,
                inputs=args.inputs, outputs=args.outputs, follow=args.follow,
                progress=display.update if display else None, keep_remote=args.keep_remote,
                trace=getattr(args, "trace", False),
            )
    except (ReproManError, OSError) as exc:
        if display is not None:
            display.stop()
        jobid = getattr(exc, "reproman_jobid", None)
        if jobid and not args.json:  # submitted: stdout says which job, as after a run that ended well
            ui.out(jobid)
        if jobid and local_failure(exc):
            ui.error(stopped_after_submission(exc, jobid))
            return STOPPED_AFTER_SUBMISSION
        raise
    except KeyboardInterrupt as exc:
        # Ctrl-C, or SIGTERM/SIGHUP (a closed terminal): the same words, and the job ID on stdout.
        _stop_quietly(display)
        jobid = getattr(exc, "reproman_jobid", None)
        if jobid:  # stdout says which job, as after a run that was not interrupted: scripts capture it
            signals.quietly(lambda: ui.json({"jobid": jobid, "interrupted": True}) if args.json else ui.out(jobid))
        stage = getattr(exc, "reproman_stage", None)
        how = signals.interrupted_by(exc)
        if jobid and stage == "fetching":
            line = (f"{how} while fetching job {jobid}, which has finished: 'reproman jobs {jobid}' fetches "
                    "it again (what arrived so far stays; files are replaced whole or not at all).")
        elif jobid and stage == "fetched":
            line = f"{how} after job {jobid} was fetched; its results are in place."
        elif jobid and stage == "submitted":
            line = (f"{how}; job {jobid} keeps running on the resource. Follow it again with "
                    f"'reproman jobs --follow {jobid}' (or fetch it once finished with 'reproman jobs {jobid}').")
        elif jobid:
            line = (f"{how} while submitting job {jobid}: 'reproman jobs {jobid}' says whether it was "
                    f"submitted (if not, it reads 'never submitted' and 'reproman jobs --delete {jobid}' removes it).")
        else:
            line = f"{how} before a job was recorded: nothing was submitted."
        signals.quietly(lambda: ui.info(line))
        return signals.exit_status(exc)
    finally:
        _stop_quietly(display)
    assert isinstance(result, RunResult)
    job = result.job
    if args.json:
        from reproman.jobs.registry import hide_env

        ui.json(hide_env(result.to_dict()))
    else:
        ui.out(job.jobid)
    if result.status is None:
        if not args.json:
            ui.info(f"Submitted job {job.jobid}: {job.n_subjobs} subjob(s) on {job.resource_name!r} "
                    f"with {job.submitter}/{job.orchestrator}. "
                    f"Check with 'reproman jobs --status {job.jobid}'; fetch with 'reproman jobs {job.jobid}'.")
        return 0
    if result.stuck:
        if not args.json:
            reasons = result.status.pending_reasons()
            reason = next(iter(reasons), "the scheduler refuses to start it")
            ui.error(f"job {job.jobid} can never start as submitted: the scheduler says {reason!r} "
                     f"({result.status.summary()}). It stays queued: cancel it with "
                     f"'reproman jobs --cancel {job.jobid}' and submit it again with a request the queue can meet.")
        return CANNOT_START
    if not args.json:
        ui.info(f"Job {job.jobid}: {result.status.summary()}. Results in {job.local_directory}.")
        report_failures(ui, result.failed)
        report_kept(ui, job.jobid, job.extra.get("kept", []))
        if result.resource_action:
            ui.info(f"Resource {job.resource_name!r}: {result.resource_action}.")
    return 0 if result.ok else SUBJOBS_FAILED
