"""What every DataLad orchestrator shares: the local checks, the job record, remote helpers.

Every DataLad orchestrator ends a job the same way: the job directory's
files (spec, runscript, submission script, per-subjob status/stdout/stderr)
are copied into the dataset at ``.reproman/jobs/<resource>/<jobid>/`` and
committed together with the command's changes, and ``refs/reproman/<jobid>``
names that commit. The record is stored in git, not the annex (a
``.reproman/jobs/.gitattributes`` says so), so it is readable without
``datalad get`` and lands in the work tree with a merge.

Subdatasets are part of the dataset a job sees: those holding an input or
an output are installed here before anything else (``datalad get -n``, as
``datalad run`` does), results inside them are saved recursively, and the
top commit records their new state, so a job is one commit in the top
dataset (plus one in each subdataset it changed) and ``datalad status`` is
clean afterwards.

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
from typing import TYPE_CHECKING, ClassVar

from reproman.plugins import (
    CommandResult,
    JobStatus,
    Orchestrator,
    OrchestratorError,
    State,
    SubjobStatus,
    dump_record,
    relative_path,
    status_from_files,
)
from reproman_orchestrators_datalad import requirements
from reproman_orchestrators_datalad.changes import changes
from reproman_orchestrators_datalad.hierarchy import TOP, Hierarchy, Node, join
from reproman_orchestrators_datalad.local_dataset import DatasetState, LocalDataset
from reproman_orchestrators_datalad.merging import HierarchyMerge

if TYPE_CHECKING:
    from reproman.plugins import JobSpec, Resource, Session

lgr = logging.getLogger("reproman.orchestrators_datalad")

#: Where jobs that hold a dataset's work tree leave a marker (inside ``.git``, never committed).
ACTIVE_DIR = ".git/reproman/active"
#: Makes job records plain git files (small, readable without ``datalad get``).
GITATTRIBUTES = "* annex.largefiles=nothing\n"
#: Names for the resource's view of the submitting dataset's history.
ORIGIN = "reproman-origin"
#: Installing subdatasets may reveal deeper ones; a hierarchy deeper than this is an error.
_MAX_NESTING = 32


def q(text: str) -> str:
    return shlex.quote(text)


def not_utf8(text: str) -> bool:
    """Was ``text`` decoded from bytes that are not valid UTF-8 (surrogate escapes, as core decodes)?"""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


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
    #: What must be installed on the resource, checked before anything is staged.
    tools: ClassVar[tuple[requirements.Tool, ...]] = requirements.DATALAD_TOOLS

    #: The job record is committed with the results, so core must not rewrite it after fetch.
    records_job = True

    def __init__(self, resource: Resource, session: Session, job: JobSpec) -> None:
        super().__init__(resource, session, job)
        self.local = LocalDataset(job.local_directory)
        self._tree: Hierarchy | None = None

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

    @property
    def tree(self) -> Hierarchy:
        """The local dataset hierarchy (read once per orchestrator; :meth:`start` refreshes it)."""
        if self._tree is None:
            self._tree = Hierarchy.scan(self.local.path)
        return self._tree

    def started_datasets(self) -> list[Node]:
        """The installed datasets and their commits when the job started (from ``job.extra``)."""
        recorded = self.job.extra.get("datasets")
        if not recorded:
            return [Node(path=TOP, commit=self.base, installed=True)]
        return [Node(path=str(d["path"]), commit=str(d["commit"]), installed=True, parent=str(d.get("parent", "")))
                for d in recorded]

    # -- preparing ---------------------------------------------------------------
    def start(self) -> DatasetState:
        """Check the local dataset, install the subdatasets the job needs, remember where it starts.

        Everything here is local and happens before anything is sent, so a
        job that cannot work is refused with nothing staged.
        """
        state = self.local.state(self.name)
        self.require_tools()
        tree = self._install_needed(self.inputs() + self.outputs())
        missing = [p for p in self.inputs() if not os.path.lexists(os.path.join(state.path, p))]
        if missing:
            raise OrchestratorError(
                f"input(s) not in the dataset {state.path}: {', '.join(missing)}",
                hint="Inputs are paths relative to the dataset's top directory.",
            )
        self.job.extra.update(
            dataset_id=state.dataset_id, branch=state.branch, head=state.head,
            datasets=[{"path": n.path, "commit": n.commit, "parent": n.parent} for n in tree.installed],
        )
        self.env = self.local.identity_env()
        return state

    def _install_needed(self, paths: Sequence[str]) -> Hierarchy:
        """Install (without content) every subdataset holding one of ``paths``, as ``datalad run`` would.

        An output must land in an installed subdataset to be recorded, and
        an input's subdataset must be there to be sent or read.
        """
        tree = self._tree = Hierarchy.scan(self.local.path)
        for _ in range(_MAX_NESTING):
            needed = tree.uninstalled_owners(paths)
            if not needed:
                return tree
            lgr.info("installing subdataset(s) %s", ", ".join(n.path for n in needed))
            failure = ""
            try:
                self.local.run([datalad_executable(), "get", "-n", "-d", ".", "--", *[n.path for n in needed]])
            except OrchestratorError as exc:
                failure = str(exc)
            tree = self._tree = Hierarchy.scan(self.local.path)
            still = {n.path for n in tree.uninstalled_owners(paths)} & {n.path for n in needed}
            if still:
                sub = sorted(still)[0]
                path = next(p for p in paths if tree.owner(p).path == sub)
                raise OrchestratorError(
                    f"{path} is in subdataset {sub}, which is not installed and could not be installed"
                    + (f" ({failure})" if failure else ""),
                    hint=f"Install it with 'datalad get -n {sub}' (its source must be reachable), then run again.",
                )
        raise OrchestratorError(f"subdatasets of {self.local.path} are nested more than {_MAX_NESTING} deep")

    @property
    def identity(self) -> dict[str, str]:
        env = getattr(self, "env", None)
        if env is None:
            env = self.env = self.local.identity_env()
        return env

    # -- the resource's tools --------------------------------------------------------
    def require_tools(self) -> None:
        """One remote command: refuse the job if a tool it needs there is missing or too old."""
        result = self.session.execute_command(requirements.probe_script(self.tools))
        requirements.check(self.tools, requirements.parse(result.stdout), orchestrator=self.name,
                           resource=self.job.resource_name)

    # -- remote commands -----------------------------------------------------------
    def remote(self, script: str, what: str, *, stdin: bytes | None = None, check: bool = True) -> CommandResult:
        """Run shell code on the resource with the submitter's git identity.

        A failure becomes an :class:`OrchestratorError` naming ``what`` was
        being done and the last lines DataLad or git printed.
        """
        result = self.session.execute_command(script, env=self.identity or None, stdin=stdin)
        if check and result.returncode != 0:
            raise self.failure(result, what)
        return result

    def failure(self, result: CommandResult, what: str) -> OrchestratorError:
        """``what`` failed there: the error, with the last lines DataLad or git printed."""
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines()[-4:]
        return OrchestratorError(
            f"{what} failed on resource {self.job.resource_name} (exit {result.returncode})"
            + (": " + " | ".join(lines) if lines else "")
        )

    def save_on_resource(self, script: str, stdin: bytes) -> CommandResult:
        """Run the script that saves the job's results there; explain the failures DataLad words badly.

        DataLad cannot save a file whose name is not valid UTF-8 (it fails
        with "unprocessed data in AssemblingDecoderMixIn"); such names are
        found with git and named, and the results stay where they are.
        """
        result = self.remote(script, "recording the job's results", stdin=stdin, check=False)
        if result.returncode == 0:
            return result
        names = self.unsavable_names()
        if names:
            raise OrchestratorError(
                f"job {self.job.jobid} wrote file names that are not valid UTF-8, which DataLad cannot save: "
                f"{', '.join(repr(n) for n in names[:5])}; the results stay in {self.job.working_directory} "
                f"on resource {self.job.resource_name}",
                hint=f"Rename those files there (or have the command write UTF-8 names), then fetch again "
                f"with 'reproman jobs {self.job.jobid}'.",
            )
        raise self.failure(result, "recording the job's results")

    def unsavable_names(self) -> list[str]:
        """Paths in the datasets on the resource whose names are not valid UTF-8 (one command)."""
        lines = [f"cd {q(self.job.working_directory)} || exit 0"]
        for node in self.started_datasets():
            lines.append(f"printf 'DS %s\\n' {q(node.path)}; git -C {q(node.path)} status --porcelain -z "
                         "--untracked-files=all --ignore-submodules=all 2>/dev/null | tr '\\000' '\\n'")
        dataset = TOP
        names = []
        for line in self.session.execute_command("\n".join(lines)).stdout.splitlines():
            if line.startswith("DS "):
                dataset = line[3:]
            elif len(line) > 3 and not_utf8(line):
                names.append(join(dataset, line[3:]))
        return names

    def unlock_outputs_script(self) -> str:
        """Shell code unlocking existing annexed outputs so the command can overwrite them.

        ``datalad run`` does the same before it runs a command; locked
        annexed files are read-only symlinks. Each dataset unlocks its own
        files (git-annex answers for one repository only).
        """
        lines = []
        for dataset, rels in self.tree.split(self.outputs()).items():
            paths = " ".join(q(p) for p in rels)
            lines.append(
                f"(cd {q(dataset)} && set -- && for p in {paths}; do "
                'if [ -e "$p" ] || [ -L "$p" ]; then set -- "$@" "$p"; fi; done; '
                'if [ $# -gt 0 ] && git config --get annex.uuid >/dev/null; then '
                'git annex unlock -- "$@" >/dev/null; fi)'
            )
        return "\n".join(lines)

    def record_script(self, message: str, save: bool = True) -> str:
        """Shell code run in the dataset on the resource: copy the job record in, save, set the ref.

        The final ``spec.yaml`` comes on standard input. ``completed`` is
        marked first so the record says the job is over whatever the
        submitter. The save is recursive: results inside subdatasets are
        committed there and the new subdataset state in the top dataset.
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
                f"datalad save -r -m {q(message)} >/dev/null",
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
        status = status_from_files(self.session, self.job)
        subjobs = tuple(
            s if s.state.finished else SubjobStatus(index=s.index, state=State.FAILED, detail="no final status")
            for s in status.subjobs
        )
        return JobStatus(jobid=status.jobid, subjobs=subjobs, missing=status.missing)

    @staticmethod
    def exit_code(status: JobStatus) -> int:
        """The first failed subjob's exit code (1 when it has none), 0 when all succeeded.

        The batch command of a run record exits with exactly this (see
        :func:`reproman_orchestrators_datalad.messages.rerun_command`), so
        ``datalad rerun`` accepts a rerun that fails the same way.
        """
        for s in status.failed:
            return s.exit_code if s.exit_code not in (None, 0) else 1
        return 0

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
        return dump_record(self.job)

    def merge_results(self) -> None:
        """Bring ``refs/reproman/<jobid>`` (and the subdataset commits it records) into the job's branch.

        Fast-forward where nothing happened locally meanwhile, a merge
        commit otherwise; when that is impossible nothing is merged, the
        commits stay on the job's ref in each dataset, and the error says so.
        """
        plan = changes(self.local.path, self.base, self.local.rev(self.ref))
        HierarchyMerge(self.local.path, self.job.jobid, self.ref, str(self.job.extra.get("branch", ""))).run(plan)

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

    # -- releasing the resource ---------------------------------------------------------
    def active_marker(self) -> str | None:
        """The marker by which this job holds the dataset on the resource (None without one)."""
        workdir = self.job.working_directory
        return f"{workdir.rstrip('/')}/{ACTIVE_DIR}/{self.job.jobid}" if workdir else None

    def staged_paths(self) -> list[str]:
        """What :meth:`cleanup` removes on the resource besides the marker (core removes the job directory)."""
        return [self.staging_dir()]

    def abandon(self) -> None:
        """Free the dataset for other jobs when this one will never be fetched."""
        self._remove([self.staging_dir()], "release")

    def cleanup(self) -> None:
        """Remove what this job staged on the resource; never the dataset (or clone) later jobs use."""
        self._remove(self.staged_paths(), "clean up")

    def _remove(self, paths: Sequence[str], verb: str) -> None:
        """One best-effort remote command removing ``paths`` and the active marker; logs, never raises."""
        targets = [p for p in paths if p and posixpath.isabs(p) and p.rstrip("/") not in ("", "/")]
        marker = self.active_marker()
        script = []
        if targets:
            script.append("rm -rf -- " + " ".join(q(p) for p in targets))
        if marker:
            script.append(f"rm -f -- {q(marker)}")
        if not script:
            return
        try:
            result = self.session.execute_command("; ".join(script))
        except Exception as exc:  # the resource may be gone; this is best effort by contract
            lgr.warning("could not %s job %s on resource %s: %s", verb, self.job.jobid, self.job.resource_name, exc)
            return
        if result.returncode != 0:
            lgr.warning("could not %s job %s on resource %s: %s", verb, self.job.jobid, self.job.resource_name,
                        result.stderr.strip() or f"exit {result.returncode}")
