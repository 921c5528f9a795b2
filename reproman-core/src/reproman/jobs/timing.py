"""When each subjob started and ended, from file times in the job directory.

The runscript pays nothing for this (no process per subjob): it creates the
empty ``started.INDEX`` with a redirection when a subjob starts, and the
final ``status.INDEX`` is written (by rename) when it ends, so the two mtimes
are the span. One ``find`` on the resource reads every mtime of a job; a
fetched copy of the job directory is read locally, where tar kept the
mtimes (to the second).

A status file's mtime is the end only when it holds a final line: while a
subjob runs (or after it was killed before it could write one) the file
says ``running`` and its mtime is the start, so callers pass the status
lines they read along with the times.
"""

from __future__ import annotations

import datetime
import os
import shlex
from collections.abc import Mapping

import attrs

from reproman.jobs import layout
from reproman.resources.session import Session


@attrs.frozen(kw_only=True)
class SubjobTimes:
    """A subjob's start and end as POSIX timestamps (``None`` when not known)."""

    start: float | None = None
    end: float | None = None

    def iso(self) -> dict[str, str | None]:
        return {"start": _iso(self.start), "end": _iso(self.end)}


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.datetime.fromtimestamp(stamp).isoformat(timespec="milliseconds")


def times_command(job_dir: str) -> str:
    """Shell code printing ``NAME MTIME`` for the runscript and every ``started.*`` and ``status.*`` file.

    ONE process. The runscript's mtime is when the job directory was
    written, just before submission (finer than the record's ``created``).

    GNU find prints fractional seconds; where ``-printf`` is missing (BSD,
    busybox) ``stat -c`` gives whole seconds.
    """
    d = shlex.quote(job_dir)
    names = f"-name '{layout.STARTED}.*' -o -name 'status.*' -o -name {layout.RUNSCRIPT}"
    return (
        f"find {d} -maxdepth 1 -type f \\( {names} \\) ! -name '*.tmp' -printf '%f %T@\\n' 2>/dev/null"
        f" || {{ cd {d} && stat -c '%n %Y' {layout.RUNSCRIPT} {layout.STARTED}.* status.* 2>/dev/null; }}; true"
    )


def parse_times(text: str) -> dict[str, dict[int, float]]:
    """``started.3 1700000000.5`` lines -> ``{"started": {3: t}, "status": {...}, "runscript": {0: t}}``."""
    found: dict[str, dict[int, float]] = {layout.STARTED: {}, "status": {}, layout.RUNSCRIPT: {}}
    for line in text.splitlines():
        name, _, stamp = line.strip().rpartition(" ")
        kind, _, index = os.path.basename(name).partition(".")
        if kind == layout.RUNSCRIPT and not index:
            index = "0"
        if kind in found and index.isdigit():
            try:
                found[kind][int(index)] = float(stamp)
            except ValueError:
                continue
    return found


def written(raw: Mapping[str, Mapping[int, float]]) -> float | None:
    """When the job directory was written (just before submission), if known."""
    return raw.get(layout.RUNSCRIPT, {}).get(0)


def combine(raw: Mapping[str, Mapping[int, float]], final: Mapping[int, bool]) -> dict[int, SubjobTimes]:
    """Spans per subjob; ``final[i]`` says whether subjob i's status file holds a final line."""
    started, status = raw.get(layout.STARTED, {}), raw.get("status", {})
    out: dict[int, SubjobTimes] = {}
    for index in set(started) | set(status):
        start = started.get(index)
        end = status.get(index) if final.get(index) else None
        if start is None and not final.get(index):
            start = status.get(index)  # "running" was written when it started
        out[index] = SubjobTimes(start=start, end=end)
    return out


def read_remote(session: Session, job_dir: str) -> dict[str, dict[int, float]]:
    """File times of a job directory on the resource, in one command."""
    return parse_times(session.execute_command(times_command(job_dir)).stdout)


def read_local(job_dir: str) -> dict[str, dict[int, float]]:
    """File times of a fetched copy of a job directory."""
    lines = []
    try:
        entries = list(os.scandir(job_dir))
    except OSError:
        return parse_times("")
    for entry in entries:
        if entry.name.endswith(".tmp") or not entry.name.startswith((layout.STARTED, "status.", layout.RUNSCRIPT)):
            continue
        try:
            lines.append(f"{entry.name} {entry.stat().st_mtime}")
        except OSError:
            continue
    return parse_times("\n".join(lines))
