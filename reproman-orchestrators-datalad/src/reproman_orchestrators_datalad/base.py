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
the outputs of subjobs that succeeded are kept, and the next job can start;
the dataset's files that subjobs which did not succeed changed are kept as
they were (see :mod:`reproman_orchestrators_datalad.guarding`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import shlex
import shutil
import sys
from collections.abc import Iterator, Sequence
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
from reproman_orchestrators_datalad import guarding, requirements
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
#: Exit statuses of :meth:`DataladOrchestrator.record_script`: another fetch still records the job there,
#: a subdataset the job started with is gone, ``datalad save`` failed (and was undone).
RECORD_BUSY = 75
SUBDATASET_GONE = 76
SAVE_FAILED = 77
#: ... and the job's ref there names a commit that is not the job's (left by an older ReproMan).
NOT_THE_JOBS = 78
#: The clone's hold: one file naming the job, created exclusively (``ln``), so two submissions racing
#: for the clone cannot both take it (trial R, 2). Beside it, ``ACTIVE_DIR/<jobid>`` says which job holds it.
HELD_BY = ".git/reproman/held-by"
#: Seconds the record script waits for an interrupted fetch still running on the resource.
_LOCK_WAIT = 600


def q(text: str) -> str:
    return shlex.quote(text)


def not_utf8(text: str) -> bool:
    """Was ``text`` decoded from bytes that are not valid UTF-8 (surrogate escapes, as core decodes)?"""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def shown_name(text: str) -> str:
    """A path as the user can read it: undecodable bytes as ``\\xNN`` (not Python's surrogates), quoted."""
    return "'" + os.fsencode(text).decode("utf-8", "backslashreplace") + "'"


def datalad_executable() -> str:
    """The ``datalad`` command next to this Python if there is one (a venv without PATH set up)."""
    beside = os.path.join(os.path.dirname(sys.executable), "datalad")
    if os.path.exists(beside):
        return beside
    return shutil.which("datalad") or "datalad"



#: A name asked about inside each output: git ignores an output *directory* by a pattern such as
#: ``build/`` only once it knows the path is a directory, which a path that is not there yet is not.
PROBE = ".reproman-probe"


def with_probes(paths: Sequence[str]) -> list[str]:
    """Each path and a name inside it, for ``git check-ignore`` (see :data:`PROBE`)."""
    return [p for path in paths for p in (path, f"{path}/{PROBE}")]


def without_probes(lines: Sequence[str]) -> list[str]:
    """``git check-ignore``'s answer for :func:`with_probes` paths, as the outputs named, each once."""
    suffix = "/" + PROBE
    return list(dict.fromkeys(line[: -len(suffix)] if line.endswith(suffix) else line for line in lines if line))


def pointer_files(said: str) -> set[str]:
    """The paths :meth:`DataladOrchestrator.pointer_files_script` found absent and unchanged (normalised)."""
    absent, changed = set(), set()
    for line in said.split("\n"):
        kind, _, path = line.partition(" ")
        if kind == "ABSENT" and path:
            absent.add(posixpath.normpath(path))
        elif kind == "CHANGED" and path:
            changed.add(posixpath.normpath(path))
    return absent - changed


class DataladOrchestrator(Orchestrator):
    """Base of the DataLad orchestrators; subclasses say how the dataset reaches the resource."""

    #: Commit the job as a ``datalad run`` record (``datalad rerun`` can redo it).
    run_record: ClassVar[bool] = False
    #: What must be installed on the resource, checked before anything is staged.
    tools: ClassVar[tuple[requirements.Tool, ...]] = requirements.DATALAD_TOOLS

    #: The job record is committed with the results, so core must not rewrite it after fetch.
    records_job = True
    unlocks_annexed_outputs = True

    def __init__(self, resource: Resource, session: Session, job: JobSpec) -> None:
        super().__init__(resource, session, job)
        self.local = LocalDataset(job.local_directory)
        self._tree: Hierarchy | None = None
        #: Untouched pointer files under the outputs on the resource (see :meth:`pointer_files_script`).
        self.pointer_files: set[str] = set()

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
        self.refuse_undecodable_text()
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

    def refuse_undecodable_text(self) -> None:
        """Refuse a command or message with bytes that are not UTF-8: DataLad's records could not keep them.

        The command and message go into the commit message (as JSON for a
        ``datalad run`` record), which DataLad writes and reads as UTF-8:
        such a byte would be replaced or mis-decoded there, and ``datalad
        rerun`` would run a different command. The shell's ``printf '\\NNN'``
        writes the same bytes from an ASCII command, which records faithfully.
        """
        texts = [("--message", self.job.message or ""), ("command", self.job.command)]
        texts += [("command", s.command) for s in self.job.subjobs]
        for what, text in texts:
            at = next((i for i, ch in enumerate(text) if not_utf8(ch)), None)
            if at is not None:
                byte = ord(text[at]) - 0xDC00
                raise OrchestratorError(
                    f"the {what} holds bytes that are not valid UTF-8 (0x{byte:02x} at character {at + 1}: "
                    f"{shown_name(' '.join(text[max(0, at - 20):at + 20].split()))}); orchestrator {self.name} records it in a "
                    "commit message, which DataLad keeps as UTF-8 text and could not hold it unaltered; "
                    "nothing was submitted",
                    hint="Give the message as UTF-8 text." if what == "--message" else
                    "Write such bytes with the shell's printf (e.g. \"$(printf '\\377')\") so the "
                    "command is UTF-8 text, or use the plain orchestrator.",
                )

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
            + (": " + " | ".join(lines) if lines else ", with no message"),
            hint=f"Look at the dataset {self.job.working_directory} there ('datalad status'), fix what it "
            "shows, then try again.",
        )

    def save_on_resource(self, script: str, stdin: bytes) -> CommandResult:
        """Run the script that saves the job's results there, once nothing DataLad mishandles is in the way.

        DataLad cannot save a file whose name is not valid UTF-8, and
        failing on one, ``datalad save -r`` records every subdataset as
        deleted and removes it from disk (DataLad 1.7): such names are
        looked for first (one command) and the job is refused before
        anything is copied or saved. The script itself refuses to save when
        a subdataset the job started with is gone, and undoes the commits
        of a save that failed half-way (see :meth:`record_script`).
        """
        self.refuse_unsavable()
        result = self.remote(script, "recording the job's results", stdin=stdin, check=False)
        if result.returncode == 0:
            return result
        said = result.stdout.splitlines()
        if result.returncode == RECORD_BUSY:
            raise OrchestratorError(
                f"another fetch of job {self.job.jobid} is still recording its results on resource "
                f"{self.job.resource_name} (it was interrupted here but kept running there)",
                hint=f"Wait for it to finish, then fetch again with 'reproman jobs {self.job.jobid}'.",
            )
        if result.returncode == NOT_THE_JOBS:
            raise OrchestratorError(
                f"{self.ref} in {self.job.working_directory} on resource {self.job.resource_name} names a commit "
                f"that is not job {self.job.jobid}'s; nothing was fetched",
                hint=f"Look there with 'git log {self.ref}'; if the job's commit is gone, forget the job with "
                f"'reproman jobs --delete {self.job.jobid}'.",
            )
        if result.returncode == SUBDATASET_GONE:
            gone = [line[5:] for line in said if line.startswith("GONE ")]
            raise OrchestratorError(
                f"subdataset {', '.join(gone[:5]) or '?'} of {self.job.working_directory} on resource "
                f"{self.job.resource_name} was installed when job {self.job.jobid} started and is gone now; "
                "saving would record its removal, so nothing was saved",
                hint=f"Install it there again ('datalad get -n PATH'), then fetch again with "
                f"'reproman jobs {self.job.jobid}'.",
            )
        self.refuse_unsavable()
        error = self.failure(result, "recording the job's results")
        if result.returncode == SAVE_FAILED:
            raise OrchestratorError(
                f"{error}; the datasets there were put back to their state before the save",
                hint=f"Fix what DataLad reported there, then fetch again with 'reproman jobs {self.job.jobid}'.",
            )
        raise error

    def refuse_unsavable(self) -> None:
        """Refuse the job, with nothing touched, if it wrote names DataLad cannot save."""
        names = self.unsavable_names()
        if names:
            raise OrchestratorError(
                "the job wrote file names that are not valid UTF-8, which DataLad cannot save: "
                f"{', '.join(shown_name(n) for n in names[:5])}; nothing was saved and the results stay in "
                f"{self.job.working_directory} on resource {self.job.resource_name}",
                hint=f"Rename those files there (or have the command write UTF-8 names), then fetch again "
                f"with 'reproman jobs {self.job.jobid}'.",
            )

    def unsavable_names(self) -> list[str]:
        """Paths in the datasets on the resource whose names are not valid UTF-8 (one command)."""
        lines = [f"cd {q(self.job.working_directory)} || exit 0"]
        for node in self.started_datasets():
            lines.append(f"printf 'DS %s\\n' {q(node.path)}; git -C {q(node.path)} status --porcelain -z "
                         "--untracked-files=all --ignore-submodules=all 2>/dev/null | tr '\\000' '\\n'")
        dataset = TOP
        names = []
        for line in self.session.execute_command("\n".join(lines)).stdout.split("\n"):
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

    def settle_outputs(self) -> None:
        """Lock again what the job unlocked and left untouched (:meth:`relock_untouched_script`); best effort.

        The same command lists the untouched pointer files under the outputs
        (:meth:`pointer_files_script`), whose checksums :meth:`fetch` drops.
        """
        if not self.unlocks_annexed_outputs or not self.job.working_directory:
            return
        script = self.relock_untouched_script()
        if not script:
            return
        listing = self.pointer_files_script()
        result = self.session.execute_command(
            f"cd {q(self.job.working_directory)} 2>/dev/null || exit 0\n{script}\n{listing}")
        if result.returncode != 0:
            lgr.debug("job %s: relocking untouched outputs: %s", self.job.jobid, result.stderr.strip())
        self.pointer_files = pointer_files(result.stdout)

    def pointer_files_script(self) -> str:
        """Shell code naming the annexed files under the outputs whose content is absent and that the job left alone.

        Such a file is a pointer file where the job ran (an unlocked file
        in ``HEAD`` whose content a clone on the resource never got): the
        command did not produce it, and core's checksum of it is of the
        pointer text, which the user's copy (with its content) would fail
        as a transfer mismatch. Prints ``ABSENT path`` for each file git-annex
        lacks the content of and ``CHANGED path`` for each file that differs
        from the index (a pointer file the command overwrote is its output).
        """
        lines = []
        for dataset, rels in self.tree.split(self.outputs()).items():
            paths = " ".join(q(p) for p in rels)
            prefix = "" if dataset == TOP else dataset + "/"
            for special in ("\\", "|", "&"):
                prefix = prefix.replace(special, "\\" + special)
            lines.append(
                f"(cd {q(dataset)} && git config --get annex.uuid >/dev/null && "
                f"{{ git annex find --not --in=here --print0 -- {paths} 2>/dev/null | tr '\\000' '\\n' "
                f"| sed {q('s|^|ABSENT ' + prefix + '|')}; "
                f"git diff --name-only -z -- {paths} 2>/dev/null | tr '\\000' '\\n' "
                f"| sed {q('s|^|CHANGED ' + prefix + '|')}; }}) || true"
            )
        return "\n".join(lines)

    def forget_pointer_checksums(self) -> None:
        """Drop the checksums of the pointer files :meth:`settle_outputs` found: the job did not produce them.

        A file under ``-o DIR`` that is unlocked in ``HEAD`` and whose
        content the clone lacks was hashed as its pointer text there, while
        the fetched dataset holds the content: kept, the checksum reads as a
        transfer mismatch (and the job's files stay on the resource). Files
        locked in ``HEAD`` are symbolic links there and get no checksum
        either, so the untouched files of an output directory are treated
        alike.
        """
        pointers = self.pointer_files
        if not pointers or not self.job.checksums:
            return
        kept = {rel: sums for rel, sums in self.job.checksums.items() if posixpath.normpath(rel) not in pointers}
        if len(kept) != len(self.job.checksums):
            lgr.debug("job %s: no checksums for %d untouched pointer file(s)", self.job.jobid,
                      len(self.job.checksums) - len(kept))
            self.job.checksums = kept

    def relock_untouched_script(self) -> str:
        """Shell code locking again the annexed outputs the job unlocked but did not change.

        :meth:`unlock_outputs_script` unlocks every annexed file under an
        output directory (``-o DIR``, ``-o .``), most of which the command
        may never touch. ``datalad save`` locks an unchanged file again only
        when its content is here: in a clone on the resource, which lacks
        the content of everything that was not an input, the untouched files
        would be committed as unlocked pointer files, a change of every one
        of them in the user's history, and their checksums (of the pointer
        text) would read as transfer mismatches locally. ``git annex lock``
        locks an unchanged file and refuses a changed one (it never discards
        a change without ``--force``); it is given only the files that are
        locked in ``HEAD`` and unlocked now, so a file the user keeps
        unlocked stays so.
        """
        lines = []
        for dataset, rels in self.tree.split(self.outputs()).items():
            paths = " ".join(q(p) for p in rels)
            lines.append(
                f"(cd {q(dataset)} && git config --get annex.uuid >/dev/null && "
                f'relock=$(mktemp) && {{ git diff --cached -z --name-only --diff-filter=T HEAD -- {paths} > "$relock"; '
                'if [ -s "$relock" ]; then xargs -0 git annex lock -- < "$relock"; fi; '
                'rm -f "$relock"; }) >/dev/null 2>&1 || true'
            )
        return "\n".join(lines)

    def ignored_outputs_script(self, code: int) -> str:
        """Shell code run in the dataset on the resource: exit ``code`` naming outputs git ignores there.

        ``datalad save`` leaves ignored files out, so such an output would
        never be recorded nor come back (and ``git annex unlock`` of an
        existing one fails with git's raw pathspec error). Asked where the
        save happens, before the job holds the dataset; tracked files are
        never reported (git only ignores untracked ones).
        """
        checks = []
        for dataset, rels in self.tree.split(self.outputs()).items():
            named = [r for r in rels if r != TOP]
            if not named:
                continue
            prefix = "" if dataset == TOP else dataset + "/"
            for special in ("\\", "|", "&"):
                prefix = prefix.replace(special, "\\" + special)
            probed = " ".join(q(r) for r in with_probes(named))
            checks.append(f"(cd {q(dataset)} && git check-ignore -- {probed} 2>/dev/null "
                          f"| sed {q('s|/' + PROBE.replace('.', '[.]') + '$||; s|^|IGNORED ' + prefix + '|')} "
                          "| sort -u)")
        if not checks:
            return ""
        return (f"ign=$( {'; '.join(checks)}; true)\n"
                f'if [ -n "$ign" ]; then printf \'%s\\n\' "$ign"; exit {code}; fi')

    def ignored_outputs_error(self, stdout: str, where: str) -> OrchestratorError:
        """The refusal for the outputs :meth:`ignored_outputs_script` named."""
        return self.ignored_paths_error([line[8:] for line in stdout.splitlines() if line.startswith("IGNORED ")],
                                        where)

    @staticmethod
    def ignored_paths_error(paths: Sequence[str], where: str) -> OrchestratorError:
        """Outputs git ignores where the results are saved: they would never be recorded."""
        return OrchestratorError(
            f"output(s) {', '.join(paths[:5])} are ignored by git in {where}; DataLad does not save ignored "
            "files, so the job's results there would never be recorded or come back; nothing was submitted",
            hint="Remove the pattern from .gitignore (and save), or write the outputs to paths git does not ignore.",
        )

    def record_script(self, message: str, *, release: bool = True) -> str:
        """Shell code run in the dataset on the resource: copy the job record in, save, set the ref.

        The final ``spec.yaml`` comes on standard input. ``completed`` is
        marked first so the record says the job is over whatever the
        submitter. The save is recursive: results inside subdatasets are
        committed there and the new subdataset state in the top dataset.

        Fetching again never records the job twice: a fetch interrupted here
        may have left its shell running on the resource, so the script
        waits for a running one (a lock directory holding its process id),
        and a commit already made for this job (the ref, or ``HEAD``'s
        message naming the job) is taken as the record. A save that failed
        half-way is undone in every dataset (``git reset``, the work tree
        kept), so the next fetch saves everything again, and a subdataset
        the job started with that is gone is refused, never saved as removed.

        A ref naming a commit whose message does not name the job is
        refused (:data:`NOT_THE_JOBS`): fetching it would take another job's
        results as this one's (trial R, 1). ``release``: drop the job's hold
        on the dataset once saved (``datalad-pair`` keeps it until the
        results are merged here).
        """
        job = self.job
        rec = self.record_dir
        nodes = self.started_datasets()
        subs = " ".join(q(n.path) for n in nodes if n.path != TOP)
        marker = f"ReproMan job: {job.jobid}"
        lines = [
            f"jobdir={q(job.job_dir)}; rec={q(rec)}; msg={q(message)}; kept=; KEPT_DIR={q(guarding.KEPT_DIR)}",
            ': > "$jobdir/completed" 2>/dev/null || true',
            f"lock={q(ACTIVE_DIR.rsplit('/', 1)[0] + '/fetching-' + job.jobid)}; waited=0",
            'mkdir -p "${lock%/*}"',
            'while ! mkdir "$lock" 2>/dev/null; do',
            '  pid=$(cat "$lock/pid" 2>/dev/null || true)',
            '  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then rm -rf "$lock"; continue; fi',
            '  if [ -z "$pid" ] && [ "$waited" -ge 4 ]; then rm -rf "$lock"; continue; fi',
            f'  waited=$((waited + 1)); [ "$waited" -lt {_LOCK_WAIT} ] || exit {RECORD_BUSY}; sleep 1',
            "done",
            'echo $$ > "$lock/pid"',
            """trap 'rm -rf "$lock"' EXIT""",
            f"if git rev-parse -q --verify {q(self.ref)} >/dev/null || "
            f"git log -1 --format=%B HEAD | grep -qxF {q(marker)}; then",
            "  echo RECORDED",
            f"  if git rev-parse -q --verify {q(self.ref)} >/dev/null && "
            f"! git log -1 --format=%B {q(self.ref)} | grep -qxF {q(marker)}; then exit {NOT_THE_JOBS}; fi",
            f"  git rev-parse -q --verify {q(self.ref)} >/dev/null || git update-ref {q(self.ref)} HEAD",
            "else",
            *([f'  for p in {subs}; do [ -e "$p/.git" ] || echo "GONE $p"; done | grep . && exit {SUBDATASET_GONE}']
              if subs else []),
            # The command may have written into ReproMan's records (-o .): earlier jobs' records are put back.
            "  git checkout -q HEAD -- .reproman/jobs 2>/dev/null || true",
            '  mkdir -p "$rec"',
            '  for f in "$jobdir"/*; do case "$f" in *.tmp) ;; *) if [ -f "$f" ]; then cp "$f" "$rec/"; fi ;; esac; done',
            '  cat > "$rec/spec.yaml"',
            f"  [ -e .reproman/jobs/.gitattributes ] || printf %s {q(GITATTRIBUTES)} > .reproman/jobs/.gitattributes",
            *("  " + line for line in self.guard_script()),
        ]
        for i, node in enumerate(nodes):
            lines.append(f"  pre{i}=$(git -C {q(node.path)} rev-parse HEAD)")
        lines.append("  if ! datalad save -r -m \"$msg\" >/dev/null; then")
        for i, node in enumerate(reversed(nodes)):
            index = len(nodes) - 1 - i
            p = q(node.path)
            lines.append(f'    if [ -e {p}/.git ] && [ "$(git -C {p} rev-parse HEAD)" != "$pre{index}" ]; then '
                         f'git -C {p} reset -q "$pre{index}" || true; fi')
        lines += [
            # What a subjob that did not succeed left goes back where it was (see guard_script), never lost.
            '    printf "%s\\n" "$kept" | sed -n \'s/^KEPT //p\' | while IFS= read -r f; do '
            'if [ -e "$rec/$KEPT_DIR/$f" ] || [ -L "$rec/$KEPT_DIR/$f" ]; then mv -f "$rec/$KEPT_DIR/$f" "$f"; fi; done',
            '    git ls-files --error-unmatch -- "$rec" >/dev/null 2>&1 || rm -rf "$rec"',
            f"    exit {SAVE_FAILED}",
            "  fi",
            f"  git update-ref {q(self.ref)} HEAD",
            "fi",
        ]
        if release:
            lines.append(self.release_script())
        return "\n".join(lines) + "\n"

    def guard_script(self) -> list[str]:
        """Shell lines keeping the dataset's files that subjobs which did not succeed changed (:mod:`.guarding`).

        Run in the dataset where the job ran, just before ``datalad save``:
        they set ``$kept`` (``KEPT path`` lines, also printed for
        :meth:`kept_paths`) and add :func:`~.guarding.note` to ``$msg``.
        """
        rels = guarding.guarded(self.guarded_outputs, self.job.local_directory)
        if not rels:
            return []
        tree = Hierarchy(self.job.local_directory, self.started_datasets())
        steps = [guarding.shell("" if dataset == TOP else dataset, paths, '"$rec/$KEPT_DIR"')
                 for dataset, paths in tree.split(rels).items()]
        head = guarding.header(self.record_dir)
        return [
            "kept=$( { " + " && ".join(steps) + "; } ) || exit " + str(SAVE_FAILED),
            'if [ -n "$kept" ]; then',
            '  printf "%s\\n" "$kept"',
            f"  n=$(printf '%s\\n' \"$kept\" | wc -l); shown=$(printf '%s\\n' \"$kept\" | head -n {guarding.NAMED} "
            "| sed 's/^KEPT /  /')",
            f'  msg="$msg"$(printf \'\\n%s\\n%s\' {q(head)} "$shown")',
            f'  if [ "$n" -gt {guarding.NAMED} ]; then msg="$msg"$(printf \'\\n  and %s more\' '
            f'"$((n - {guarding.NAMED}))"); fi',
            '  msg="$msg"$(printf \'\\n_\'); msg=${msg%_}',
            "fi",
        ]

    @staticmethod
    def kept_paths(said: Sequence[str]) -> list[str]:
        """The ``KEPT path`` lines :meth:`guard_script` printed, as paths."""
        return [line[5:] for line in said if line.startswith("KEPT ")]

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

    def fetch(self) -> list[str]:
        """Bring the results in (:meth:`fetch_results`), one fetch per dataset at a time.

        Two fetches into one dataset (the same job fetched twice at once,
        or two jobs) would move the same branch and the same staging files
        under each other: the second waits for the first, then finds the
        job already recorded. Core holds the same lock (:meth:`fetch_lock`)
        from before it computes the outputs' checksums on the resource, so
        the fetch that commits the record has checksums no other fetch of
        the job disturbed. Afterwards the checksums of the committed record
        are the job's: a fetch that was interrupted after the commit was
        made leaves annexed outputs on the resource (symbolic links core
        cannot hash), so only the first fetch computed them.
        """
        with self.fetch_lock():
            self.forget_pointer_checksums()
            paths = self.fetch_results()
        self.adopt_record()
        return paths

    @contextlib.contextmanager
    def fetch_lock(self) -> Iterator[None]:
        """Hold the dataset's fetch lock (re-entrant within this orchestrator; core takes it first).

        The lock is handed down to the ``datalad`` processes a fetch runs
        here, so one orphaned by a killed fetch (still saving) holds it
        until it is done.
        """
        import fcntl

        if self.local.inherited_fds:
            yield
            return
        lock_path = self.fetch_lock_path()
        os.makedirs(os.path.dirname(lock_path), exist_ok=True)
        with open(lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lgr.info("waiting for another fetch into %s to finish", self.local.path)
                fcntl.flock(lock, fcntl.LOCK_EX)
            self.local.inherited_fds = (lock.fileno(),)
            try:
                yield
            finally:
                self.local.inherited_fds = ()

    def fetch_results(self) -> list[str]:
        """Record the job's results and bring them into the local dataset (subclasses)."""
        raise NotImplementedError

    def fetch_lock_path(self) -> str:
        """The lock every fetch into the local dataset holds (inside ``.git``, never committed)."""
        gitdir = self.local.git("rev-parse", "--absolute-git-dir", check=False).stdout.strip()
        return os.path.join(gitdir or os.path.join(self.local.path, ".git"), "reproman", "fetch.lock")

    def adopt_record(self) -> None:
        """Take the output checksums (and environment) from the committed job record when it has them."""
        from reproman.plugins import load_record

        if not self.local.rev(self.ref):
            return
        shown = self.local.git("show", f"{self.ref}:{self.record_dir}/spec.yaml", check=False)
        if shown.returncode != 0:
            return
        try:
            recorded = load_record(shown.stdout, f"{self.ref}:{self.record_dir}/spec.yaml")
        except Exception:  # an unreadable committed record leaves the fresh checksums alone
            return
        if not isinstance(recorded, dict):
            return
        sums = recorded.get("checksums")
        if isinstance(sums, dict) and sums and sums != self.job.checksums:
            lgr.debug("job %s: output checksums taken from the committed record", self.job.jobid)
            self.job.checksums = sums
        environment = recorded.get("environment")
        if isinstance(environment, dict) and environment:
            # Collected by the fetch that recorded the job, not by one racing it on the resource.
            self.job.environment = environment

    def merge_results(self) -> None:
        """Bring ``refs/reproman/<jobid>`` (and the subdataset commits it records) into the job's branch.

        Fast-forward where nothing happened locally meanwhile, a merge
        commit otherwise; when that is impossible nothing is merged, the
        commits stay on the job's ref in each dataset, and the error says so.
        """
        plan = changes(self.local.path, self.base, self.local.rev(self.ref))
        HierarchyMerge(self.local.path, self.job.jobid, self.ref, str(self.job.extra.get("branch", ""))).run(plan)

    def keep_rerun_results(self) -> list[str] | None:
        """A rerun's commits stay on its ref; its changed outputs are copied to ``fetched/`` beside the originals.

        ``None`` when no existing output differs: merge as for any job.

        A rerun may be compared with the job it repeats (``rerun
        --verify``), and the original's outputs must stay what that job
        produced (``reproman export`` checks them): see
        :mod:`reproman_orchestrators_datalad.keeping`.
        """
        from reproman_orchestrators_datalad.keeping import keep_beside

        plan = changes(self.local.path, self.base, self.local.rev(self.ref))
        report = keep_beside(self.local.path, self.record_dir, plan, self.outputs())
        if report is None:
            return None
        self.landing_report = report
        if report.kept:
            lgr.info("job %s is a rerun: its results are kept in %s/fetched and on %s (merge it to take them)",
                     self.job.jobid, self.record_dir, self.ref)
        return [str(k.fetched) for k in report.kept]

    @classmethod
    def forget_local(cls, job: JobSpec) -> list[str]:
        """On ``jobs --delete``: remove the job's ref where merged; keep (and name) one holding unmerged results.

        See :mod:`reproman_orchestrators_datalad.job_refs`.
        """
        from reproman_orchestrators_datalad.job_refs import forget_job_refs

        return forget_job_refs(job.local_directory, job.jobid)

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

    def release_script(self) -> str:
        """Shell text, run in the dataset there, dropping this job's hold: its marker and the hold file if its own."""
        jobid = q(self.job.jobid)
        return (f'if [ "$(cat {HELD_BY} 2>/dev/null)" = {jobid} ]; then rm -f {HELD_BY}; fi; '
                f"rm -f {ACTIVE_DIR}/{jobid}")

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
            script.append(f"if cd {q(self.job.working_directory)} 2>/dev/null; then {self.release_script()}; fi")
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
