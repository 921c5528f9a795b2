"""What every DataLad orchestrator shares: the local checks, the job record, remote helpers.

Every DataLad orchestrator ends a job the same way: the job directory's
files (spec, runscript, submission script, per-subjob status/stdout/stderr)
are copied into the dataset at ``.reproman/jobs/<resource>/<jobid>/`` and
committed together with the command's changes, and ``refs/reproman/<jobid>``
names that commit. The record is stored in git, not the annex (a
``.reproman/jobs/.gitattributes`` says so), so it is readable without
``datalad get`` and lands in the work tree with a merge.

A job with failed subjobs is recorded the same way, with the failure in the
commit subject and the status files in the record: the dataset stays clean,
the outputs of subjobs that succeeded are kept, and the next job can start.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shlex
import shutil
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from reproman.errors import OrchestratorError
from reproman.jobs.contracts import Orchestrator, State, SubjobStatus
from reproman.jobs.plain import relative_path
from reproman.jobs.status import JobStatus, interpret, read_files
from reproman.resources.session import CommandResult
from reproman_orchestrators_datalad.local_dataset import DatasetState, LocalDataset

if TYPE_CHECKING:
    from reproman.resources.base import Resource
    from reproman.resources.session import Session

lgr = logging.getLogger(__name__)

#: Where jobs that hold a dataset's work tree leave a marker (inside ``.git``, never committed).
ACTIVE_DIR = ".git/reproman/active"
#: Makes job records plain git files (small, readable without ``datalad get``).
GITATTRIBUTES = "* annex.largefiles=nothing\n"
#: Names for the resource's view of the submitting dataset's branches.
ORIGIN = "reproman-origin"


def q(text: str) -> str:
    return shlex.quote(text)


def datalad_executable() -> str:
    """The ``datalad`` command next to this Python if there is one (a venv without PATH set up)."""
    beside = os.path.join(os.path.dirname(sys.executable), "datalad")
    if os.path.exists(beside):
        return beside
    return shutil.which("datalad") or "datalad"


class DataladOrchestrator(Orchestrator):
    """Base of the DataLad orchestrators; subclasses say how the dataset reaches the resource."""

    #: Commit the job as a ``datalad run`` record (``datalad rerun`` can redo it).
    run_record: ClassVar[bool] = False

    #: The job record is committed with the results, so core must not rewrite it after fetch.
    records_job = True

    def __init__(self, resource: Resource, session: Session, job: Any) -> None:
        super().__init__(resource, session, job)
        self.local = LocalDataset(job.local_directory)

    # -- names -------------------------------------------------------------------
    @property
    def record_dir(self) -> str:
        """The job record inside the dataset (same as core's local log directory)."""
        return f".reproman/jobs/{self.job.resource_name}/{self.job.jobid}"

    @property
    def ref(self) -> str:
        return f"refs/reproman/{self.job.jobid}"

    @property
    def base(self) -> str:
        """The commit the job started from (recorded by :meth:`start`)."""
        head = self.job.extra.get("head")
        if not head:
            raise OrchestratorError(f"job {self.job.jobid} has no recorded starting commit; was it prepared?")
        return str(head)

    def inputs(self) -> list[str]:
        return [relative_path(p, self.job.local_directory) for p in self.job.inputs]

    def outputs(self) -> list[str]:
        return [relative_path(p, self.job.local_directory) for p in self.job.outputs]

    # -- preparing ---------------------------------------------------------------
    def start(self) -> DatasetState:
        """Check the local dataset and remember where the job starts from in ``job.extra``."""
        state = self.local.state(self.name)
        missing = [p for p in self.inputs() if not os.path.lexists(os.path.join(state.path, p))]
        if missing:
            raise OrchestratorError(
                f"input(s) not in the dataset {state.path}: {', '.join(missing)}",
                hint="Inputs are paths relative to the dataset's top directory.",
            )
        self.job.extra.update(dataset_id=state.dataset_id, branch=state.branch, head=state.head)
        self.env = self.local.identity_env()
        return state

    @property
    def identity(self) -> dict[str, str]:
        env = getattr(self, "env", None)
        if env is None:
            env = self.env = self.local.identity_env()
        return env

    # -- remote commands -----------------------------------------------------------
    def remote(self, script: str, what: str, *, stdin: bytes | None = None, check: bool = True) -> CommandResult:
        """Run shell code on the resource with the submitter's git identity.

        A failure becomes an :class:`OrchestratorError` naming ``what`` was
        being done and the last lines DataLad or git printed.
        """
        result = self.session.execute_command(script, env=self.identity or None, stdin=stdin)
        if check and result.returncode != 0:
            lines = (result.stderr.strip() or result.stdout.strip()).splitlines()[-4:]
            raise OrchestratorError(
                f"{what} failed on resource {self.job.resource_name} (exit {result.returncode})"
                + (": " + " | ".join(lines) if lines else "")
            )
        return result

    @staticmethod
    def unlock_outputs_script(outputs: Sequence[str]) -> str:
        """Shell code unlocking existing annexed outputs so the command can overwrite them.

        ``datalad run`` does the same before it runs a command; locked
        annexed files are read-only symlinks.
        """
        if not outputs:
            return ""
        paths = " ".join(q(p) for p in outputs)
        return (
            f'set --; for p in {paths}; do if [ -e "$p" ] || [ -L "$p" ]; then set -- "$@" "$p"; fi; done; '
            'if [ $# -gt 0 ] && git config --get annex.uuid >/dev/null; then git annex unlock -- "$@" >/dev/null; fi'
        )

    def record_script(self, message: str, save: bool = True) -> str:
        """Shell code run in the dataset on the resource: copy the job record in, save, set the ref.

        The final ``spec.yaml`` comes on standard input. ``completed`` is
        marked first so the record says the job is over whatever the submitter.
        """
        job = self.job
        rec = self.record_dir
        lines = [
            f"jobdir={q(job.job_dir)}; rec={q(rec)}",
            ': > "$jobdir/completed" 2>/dev/null || true',
            'mkdir -p "$rec"',
            'for f in "$jobdir"/*; do case "$f" in *.tmp) ;; *) if [ -f "$f" ]; then cp "$f" "$rec/"; fi ;; esac; done',
            'cat > "$rec/spec.yaml"',
            f"[ -e .reproman/jobs/.gitattributes ] || printf %s {q(GITATTRIBUTES)} > .reproman/jobs/.gitattributes",
        ]
        if save:
            lines += [
                f"datalad save -m {q(message)} >/dev/null",
                f"git update-ref {q(self.ref)} HEAD",
                f"rm -f {ACTIVE_DIR}/{q(job.jobid)}",
            ]
        return "\n".join(lines) + "\n"

    # -- finishing ------------------------------------------------------------------
    def final_status(self) -> JobStatus:
        """Each subjob's final state from its status file (one remote read).

        Core only fetches finished jobs, so a subjob without a final status
        line (killed, lost) counts as failed, as core counts it.
        """
        files = read_files(self.session, [self.job])[self.job.jobid]
        status = interpret(self.job, files)
        subjobs = tuple(
            s if s.state.finished else SubjobStatus(index=s.index, state=State.FAILED, detail="no final status")
            for s in status.subjobs
        )
        return JobStatus(jobid=status.jobid, subjobs=subjobs, missing=status.missing)

    @staticmethod
    def exit_code(status: JobStatus) -> int:
        """The first failed subjob's exit code (1 when it has none), 0 when all succeeded."""
        for s in status.failed:
            return s.exit_code if s.exit_code not in (None, 0) else 1
        return 0

    def abandon(self) -> None:
        """Free the dataset for other jobs when this one will never be fetched."""
        workdir = self.job.working_directory
        if workdir:
            marker = f"{workdir.rstrip('/')}/{ACTIVE_DIR}/{self.job.jobid}"
            self.session.execute_command(["rm", "-f", marker])

    def final_spec(self, status: JobStatus) -> str:
        """The job record as core writes it after a fetch, so the committed copy stays clean.

        Core's ``fetch_job`` rewrites ``spec.yaml`` in the local log
        directory after :meth:`fetch` returns, with ``status: fetched`` and
        ``extra.result``; writing exactly that text into the commit keeps the
        dataset clean afterwards. (Should the two ever differ, the local
        checks tolerate a modified record spec, see ``LocalDataset.dirty_paths``.)
        """
        self.job.status = "fetched"
        self.job.extra["result"] = status.summary()
        try:
            from reproman.jobs.registry import dump_record
        except ImportError:  # an older core wrote YAML with a header
            from reproman.yamlio import dump

            return dump(self.job.to_dict(), header=f"ReproMan job {self.job.jobid}")
        return dump_record(self.job)

    def merge_results(self, state_branch: str) -> bool:
        """Bring ``refs/reproman/<jobid>`` into the branch the job started from.

        Fast-forward when nothing happened locally meanwhile, a merge commit
        otherwise. When that is impossible (another branch checked out, a
        conflict) the results stay on the ref and the user is told how to
        merge them; the job record directory is then excluded locally so that
        the spec core writes there does not block later runs or the merge.
        """
        local = self.local
        branch = local.current_branch()
        reason = ""
        if branch != state_branch:
            reason = f"branch {state_branch!r} is not checked out (HEAD is {branch or 'detached'})"
        else:
            if local.rev("HEAD") == self.base:
                proc = local.git("merge", "--ff-only", "-q", self.ref, check=False)
            else:
                proc = local.git(
                    "merge", "--no-edit", "-q", "-m", f"[ReproMan] merge results of job {self.job.jobid}",
                    self.ref, check=False,
                )
            if proc.returncode == 0:
                return True
            local.git("merge", "--abort", check=False)
            said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            reason = said[-1] if said else "merge failed"
        local.exclude(f"/{self.record_dir}/")
        lgr.warning(
            "job %s: results are on %s but were not merged (%s); merge them with 'git merge %s'",
            self.job.jobid, self.ref, reason, self.ref,
        )
        return False

    def already_merged(self) -> bool:
        """Fetched before and merged: fetching again must not record the job twice."""
        if not self.local.rev(self.ref):
            return False
        return self.local.git("merge-base", "--is-ancestor", self.ref, "HEAD", check=False).returncode == 0

    def local_results(self) -> list[str]:
        """Local paths the job wrote: outputs that exist and the record directory."""
        root = self.job.local_directory
        paths = [os.path.join(root, *self.record_dir.split("/"))]
        paths += [os.path.join(root, o) for o in self.outputs() if os.path.lexists(os.path.join(root, o))]
        return paths

    def staging_dir(self) -> str:
        """A per-job scratch directory on the resource, outside the dataset."""
        return posixpath.join(self.job.root_directory, ".reproman", "datalad-staging", self.job.jobid)
