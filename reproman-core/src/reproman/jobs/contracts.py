"""The contracts between the job machinery, submitters and orchestrators.

A job is ``reproman run`` turned into N subjobs (N = 1 without a batch). Its
life on the resource is the same whatever the submitter:

1. the orchestrator prepares the working directory and stages inputs
   (:meth:`Orchestrator.prepare_remote`);
2. core writes the job directory (see :mod:`reproman.jobs.layout`): the
   spec, the runscript, and the submitter's submission script;
3. the submitter hands the submission script to the resource
   (:meth:`Submitter.submit`), which ends up running ``runscript INDEX`` once
   per subjob; the runscript records each subjob's state and exit code in
   ``status.INDEX`` and its output in ``stdout.INDEX``/``stderr.INDEX``;
4. core polls: one remote command reads every status file of every followed
   job on a resource, and one :meth:`Submitter.scheduler_states` call asks the
   scheduler about subjobs whose status file does not say they finished;
5. when every subjob is finished, the orchestrator brings outputs and logs
   back (:meth:`Orchestrator.fetch`).

Completion is therefore decided from the status files (plus the scheduler's
word for subjobs that died before writing one), never by a subjob that
waits for the others inside a scheduler slot.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from reproman.resources.landing import Landing, LandingReport

if TYPE_CHECKING:
    from reproman.resources.base import Resource
    from reproman.resources.session import Session


class State(str, enum.Enum):
    """The states a subjob is shown in, the same for every scheduler."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        return self in (State.SUCCEEDED, State.FAILED)


class FailureReason(str, enum.Enum):
    """Why a subjob failed, normalised across schedulers."""

    EXIT_CODE = "non-zero exit"
    OUT_OF_MEMORY = "out of memory"
    WALLTIME = "walltime exceeded"
    NODE_FAILURE = "node failure"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"
    SUBMISSION = "submission failed"
    LOST = "lost (left the scheduler without a status)"


@attrs.frozen(kw_only=True)
class SubjobStatus:
    """What is known about one subjob."""

    index: int
    state: State
    exit_code: int | None = None
    reason: FailureReason | None = None
    detail: str = ""


@attrs.frozen(kw_only=True)
class SchedulerState:
    """The scheduler's word on one subjob that has not written a final status.

    ``state`` is PENDING or RUNNING while the scheduler still holds it, or
    FAILED with a ``reason`` once it left the queue abnormally. Return
    ``None`` for subjobs the scheduler no longer knows (core then relies on
    the status file, and declares the subjob lost after a grace period).
    """

    state: State
    reason: FailureReason | None = None
    detail: str = ""


class Submitter(ABC):
    """Hands a job's subjobs to the resource.

    One instance serves one resource through one session; ``job`` arguments
    are :class:`reproman.jobs.spec.JobSpec` records (see that module for the
    fields: ``jobid``, ``job_dir``, ``working_directory``, ``n_subjobs``,
    ``parameters``...).
    """

    #: Submitter name as registered (``local``, ``slurm``...).
    name: ClassVar[str] = ""
    #: File name of the submission script inside the job directory.
    script_name: ClassVar[str] = "submit"

    def __init__(self, session: Session, resource: Resource | None = None) -> None:
        self.session = session
        self.resource = resource

    @abstractmethod
    def submission_script(self, job: Any) -> str:
        """Text of the submission script (kept, readable, in the job directory).

        It must run ``sh <job_dir>/runscript INDEX`` once per subjob, INDEX
        counting from 0, e.g. from the scheduler's array task id.
        """

    @abstractmethod
    def submit(self, job: Any, script_path: str) -> str:
        """Submit the script already written at ``script_path``; return the submission id.

        Parse the id from machine-readable output (``sbatch --parsable``...).
        Raise :class:`reproman.errors.SubmissionError` on failure.
        """

    def scheduler_states(self, jobs: Sequence[Any]) -> Mapping[str, Mapping[int, SchedulerState]]:
        """The scheduler's view of unfinished subjobs, for all ``jobs`` in ONE query.

        Keyed by ``jobid`` then subjob index. The default (no scheduler)
        returns nothing and core relies on the status files alone.
        """
        return {}

    @abstractmethod
    def cancel(self, job: Any) -> None:
        """Stop every subjob of ``job`` that is queued or running."""


class Orchestrator(ABC):
    """Moves data for a job: stage inputs before, bring results back after."""

    name: ClassVar[str] = ""

    def __init__(self, resource: Resource, session: Session, job: Any) -> None:
        self.resource = resource
        self.session = session
        self.job = job

    def default_working_directory(self) -> str:
        """Where the command runs when the user gave no ``working_directory``.

        Called before :meth:`prepare_remote`, with ``job.root_directory``
        already absolute on the resource; the default is a fresh per-job
        directory, ``<root_directory>/<jobid>``, so concurrent jobs never
        share a working directory. DataLad orchestrators return the dataset.
        """
        import posixpath

        return posixpath.join(str(self.job.root_directory), str(self.job.jobid))

    @abstractmethod
    def prepare_remote(self) -> None:
        """Create the working directory on the resource and make inputs available there."""

    #: True when the orchestrator stores the job record with the results itself
    #: (e.g. commits it): core then sets the final status before :meth:`fetch`
    #: and leaves the fetched ``spec.yaml`` alone, so a committed copy stays clean.
    records_job: ClassVar[bool] = False

    def post_submit(self) -> None:
        """Hook after the submitter accepted the job (record, commit...)."""

    def abandon(self) -> None:
        """Release what :meth:`prepare_remote` holds for a job that will never be fetched.

        Called when submission fails after staging and when the user deletes
        an unfetched job. Best effort: it must not raise for a resource that
        is gone.
        """

    def cleanup(self) -> None:
        """Remove what this job staged on the resource (staged inputs, per-job directories).

        Called after a successful fetch unless the user passed
        ``--keep-remote``, and by ``jobs --delete``; core removes the job
        directory itself on delete. Never remove what other jobs reuse (a
        shared dataset clone) or a directory the user named. Best effort: it
        must not raise for a resource that is gone.
        """

    #: Set by core before :meth:`fetch`: replace local files even if they changed after submission.
    overwrite: bool = False
    #: What the last :meth:`fetch` did locally (written, kept and skipped paths), for the user.
    landing_report: LandingReport | None = None

    def landing(self) -> Landing:
        """The rules fetched outputs land under for this job (see :mod:`reproman.resources.landing`).

        Local files changed after the job's submission stamp are kept and the
        job's version goes to ``.reproman/jobs/<resource>/<jobid>/fetched/``;
        ReproMan's own record directory is never protected.
        """
        import os
        from pathlib import Path

        from reproman.jobs.layout import local_record_dir

        job = self.job
        record = Path(local_record_dir(job.local_directory, job.resource_name, job.jobid))
        return Landing(
            changed_after=getattr(self.job, "local_stamp", None),
            keep_dir=record / "fetched",
            keep_root=Path(os.path.abspath(self.job.local_directory)),
            overwrite=self.overwrite,
            exempt=(record,),
        )

    @abstractmethod
    def fetch(self) -> list[str]:
        """Bring outputs and logs of a finished job back; return the local paths written."""
