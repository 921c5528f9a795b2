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

import contextlib
import datetime
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from reproman.errors import JobError, JobNotFoundError, ReproManError, SpecError
from reproman.jobs.secrets import HIDDEN, REDACTED
from reproman.jobs.spec import JobSpec
from reproman.paths import data_dir

SUFFIX = ".yaml"
#: A 100,000-subjob record is about 30 MB of JSON.
RECORD_LIMIT = 256 * 1024 * 1024


def dump_record(job: JobSpec, *, compact: bool = False) -> str:
    """A job record as YAML text, written in YAML's JSON subset.

    YAML 1.2 is a superset of JSON, so every YAML tool reads these files;
    writing and reading them costs microseconds instead of the pure-Python
    YAML emitter's ~0.1 s for a 100-subjob record, which would otherwise be
    a third of a trivial batch's run time and make ``reproman jobs`` slow
    with many large jobs. ``compact`` (one line per subjob, for the
    registry, which is rewritten as a job is followed) lets the JSON
    encoder's C implementation run: indenting falls back to Python, about
    ten times slower for a 1,000-subjob record.
    """
    import json

    data = job.to_dict(copy=False)  # only read, to serialise
    if not compact:
        return _readable(data)
    subjobs = data.pop("subjobs", [])
    head = json.dumps(data, separators=(", ", ": "), default=str)
    rows = ",\n  ".join(json.dumps(s, separators=(", ", ": "), default=str) for s in subjobs)
    listed = f"[\n  {rows}\n]" if rows else "[]"
    return head[:-1] + (", " if data else "") + f'"subjobs": {listed}' + "}\n"


