"""The local job registry: one YAML record per job in ``<data dir>/jobs/JOBID.yaml``.

One file per job (not one shared file) means concurrent ``reproman run``
processes never contend for a lock, and one damaged record cannot hide the
others: :meth:`Registry.entries` reports a malformed file as a
:class:`BrokenRecord` and leaves it in place for the user to inspect. Every
write is atomic (temporary file + rename), and ``run`` writes the record
before it submits and again after, so a crash in between leaves a record
that still names the job directory on the resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from reproman.errors import JobError, JobNotFoundError, ReproManError
from reproman.jobs.spec import JobSpec
from reproman.paths import data_dir

SUFFIX = ".yaml"


def dump_record(job: JobSpec) -> str:
    """A job record as YAML text, written in YAML's JSON subset.

    YAML 1.2 is a superset of JSON, so every YAML tool reads these files;
    writing and reading them costs microseconds instead of the pure-Python
    YAML emitter's ~0.1 s for a 100-subjob record, which would otherwise be
    a third of a trivial batch's run time and make ``reproman jobs`` slow
    with many large jobs.
    """
    import json

    return json.dumps(job.to_dict(), indent=2, default=str) + "\n"


def load_record(text: str, source: str) -> Any:
    """Parse a record: the JSON fast path, else full YAML (hand-edited or older records)."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        from reproman.yamlio import load

        return load(text, source)


@attrs.frozen(kw_only=True)
class BrokenRecord:
    """A registry file that cannot be read as a job record."""

    jobid: str
    path: Path
    error: str


class Registry:
    """Read and write job records; ``root`` defaults to ``<data dir>/jobs``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else data_dir() / "jobs"

    def path(self, jobid: str) -> Path:
        return self.root / f"{jobid}{SUFFIX}"

    def save(self, job: JobSpec) -> None:
        from reproman.yamlio import atomic_write

        atomic_write(self.path(job.jobid), dump_record(job))

    def load(self, jobid: str) -> JobSpec:
        return self._read(self.path(jobid))

    def _read(self, path: Path) -> JobSpec:
        try:
            text = path.read_text()
        except OSError as exc:
            raise JobError(f"cannot read {path}: {exc.strerror}") from None
        data = load_record(text, str(path))
        if not isinstance(data, dict) or "jobid" not in data:
            raise JobError(f"{path} is not a job record (no 'jobid' mapping)")
        try:
            return JobSpec.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise JobError(f"{path} is not a valid job record: {exc}") from None

    def entries(self) -> list[JobSpec | BrokenRecord]:
        """Every record, oldest job first; unreadable files as :class:`BrokenRecord`."""
        if not self.root.is_dir():
            return []
        result: list[JobSpec | BrokenRecord] = []
        for path in sorted(self.root.glob(f"*{SUFFIX}")):
            if path.name.startswith("."):
                continue  # an atomic write in progress
            try:
                result.append(self._read(path))
            except ReproManError as exc:
                result.append(BrokenRecord(jobid=path.name[: -len(SUFFIX)], path=path, error=str(exc)))
        return result

    def delete(self, jobid: str) -> None:
        try:
            self.path(jobid).unlink()
        except FileNotFoundError:
            pass

    def find(self, queries: Sequence[str] | None, all_: bool = False) -> list[JobSpec | BrokenRecord]:
        """Records named by full ID or unique substring (all with ``all_``), in query order.

        An ambiguous substring is an error that lists the candidates, so a
        ``delete`` or ``cancel`` never acts on a job the user did not mean.
        """
        entries = self.entries()
        if all_ or not queries:
            return entries if all_ else []
        selected: list[JobSpec | BrokenRecord] = []
        for query in queries:
            exact = [e for e in entries if e.jobid == query]
            matches = exact or [e for e in entries if query in e.jobid]
            if not matches:
                known = ", ".join(e.jobid for e in entries[-5:]) or "none"
                raise JobNotFoundError(f"no job matches {query!r} (recent jobs: {known})", hint="See 'reproman jobs'.")
            if len(matches) > 1:
                names = ", ".join(e.jobid for e in matches)
                raise JobNotFoundError(f"{query!r} matches several jobs: {names}", hint="Give more of the job ID.")
            if matches[0] not in selected:
                selected.append(matches[0])
        return selected
