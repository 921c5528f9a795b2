"""The job record: what ``reproman run`` decided, kept locally and on the resource.

The same record is the local registry entry (``<data dir>/jobs/JOBID.yaml``)
and ``spec.yaml`` in the job directory on the resource, so a job can be
understood from either side.
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


@attrs.define(kw_only=True)
class JobSpec:
    """Everything needed to follow, fetch or cancel a job later, from any process."""

    jobid: str
    command: str
    message: str | None = None
    resource_name: str
    resource_type: str
    resource_id: str | None = None
    submitter: str
    orchestrator: str
    parameters: dict[str, Any] = attrs.Factory(dict)
    subjobs: list[Subjob] = attrs.Factory(list)
    inputs: list[str] = attrs.Factory(list)
    outputs: list[str] = attrs.Factory(list)
    local_directory: str = attrs.Factory(os.getcwd)
    root_directory: str = ""
    working_directory: str = ""
    job_dir: str = ""
    submission_id: str | None = None
    #: registered -> submitted -> (fetched | failed to submit); see registry.
    status: str = "registered"
    created: str = attrs.Factory(lambda: datetime.datetime.now().isoformat(timespec="seconds"))
    #: A ctime from the local directory's file system taken at submission
    #: (:func:`reproman.resources.landing.stamp`): local outputs changed after it are never overwritten.
    local_stamp: int | None = None
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
    #: For a rerun: ``{"jobid": ORIGINAL, "subjobs": [original indices]}``.
    rerun_of: dict[str, Any] | None = None
    #: Values of secret-looking ``env`` variables (see :mod:`reproman.jobs.secrets`),
    #: held in memory for submission only: never part of the record.
    secret_env: dict[str, str] = attrs.field(factory=dict, repr=False, metadata={"record": False})

    @property
    def n_subjobs(self) -> int:
        return len(self.subjobs)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=True, filter=lambda a, _v: a.metadata.get("record", True))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        fields = {f.name for f in attrs.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields and k != "secret_env"}
        values["subjobs"] = [Subjob(**s) if isinstance(s, dict) else s for s in values.get("subjobs", [])]
        return cls(**values)
