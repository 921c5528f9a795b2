"""``reproman rerun JOB [-r RESOURCE] [--failed] [--follow [ACTION]] [--verify] [--jp KEY=VALUE]``: submit a recorded job again.

Exit codes: 0 when the rerun was submitted (detached) or every subjob
succeeded and, with ``--verify``, every output is identical to the
original's; 3 when ``--verify`` found an output that differs or is missing
(the comparison is printed on stdout); 1 when a followed rerun had failing
subjobs, the job cannot be rerun, or ``--verify`` has no output to compare
(the original has none); 2 for usage errors. The new job ID is
printed on stdout first.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reproman.cli.ui import UI
    from reproman.jobs.spec import JobSpec

#: Exit status when ``--verify`` found a difference (as ``diff`` does).
DIFFERENT = 3


def handle(args: argparse.Namespace, ui: UI) -> int:
    from reproman.cli.commands.run import SUBJOBS_FAILED, ProgressDisplay, report_failures, report_kept_originals
    from reproman.cli.parser import FOLLOW_CHOICES
    from reproman.errors import UsageError
    from reproman.jobs.rerun import kept_originals, rerun

    job, follow = args.job, args.follow
    if job is None and isinstance(follow, str) and follow not in FOLLOW_CHOICES:
        job, follow = follow, True  # 'rerun --follow JOB'
    if job is None:
        raise UsageError("no job given", hint="Example: reproman rerun --failed --follow 20260101-120000-abc123")
    watch = bool(follow) or args.verify
    display = ProgressDisplay() if watch and not args.json else None
    try:
        result = rerun(job, resref=args.resref, resref_type=args.resref_type, failed=args.failed, follow=follow,
                       verify=args.verify, trace=args.trace, keep_remote=args.keep_remote,
                       job_parameters=args.job_parameters, progress=display.update if display else None)
    except KeyboardInterrupt:
        if display is not None:
            display.stop()
        jobid = display.jobid if display else None
        ui.info(f"interrupted; job {jobid} keeps running. Fetch it later with 'reproman jobs {jobid}'."
                if jobid else "interrupted; a submitted rerun keeps running. See 'reproman jobs'.")
        return 130
    finally:
        if display is not None:
            display.stop()
    new = result.job
    if args.json:
        ui.json(result.to_dict())
    else:
        ui.out(new.jobid)
    which = f"{_named(result.original, new.rerun_of['subjobs'])} of" if new.rerun_of and new.rerun_of.get(
        "subjobs") is not None else "all of"
    if result.status is None:
        if not args.json:
            ui.info(f"Submitted job {new.jobid}, a rerun of {which} job {result.original.jobid} "
                    f"({new.n_subjobs} subjob(s) on {new.resource_name!r}). "
                    f"Fetch it with 'reproman jobs {new.jobid}'; compare with "
                    f"'reproman diff {result.original.jobid} {new.jobid}'.")
        return 0
    code = 0 if result.ok else SUBJOBS_FAILED
    if not args.json:
        ui.info(f"Job {new.jobid} (rerun of {which} {result.original.jobid}): {result.status.summary()}.")
        report_failures(ui, result.failed)
        report_kept_originals(ui, result.original.jobid, new.jobid, kept_originals(new))
        if result.resource_action:
            ui.info(f"Resource {new.resource_name!r}: {result.resource_action}.")
    if result.comparison is not None:
        if not args.json:
            ui.stdout.write(result.comparison.render())
        if not result.comparison.equal:
            code = DIFFERENT
    return code


def _named(original: JobSpec, indices: list[int]) -> str:
    """The rerun subjobs as every other message names them (``n=2``), not by their 0-based index."""
    from reproman.jobs.outcome import subjob_label

    labels = [subjob_label(original, int(i)) for i in indices[:5]]
    more = f" and {len(indices) - 5} more" if len(indices) > 5 else ""
    return f"subjob{'s' if len(indices) > 1 else ''} {', '.join(labels)}{more}"
