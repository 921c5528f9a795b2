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
   scheduler (its queue, and its memory of finished jobs for what left the
   queue) about subjobs whose status file does not say they finished; each
   subjob's final outcome is stored in the job record the first time it is
   seen, so it stays true after the scheduler forgets the job;
5. when every subjob is finished, :meth:`Submitter.usage` reads what they
   used from the scheduler's accounting (one query), and the orchestrator
   brings outputs and logs back (:meth:`Orchestrator.fetch`).

Completion is therefore decided from the status files (plus the scheduler's
word for subjobs that died before writing one), never by a subjob that
waits for the others inside a scheduler slot.

For submitter authors, what core needs from a scheduler, all per poll and
batched over every followed job (see :meth:`Submitter.scheduler_states`):

* the pending reason of queued subjobs, and whether the scheduler will never
  start them as submitted (``SchedulerState.blocked``);
* for subjobs that ended, ``SUCCEEDED`` or ``FAILED`` with a normalised
  :class:`FailureReason`, the exit code (128 + N for a signal) and, where the
  scheduler keeps it, :class:`Usage`; looked up in the scheduler's history
  (``sacct``, ``qstat -x``, ``condor_history``, ``bjobs -a``, ``qacct``) once
  the queue no longer lists them;
* :meth:`SchedulerState.forgotten` for subjobs neither knows, so core can
  tell "gone" from "no information".
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from reproman.resources.landing import Landing, LandingReport

if TYPE_CHECKING:
    import os
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from pathlib import Path

    from reproman.jobs.spec import JobSpec
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
    """Why a subjob failed, normalised across schedulers.

    Every reason but :attr:`EXIT_CODE` and :attr:`LOST` names a cause the
    scheduler (or ``reproman jobs --cancel``) knows; those two are what is
    left when nobody does, so a known cause may replace them later and never
    the other way round (see :mod:`reproman.jobs.outcome`).
    """

    EXIT_CODE = "non-zero exit"
    OUT_OF_MEMORY = "out of memory"
    WALLTIME = "walltime exceeded"
    NODE_FAILURE = "node failure"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"
    SUBMISSION = "submission failed"
    LOST = "lost (ended without writing its status)"

    @property
    def specific(self) -> bool:
        """A cause someone knows, as opposed to "it exited non-zero" or "it vanished"."""
        return self not in (FailureReason.EXIT_CODE, FailureReason.LOST)


@attrs.frozen(kw_only=True)
class Usage:
    """What a finished subjob used, as the scheduler's accounting recorded it.

    Every field is optional: a scheduler reports what it keeps (Slurm's
    ``sacct`` has all of them; a step shorter than the sampling interval has
    no ``max_rss``).
    """

    #: Wall-clock seconds from start to end.
    elapsed: float | None = None
    #: CPU seconds actually used (user + system), not the CPUs reserved.
    cpu_time: float | None = None
    #: Peak resident memory, bytes.
    max_rss: int | None = None
    #: Where it ran (a node name, or a compressed list for multi-node subjobs).
    node: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed, "cpu_time": self.cpu_time, "max_rss": self.max_rss, "node": self.node}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        return cls(elapsed=data.get("elapsed"), cpu_time=data.get("cpu_time"), max_rss=data.get("max_rss"),
                   node=str(data.get("node") or ""))


@attrs.frozen(kw_only=True)
class SubjobStatus:
    """What is known about one subjob."""

    index: int
    state: State
    exit_code: int | None = None
    reason: FailureReason | None = None
    #: Free text: the scheduler's pending reason, its words about a failure.
    detail: str = ""
    #: The scheduler says this pending subjob can never start as requested.
    blocked: bool = False
    usage: Usage | None = None


