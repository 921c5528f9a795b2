"""``reproman jobs --report JOB -o report.html``: one self-contained HTML page about a job.

The page holds a timeline of the subjobs (queued, running, finished spans
coloured by state), the failures with the failing subjobs' parameters,
usage figures when the scheduler's accounting has them, and the command,
resource, submitter and orchestrator. plotly draws the timeline and is
inlined, so the file opens anywhere without a network.

plotly comes with the optional extra ``reproman-core[report]``: only this
package imports it, and only when a report is written (:mod:`.render`), so
the core install and every other command stay small and fast.
"""

from __future__ import annotations

import os
import tempfile

from reproman.errors import ReproManError, UsageError


class ReportError(ReproManError):
    """A report could not be made (missing extra, unwritable path)."""


def default_path(jobid: str) -> str:
    return f"reproman-report-{jobid}.html"


def check_output(path: str) -> None:
    """Refuse to replace a file that is not an earlier report: a mistyped ``-o`` must not eat data."""
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory", hint="Give a file name, e.g. -o report.html.")
    if os.path.lexists(path):
        from reproman.report.render import MARKER

        try:
            with open(path, "rb") as handle:
                head = handle.read(len(MARKER.encode()))
        except OSError as exc:
            raise ReportError(f"cannot read {path}: {exc.strerror}") from None
        if head != MARKER.encode():
            raise UsageError(f"{path} exists and is not a ReproMan report; not replacing it",
                             hint="Choose another -o path or remove the file.")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"directory {parent} does not exist", hint="Create it or choose another -o path.")


def write_file(path: str, text: str) -> None:
    """Write UTF-8 atomically: a reader sees the old report or the new one, never half."""
    parent = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8", errors="replace"))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_report(query: str, output: str | None = None) -> dict[str, object]:
    """Write the report of the job named by ``query`` (ID or unique part); return what was written."""
    from reproman.jobs.registry import BrokenRecord, Registry

    registry = Registry()
    (entry,) = registry.find([query])
    if isinstance(entry, BrokenRecord):
        raise ReportError(f"job record {entry.path} is malformed: {entry.error}")
    path = output or default_path(entry.jobid)
    check_output(path)
    try:
        import plotly.io  # noqa: F401  (the extra; checked before the resource is asked anything)
    except ImportError as exc:
        raise ReportError(f"job reports need plotly ({exc})",
                          hint="Install the extra: pip install 'reproman-core[report]'.") from None
    from reproman.report.collect import collect
    from reproman.report.render import render_html

    changed: set[str] = set()
    data = collect(entry, changed)
    if changed:
        from reproman.jobs.fetch import save_record

        save_record(entry, registry)  # outcomes and usage learned while gathering: kept, as every poll keeps them
    text = render_html(data)
    try:
        write_file(path, text)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror}") from None
    return {"jobid": entry.jobid, "path": os.path.abspath(path), "bytes": len(text.encode("utf-8")),
            "subjobs": len(data.subjobs), "counts": data.counts(), "source": data.source}
