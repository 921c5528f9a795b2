"""The job record: what ``reproman run`` decided, and what became of it.

The same record is the local registry entry (``<data dir>/jobs/JOBID.yaml``)
and ``spec.yaml`` in the job directory on the resource, so a job can be
understood from either side. Besides the request (command and the
patterns it was given, batch records, job parameters) it keeps the facts
learned while following the job: each subjob's final outcome the first time
it was seen finished (see :mod:`reproman.jobs.outcome`), whether and when
the user cancelled it, and when it was fetched. Those facts must outlive the
scheduler's memory: a scheduler forgets finished jobs after minutes, and
checking back the next morning is how HPC users work.
"""

from __future__ import annotations

import datetime
import os
import secrets
from typing import Any

import attrs


def new_jobid(now: datetime.datetime | None = None) -> str:
    """Sortable, unique enough across processes: ``YYYYMMDD-HHMMSS-xxxxxx``."""
    now = now or datetime.datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


@attrs.define(kw_only=True)
class Subjob:
    """One rendered command with its own inputs and outputs."""

    command: str
    inputs: list[str] = attrs.Factory(list)
    outputs: list[str] = attrs.Factory(list)
    p: dict[str, Any] = attrs.Factory(dict)
    #: The final outcome once seen (:class:`reproman.jobs.outcome.Outcome` as a dict), else None.
    outcome: dict[str, Any] | None = None


@attrs.define(kw_only=True)
class JobSpec:
    """Everything needed to follow, fetch or cancel a job later, from any process."""

    jobid: str
    command: str
    #: The command's words when it was given as argv (``run sh -c 'echo {p[v]}' ...``): ``command`` is
    #: their shell-quoted join, which, read back as shell code, would put a value in another quoting
    #: context than the one it was rendered for (a job spec made from ``--show`` must run what ran).
    command_words: list[str] | None = None
    message: str | None = None
    resource_name: str
    resource_type: str
    resource_id: str | None = None
    submitter: str
    orchestrator: str
    parameters: dict[str, Any] = attrs.Factory(dict)
    subjobs: list[Subjob] = attrs.Factory(list)
    #: Rendered inputs and outputs of all subjobs (what orchestrators move).
    inputs: list[str] = attrs.Factory(list)
    outputs: list[str] = attrs.Factory(list)
    #: The inputs and outputs as the user gave them, ``{p[KEY]}`` placeholders
    #: unrendered, so the job can be submitted again from its record.
    input_patterns: list[str] = attrs.Factory(list)
    output_patterns: list[str] = attrs.Factory(list)
    local_directory: str = attrs.Factory(os.getcwd)
    root_directory: str = ""
    working_directory: str = ""
    job_dir: str = ""
    submission_id: str | None = None
    #: Where the job is in its life: registered -> submitted -> fetched (or
    #: "submission failed"). How it ended is in the subjobs' outcomes.
    status: str = "registered"
    created: str = attrs.Factory(lambda: datetime.datetime.now().isoformat(timespec="seconds"))
    #: A ctime from the local directory's file system taken at submission
    #: (:func:`reproman.resources.landing.stamp`): local outputs changed after it are never overwritten.
    local_stamp: int | None = None
    #: When ``reproman jobs --cancel`` stopped it (ISO time), else None.
    cancelled: str | None = None
    #: The subjobs that cancel stopped: those not finished at the poll just
    #: before it. Only they read "cancelled with 'reproman jobs --cancel'";
    #: None (records from before this field) means every subjob.
    cancelled_subjobs: list[int] | None = None
    #: When its results were last fetched (ISO time), else None.
    fetched: str | None = None
    #: Whether the resource reports resource usage: None until asked.
    usage_available: bool | None = None
    #: Subjob index -> epoch seconds (local clock) since which the scheduler
    #: says it ended, or forgot it, while its status file says nothing final.
    unaccounted: dict[str, float] = attrs.Factory(dict)
    #: The user asked (``run --keep-remote``) to keep the job's files on the
    #: resource after a fetch: every later fetch keeps them too, not only one
    #: that ``run --follow`` makes itself.
    keep_remote: bool = False
    #: Anything an orchestrator or submitter needs to remember (commit ids...).
    extra: dict[str, Any] = attrs.Factory(dict)
    # -- provenance (reproman.jobs.provenance) ------------------------------------
    #: What the runscript records about where each subjob ran: ``environment``
    #: (node facts and a package spec, traced once per node), ``trace`` (that,
    #: plus an strace-based trace of every subjob) or ``off``.
    capture: str = "environment"
    #: ``{"environments": {ID: {...}}, "subjobs": [{"environment": ID, "host": ...}, ...]}``,
    #: filled when the job is fetched; identical environments are stored once.
    environment: dict[str, Any] = attrs.Factory(dict)
    #: Output files (relative to the working directory) -> ``{"size": N, "sha256": HEX}``,
    #: computed on the resource when the job is fetched.
    checksums: dict[str, dict[str, Any]] = attrs.Factory(dict)
    #: Inputs as they were at submission: ``{path: {"size": N, "mtime_ns": T}}`` (see
    #: :mod:`reproman.jobs.inputstate`), so a comparison can say an input changed between two runs.
    input_state: dict[str, dict[str, int]] = attrs.Factory(dict)
    #: For a rerun: ``{"jobid": ORIGINAL, "subjobs": [original indices]}``.
    rerun_of: dict[str, Any] | None = None
    #: Values of secret-looking ``env`` variables (see :mod:`reproman.jobs.secrets`),
    #: held in memory for submission only: never part of the record.
    secret_env: dict[str, str] = attrs.field(factory=dict, repr=False, metadata={"record": False})

    @property
    def n_subjobs(self) -> int:
        return len(self.subjobs)

    @property
    def was_fetched(self) -> bool:
        """Fetched at least once (records from before ``fetched`` existed say so in ``status``)."""
        return self.fetched is not None or self.status == "fetched"

    def to_dict(self, *, copy: bool = True) -> dict[str, Any]:
        """The record as plain data, without the fields kept out of records.

        A deep copy unless ``copy`` is false: serialising (every save of a
        job that may have 100,000 subjobs) reads the data once and needs
        none. Either way several times faster than ``attrs.asdict``.
        """
        if not copy:
            data = {f.name: getattr(self, f.name) for f in _RECORD_FIELDS}
            data["subjobs"] = [{name: getattr(s, name) for name in _SUBJOB_FIELDS} for s in self.subjobs]
            return data
        data = {f.name: _plain(getattr(self, f.name)) for f in _RECORD_FIELDS}
        data["subjobs"] = [{name: _plain(getattr(s, name)) for name in _SUBJOB_FIELDS} for s in self.subjobs]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        fields = {f.name for f in attrs.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields and k != "secret_env"}
        subjob_fields = {f.name for f in attrs.fields(Subjob)}
        values["subjobs"] = [
            Subjob(**{k: v for k, v in s.items() if k in subjob_fields}) if isinstance(s, dict) else s
            for s in values.get("subjobs", [])
        ]
        return cls(**values)


_RECORD_FIELDS = [f for f in attrs.fields(JobSpec) if f.metadata.get("record", True)]
_SUBJOB_FIELDS = [f.name for f in attrs.fields(Subjob)]


def _plain(value: Any) -> Any:
    """A copy of JSON-like data: new dicts and lists, the same scalars."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if attrs.has(type(value)):
        return attrs.asdict(value)
    return value