@attrs.frozen(kw_only=True)
class SchedulerState:
    """The scheduler's word on one subjob (see :meth:`Submitter.scheduler_states`).

    * ``PENDING`` or ``RUNNING`` while the queue holds it; ``detail`` carries
      the scheduler's pending reason (Slurm ``%r``, PBS ``comment``, LSF
      ``pend_reason``, HTCondor ``HoldReason``) and ``blocked`` says the
      scheduler will never start it as submitted (Slurm ``PartitionConfig``,
      PBS "Can Never Run"...), so followers stop waiting and say why.
    * ``SUCCEEDED`` or ``FAILED`` once it ended, from the queue or from the
      scheduler's memory of finished jobs (``sacct``, ``qstat -x``,
      ``condor_history``, ``bjobs -a``), with ``exit_code`` and, for
      failures, a normalised ``reason``; ``usage`` where the scheduler keeps it.
    * ``RUNNING`` with ``cancelling`` for a cancelled subjob the submitter
      sees alive itself (it ignored the cancel's first signal, or is still
      cleaning up).
    * :meth:`forgotten` for a subjob neither the queue nor the history
      knows: core then declares it lost once its status file has been silent
      for a grace period, unless the file says it finished.
    """

    state: State
    reason: FailureReason | None = None
    detail: str = ""
    exit_code: int | None = None
    blocked: bool = False
    usage: Usage | None = None
    #: False only for :meth:`forgotten`.
    known: bool = True
    #: ``RUNNING`` after ``reproman jobs --cancel``, seen by the submitter itself (a live process of
    #: the subjob, not a queue that may lag behind): core shows it running as long as this is said,
    #: instead of settling it as cancelled once the cancel is older than the grace period, since
    #: it may still be writing into its working directory and a fetch must not take that.
    cancelling: bool = False

    @classmethod
    def forgotten(cls) -> SchedulerState:
        """The scheduler has no record of this subjob any more (nor ever had)."""
        return cls(state=State.UNKNOWN, known=False, detail="unknown to the scheduler")


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
    #: The submission script writes ``JobFiles.COMPLETED`` once every subjob has ended. Following
    #: then waits on that file where the session can watch one (the local machine): it wakes at
    #: the end, and polls in between only feed the progress display, so they can be rarer.
    writes_completion_marker: ClassVar[bool] = False

    def __init__(self, session: Session, resource: Resource | None = None) -> None:
        self.session = session
        self.resource = resource

    #: A file in the job directory where the scheduler writes its own words
    #: (Slurm's "CANCELLED ... DUE TO TIME LIMIT"), shown by ``jobs --log``; "" for none.
    scheduler_log: ClassVar[str] = ""

    @classmethod
    def scheduler_log_lines(cls, text: str, index: int) -> list[str]:
        """The lines of :attr:`scheduler_log` (its ``text``) about subjob ``index``; all of them by default."""
        return text.splitlines()

    @abstractmethod
    def submission_script(self, job: JobSpec) -> str:
        """Text of the submission script (kept, readable, in the job directory).

        It must run ``sh <job_dir>/runscript INDEX`` once per subjob, INDEX
        counting from 0, e.g. from the scheduler's array task id.
        """

    @abstractmethod
    def submit(self, job: JobSpec, script_path: str) -> str:
        """Submit the script already written at ``script_path``; return the submission id.

        Parse the id from machine-readable output (``sbatch --parsable``...).
        Raise :class:`reproman.errors.SubmissionError` on failure.
        """

    def scheduler_states(
        self, jobs: Sequence[JobSpec], wanted: Mapping[str, Collection[int]] | None = None
    ) -> Mapping[str, Mapping[int, SchedulerState]]:
        """The scheduler's word on the subjobs of ``jobs``, keyed by ``jobid`` then subjob index.

        Cost: ONE query of the queue for all ``jobs`` together, plus at most
        ONE query of the scheduler's history for the ids that left the queue
        (whatever the number of jobs and subjobs): sites ban users for less
        than one query per job per poll. Core calls it only for jobs with
        subjobs that wrote no final status line (or ended by a signal), and
        says which in ``wanted`` (jobid -> subjob indices; None: all): a
        subjob that left the queue but is not wanted (its status file told
        everything) needs no history lookup.

        Report every subjob the scheduler knows (see :class:`SchedulerState`):
        pending with the pending reason, running, or finished (``SUCCEEDED``
        or ``FAILED`` with ``reason``, ``exit_code`` and ``usage`` where
        known), and :meth:`SchedulerState.forgotten` for those neither the
        queue nor the history knows. Leave out subjobs the scheduler cannot
        speak about; the default (no scheduler) returns nothing, and core
        relies on the status files alone.
        """
        return {}

    def usage(self, jobs: Sequence[JobSpec]) -> Mapping[str, Mapping[int, Usage]] | None:
        """Resources used by the finished subjobs of ``jobs``, in ONE accounting query.

        Called once a job's subjobs have all finished, for the subjobs whose
        usage is not recorded yet (and again on later polls for those the
        accounting did not have yet). Return ``None`` when this resource
        keeps no accounting (core then records and shows usage as
        unavailable); leave out subjobs the accounting does not know yet.
        The default keeps no accounting.
        """
        return None

    @abstractmethod
    def cancel(self, job: JobSpec) -> None:
        """Stop every subjob of ``job`` that is queued or running."""

    def find_submitted(self, job: JobSpec) -> str | None:
        """The submission id of ``job`` if the scheduler holds it; "" if it has none; None if it cannot tell.

        Why: ``reproman run`` killed (``kill -9``, a lost terminal) while
        :meth:`submit` ran never learnt the submission id, yet the scheduler
        may have queued the job. Without an answer here core can only settle
        the job as "submission interrupted" (final, deletable), and a job
        that is in fact queued would then run unfollowed, its job directory
        deletable under it. With one, core adopts the id (the job is
        followed and fetched like any other) or, on "", settles it as
        never queued.

        Find the job by what :meth:`submit` gave the scheduler that names it
        (every scheduler submitter here names it ``reproman-<jobid>``), in
        the queue and in the scheduler's memory of finished jobs, in ONE
        remote command. Return the id in the form :meth:`submit` returns
        (several ids joined by "," for a split array, in submission order),
        so polling and cancelling work on it unchanged. Return "" only when
        the scheduler would list the job if it had ever taken it; return None
        (the default: this submitter cannot tell) when the history is off or
        the answer is ambiguous. Raise :class:`reproman.errors.ReproManError`
        when asking failed; core then keeps "submission interrupted", with
        the error's words.
        """
        return None