def _readable(data: dict[str, Any]) -> str:
    """JSON with a line per field, and per entry of a list or mapping field (subjobs, checksums, environment).

    What a reader or ``git diff`` of a fetched record needs, at the C
    encoder's speed: a fully indented 1,000-subjob record takes the Python
    encoder about 0.2 s, a third of the fetch of a trivial batch.
    """
    import json

    def one(value: Any) -> str:
        return json.dumps(value, separators=(", ", ": "), default=str)

    fields = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            inner = ",\n    ".join(one(item) for item in value)
            text = f"[\n    {inner}\n  ]"
        elif isinstance(value, dict) and value:
            inner = ",\n    ".join(f"{one(str(k))}: {one(v)}" for k, v in value.items())
            text = f"{{\n    {inner}\n  }}"
        else:
            text = one(value)
        fields.append(f"  {one(str(key))}: {text}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


def load_record(text: str, source: str) -> Any:
    """Parse a record: the JSON fast path, else full YAML (hand-edited or older records)."""
    import json

    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        from reproman.yamlio import YAML_LIMIT, load

        if len(text) > YAML_LIMIT:
            raise SpecError(f"{source} is not JSON, and too large to read as YAML") from None
        return load(text, source)


#: The fields of a record and the types they must have (``None`` allowed for the optional ones).
_TEXT = ("jobid", "command", "resource_name", "resource_type", "submitter", "orchestrator",
         "local_directory", "root_directory", "working_directory", "job_dir", "status", "created")
_OPTIONAL_TEXT = ("message", "resource_id", "submission_id")
_MAPPINGS = ("parameters", "extra", "input_state")
_TEXT_LISTS = ("inputs", "outputs")


def check_record(data: Any, path: Path) -> None:
    """Raise :class:`JobError` unless ``data`` has the shape of a job record.

    Checked once here so that no later ``jobs`` action meets a list where
    it expects a name: a damaged record is listed as damaged instead.
    """
    def bad(what: str) -> JobError:
        return JobError(f"{path} is not a valid job record: {what}")

    if not isinstance(data, dict) or "jobid" not in data:
        raise JobError(f"{path} is not a job record (no 'jobid' mapping)")
    if isinstance(data.get("created"), (datetime.date, datetime.datetime)):
        data["created"] = data["created"].isoformat()  # a hand-written YAML record
    for key in ("jobid", "command", "resource_name", "resource_type", "submitter", "orchestrator"):
        if key not in data:
            raise bad(f"no {key!r}")
    for key in _TEXT:
        if key in data and not isinstance(data[key], str):
            raise bad(f"{key!r} must be text")
    for key in _OPTIONAL_TEXT:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise bad(f"{key!r} must be text")
    for key in _MAPPINGS:
        if key in data and not isinstance(data[key], dict):
            raise bad(f"{key!r} must be a mapping")
    for key in _TEXT_LISTS:
        if key in data and not (isinstance(data[key], list) and all(isinstance(v, str) for v in data[key])):
            raise bad(f"{key!r} must be a list of paths")
    words = data.get("command_words")
    if words is not None and not (isinstance(words, list) and words and all(isinstance(w, str) for w in words)):
        raise bad("'command_words' must be a list of words")
    subjobs = data.get("subjobs", [])
    if not isinstance(subjobs, list):
        raise bad("'subjobs' must be a list")
    for i, sub in enumerate(subjobs):
        if not isinstance(sub, dict) or not isinstance(sub.get("command"), str):
            raise bad(f"subjob {i} has no command")
        for key in _TEXT_LISTS:
            if key in sub and not (isinstance(sub[key], list) and all(isinstance(v, str) for v in sub[key])):
                raise bad(f"subjob {i}: {key!r} must be a list of paths")
        if "p" in sub and not isinstance(sub["p"], dict):
            raise bad(f"subjob {i}: 'p' must be a mapping")
    if data["jobid"] != path.name[: -len(SUFFIX)]:
        raise bad(f"it names job {data['jobid'][:40]!r}, not the job of its file name")
    _check_job_dir(data, bad)


def _check_job_dir(data: dict[str, Any], bad: Any) -> None:
    """The job directory must be the one ReproMan made: a fetch and ``--delete`` remove it with ``rm -rf``.

    A record edited (or damaged) to name another directory would otherwise
    have a later fetch delete whatever that directory holds.
    """
    import posixpath

    from reproman.jobs import layout

    job_dir, root = data.get("job_dir"), data.get("root_directory")
    if not job_dir or root is None:
        return  # not submitted yet (or a hand-made record): nothing is ever removed for it
    # <root>/.reproman/jobs/<resource>/<jobid>: the resource part may be any one name (the record's
    # resource may have been renamed since), the rest must be exactly the job's.
    parent, name = posixpath.split(job_dir)
    jobs, resource = posixpath.split(parent)
    if (name != data["jobid"] or resource in ("", ".", "..") or jobs != layout.job_dir(root, "", "").rstrip("/")
            or posixpath.normpath(job_dir) != job_dir):
        expected = layout.job_dir(root, data["resource_name"], data["jobid"])
        raise bad(f"its job_dir {job_dir[:200]!r} is not the job's own directory (like {expected[:200]!r})")


def hide_env(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of a job record (or of a row holding one under ``job``) with ``env`` values hidden.

    The ``env`` job parameter is how secrets such as tokens reach a job;
    listings end up in terminals' scrollback and CI logs, so its values are
    shown only when asked for. The names stay, so the user sees what is set.
    """
    out = dict(row)
    params = out.get("parameters")
    if isinstance(params, dict) and isinstance(params.get("env"), dict):
        # A value never stored (a secret) says so: '--show-env' would not print it either.
        out["parameters"] = {**params, "env": {k: v if v == REDACTED else HIDDEN for k, v in params["env"].items()}}
    if isinstance(out.get("job"), dict):
        out["job"] = hide_env(out["job"])
    return out


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
        """Write the record, private (0600 in a 0700 directory): it holds ``env`` values.

        A ``reproman jobs --cancel`` another process recorded meanwhile is
        kept (see :func:`reproman.jobs.outcome.adopt_cancel`): read and
        written under a short per-job lock, so a follower saving what it
        polled never erases, nor mislabels, the user's cancel.
        """
        from reproman.localfiles import atomic_write, private_dir

        private_dir(self.root)
        if self.root.stat().st_mode & 0o077 and self.root.stat().st_uid == os.getuid():
            self.root.chmod(0o700)  # made readable by an older ReproMan
        with self._writing(job.jobid):
            self._keep_cancel(job)
            atomic_write(self.path(job.jobid), dump_record(job, compact=True), mode=0o600)

    def record_cancel(self, job: JobSpec, cancelled: str, cancelled_subjobs: Sequence[int]) -> None:
        """Record in ``job`` and in its stored record that ``reproman jobs --cancel`` stopped those subjobs.

        Written into the record as it is on disk now, not as ``job`` was
        loaded: a follower may have saved outcomes (or its fetch) in the
        meantime, and those stay.
        """
        from reproman.jobs import outcome
        from reproman.localfiles import atomic_write, private_dir

        outcome.adopt_cancel(job, cancelled, cancelled_subjobs)
        private_dir(self.root)
        with self._writing(job.jobid):
            try:
                stored = self.load(job.jobid)
            except (ReproManError, OSError):
                stored = job
            outcome.adopt_cancel(stored, cancelled, cancelled_subjobs)
            atomic_write(self.path(job.jobid), dump_record(stored, compact=True), mode=0o600)

    def _keep_cancel(self, job: JobSpec) -> None:
        from reproman.jobs import outcome

        if not self.path(job.jobid).exists():
            return
        try:
            stored = self.load(job.jobid)
        except (ReproManError, OSError):
            return  # a damaged record: this save replaces it, as before
        outcome.adopt_cancel(job, stored.cancelled, stored.cancelled_subjobs)

    @contextlib.contextmanager
    def _writing(self, jobid: str) -> Iterator[None]:
        """One writer of a record at a time, for a read-merge-write of job ``jobid``'s record.

        A ``flock`` on the records' directory itself (held for a read and a
        write, milliseconds; no lock file left behind), not :meth:`hold`: a
        fetch holds that for minutes and saves while holding it.
        """
        import fcntl

        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def hold(self, jobid: str) -> Iterator[None]:
        """Take turns with other ReproMan processes acting on job ``jobid`` (fetch, delete).

        An advisory ``flock`` on ``.locks/JOBID`` beside the records: the
        kernel drops it when the holder dies, so a killed fetch never
        leaves the job locked. Records themselves stay lock-free to read.
        """
        import fcntl

        from reproman.localfiles import private_dir

        locks = self.root / ".locks"
        private_dir(locks)
        fd = os.open(locks / jobid, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def load(self, jobid: str) -> JobSpec:
        return self._read(self.path(jobid))

    def _read(self, path: Path) -> JobSpec:
        from reproman.localfiles import read_text

        text = read_text(path, what="job record", limit=RECORD_LIMIT, error=JobError)
        try:
            data = load_record(text, str(path))
        except SpecError as exc:
            raise JobError(str(exc)) from None
        check_record(data, path)
        try:
            return JobSpec.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise JobError(f"{path} is not a valid job record: {exc}") from None

    def entries(self) -> list[JobSpec | BrokenRecord]:
        """Every record, oldest job first; unreadable files as :class:`BrokenRecord`."""
        return [self._entry(jobid) for jobid in self.jobids()]

    def jobids(self) -> list[str]:
        """The job IDs of every record file, oldest first, without reading one (a record's file is named by it)."""
        if not self.root.is_dir():
            return []
        try:
            names = os.listdir(self.root)
        except OSError as exc:
            from reproman.localfiles import os_error_text

            raise JobError(f"cannot read the job records in {self.root}: {os_error_text(exc)}") from None
        # Dot-files are atomic writes in progress.
        return sorted(name[: -len(SUFFIX)] for name in names if name.endswith(SUFFIX) and not name.startswith("."))

    def _entry(self, jobid: str) -> JobSpec | BrokenRecord:
        path = self.path(jobid)
        try:
            return self._read(path)
        except ReproManError as exc:
            return BrokenRecord(jobid=jobid, path=path, error=str(exc))

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
        if all_ or not queries:
            return self.entries() if all_ else []
        # Matched by file name (check_record holds every record to its own): only the chosen records are read,
        # so naming one job costs the same with ten records as with ten thousand.
        jobids = self.jobids()
        selected: list[JobSpec | BrokenRecord] = []
        chosen: list[str] = []
        for query in queries:
            exact = [j for j in jobids if j == query]
            matches = exact or [j for j in jobids if query in j]
            if not matches:
                known = ", ".join(jobids[-5:]) or "none"
                raise JobNotFoundError(f"no job matches {query!r} (recent jobs: {known})", hint="See 'reproman jobs'.")
            if len(matches) > 1:
                names = ", ".join(matches)
                raise JobNotFoundError(f"{query!r} matches several jobs: {names}", hint="Give more of the job ID.")
            if matches[0] not in chosen:
                chosen.append(matches[0])
                selected.append(self._entry(matches[0]))
        return selected