class Orchestrator(ABC):
    """Moves data for a job: stage inputs before, bring results back after."""

    name: ClassVar[str] = ""

    def __init__(self, resource: Resource, session: Session, job: JobSpec) -> None:
        self.resource = resource
        self.session = session
        self.job = job
        #: Set by :meth:`fetch`: declared outputs the job did not produce. Core then keeps the job's
        #: files on the resource: a misspelt ``-o`` must not free the only copy of what the job wrote.
        self.missing_outputs: list[str] = []

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

    #: True when an output that is a git-annex file (a symbolic link into
    #: ``.git/annex/objects``) is unlocked and replaced by the orchestrator, as
    #: ``datalad run`` does; otherwise such an output is refused before the
    #: job runs, since a fetch never writes through a link into ``.git``.
    unlocks_annexed_outputs: ClassVar[bool] = False

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
        directory itself (after the fetch, and on delete). Never remove what other jobs reuse (a
        shared dataset clone) or a directory the user named. Best effort: it
        must not raise for a resource that is gone.
        """

    def staged_paths(self) -> list[str]:
        """What :meth:`cleanup` removes on the resource (besides markers), for ``jobs --delete`` to check.

        Delete looks at these (and the job directory) before and after, to
        say truly whether the job's files were removed, already gone, or could
        not be removed. Default: nothing.
        """
        return []

    @classmethod
    def forget_local(cls, job: JobSpec) -> list[str]:
        """Called by ``jobs --delete`` once ``job``'s record is gone: drop what the job left on this machine.

        Runs without a resource or session (the resource may be gone, and a
        deleted job must not leave local clutter behind because of that).
        Remove only what holds nothing the user may still need; for anything
        kept, return one line saying what it is, why it is kept and how to
        remove it. Default: nothing to do. Never raise for a local directory
        that is gone.
        """
        return []

    #: Set by core before :meth:`fetch`: replace local files even if they changed after submission.
    overwrite: bool = False
    #: Set by core before :meth:`fetch`: the job's side on the resource is freed right after it
    #: (no ``--keep-remote``), so what :meth:`landing` names as :attr:`Landing.linkable` goes away.
    releases_remote: bool = False
    #: Set by core before :meth:`fetch`: local paths (absolute) owed by subjobs that did not succeed,
    #: whose existing local files the fetch never replaces (:attr:`Landing.guarded`).
    guarded_outputs: frozenset[str] = frozenset()
    #: Set by core before :meth:`fetch`: recognises a local file that a subjob which did not succeed left
    #: where nothing was, unchanged since, so that a result replaces it (:attr:`Landing.left_by_failure`).
    left_by_failure: Callable[[Path, os.stat_result], bool] | None = None
    #: What the last :meth:`fetch` did locally (written, kept and skipped paths), for the user.
    landing_report: LandingReport | None = None

    def landing(self) -> Landing:
        """The rules fetched outputs land under for this job (see :mod:`reproman.resources.landing`).

        Local files changed after the job's submission stamp, and those owed
        by subjobs that did not succeed (:attr:`guarded_outputs`), are kept and the
        job's version goes to ``.reproman/jobs/<resource>/<jobid>/fetched/``;
        ReproMan's own record directory is never protected. A local file that such
        a subjob of an earlier job left where nothing was, unchanged since, is no
        edit: a result replaces it (:attr:`left_by_failure`). Only the job
        directory is :attr:`Landing.linkable` (when the fetch frees the
        resource); an orchestrator whose :meth:`cleanup` removes more adds it.
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
            guarded=self.guarded_outputs,
            left_by_failure=self.left_by_failure,
            exempt=(record,),
            # The job directory is removed after a fetch that frees the resource.
            linkable=(str(job.job_dir),) if self.releases_remote and job.job_dir else (),
        )

    def fetch_lock(self) -> AbstractContextManager[None]:
        """What core holds around the whole fetch: the collection on the resource, :meth:`fetch`, the check.

        Core computes the outputs' checksums on the resource (writing files
        in the job directory) just before :meth:`fetch`; an orchestrator whose
        fetches must not overlap (they commit into one dataset) returns its
        lock here, so a racing fetch collects only once the first is done.
        The default is no lock.
        """
        from contextlib import nullcontext

        return nullcontext()

    def settle_outputs(self) -> None:
        """Put the outputs on the resource in the form they are fetched in, before core checksums them.

        Called under :meth:`fetch_lock`, before the checksums are computed
        and :meth:`fetch` runs, whether or not the environment is captured.
        An orchestrator that changed files under the outputs for the job's
        sake (the DataLad ones unlock annexed files so the command can
        write them) undoes here what the command left untouched; otherwise
        the checksums would describe that temporary form, and the fetched
        files would read as altered. The default does nothing.
        """

    @abstractmethod
    def fetch(self) -> list[str]:
        """Bring outputs and logs of a finished job back; return the local paths written."""
