"""``datalad-local-run``: a plain directory on the resource, a ``datalad run`` record here.

For resources without DataLad or git-annex: inputs are copied to a fresh
per-job directory (as the ``plain`` orchestrator does, but with the content
of annexed files rather than their symlinks, in whichever subdataset they
are), the command runs there, and the files it created or changed come
back. They are committed *locally* with a ``datalad run`` record as the
message, on the commit the job started from (and in each subdataset they
landed in, on the commit it had then), so ``datalad rerun`` can redo the job
here.

Changed files are those newer than a stamp written when the inputs were in
place, plus the declared outputs that exist (for file systems whose clocks
are too coarse to tell). Files the command deleted are not noticed.

Nothing local is overwritten that git could not give back: the dataset must
be clean, and a result that would replace a directory, go through a file or
a symbolic link, or overwrite a file git ignores is refused before any file
is touched (see :mod:`reproman_orchestrators_datalad.safety`).
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from reproman.plugins import OrchestratorError, SessionError
from reproman_orchestrators_datalad import guarding, requirements
from reproman_orchestrators_datalad.base import (
    GITATTRIBUTES,
    DataladOrchestrator,
    datalad_executable,
    not_utf8,
    q,
    shown_name,
    with_probes,
    without_probes,
)
from reproman_orchestrators_datalad.hierarchy import TOP, Hierarchy, Node, join, relative
from reproman_orchestrators_datalad.interrupted import CommitJournal
from reproman_orchestrators_datalad.messages import run_message
from reproman_orchestrators_datalad.safety import local_state, refuse, type_problems

lgr = logging.getLogger("reproman.orchestrators_datalad")


def filecmp_same(fetched: Path, local: Path) -> bool:
    """Same bytes (a local annexed file by its content); a local file without its content differs."""
    import filecmp

    try:
        if fetched.is_symlink() or (local.is_symlink() and not local.exists()):
            return fetched.is_symlink() and local.is_symlink() and os.readlink(fetched) == os.readlink(local)
        return filecmp.cmp(fetched, local, shallow=False)
    except OSError:
        return False


class LocalRunOrchestrator(DataladOrchestrator):
    """Copy inputs to a plain directory; commit the changed files here as a run record."""

    name = "datalad-local-run"
    run_record = True
    tools = requirements.PLAIN_TOOLS

    def stamp(self) -> str:
        return posixpath.join(self.job.root_directory, ".reproman", "datalad-stamps", self.job.jobid)

    # -- prepare -------------------------------------------------------------------
    def prepare_remote(self) -> None:
        state = self.start()
        tree = self.tree
        self._refuse_ignored_outputs(tree)
        absent = []
        for dataset, rels in tree.split(self.inputs()).items():
            repo = tree.dataset(dataset)
            if repo.has_annex():
                absent += [join(dataset, f) for _k, f in repo.annexed(rels, present=False)]
        if absent:
            lgr.info("getting %d annexed input(s) locally", len(absent))
            self.local.run([datalad_executable(), "get", "--", *absent])
        pairs = [(src, posixpath.join(self.job.working_directory, rel))
                 for src, rel in self._files(state.path, self.inputs())]
        if pairs:
            try:
                self.session.put_many(pairs)
            except (SessionError, OSError) as exc:
                raise OrchestratorError(f"copying inputs to {self.job.resource_name} failed: {exc}") from exc
        stamp = self.stamp()
        # The command may write an output into a directory that is not in the inputs (as with the
        # other orchestrators, whose working directory is the whole dataset): create the parents.
        parents = sorted({posixpath.join(self.job.working_directory, posixpath.dirname(o))
                          for o in self.outputs() if posixpath.dirname(o)})
        self.remote(
            f"mkdir -p {q(self.job.working_directory)} {q(posixpath.dirname(stamp))} "
            + "".join(f"{q(p)} " for p in parents) + f"&& : > {q(stamp)}",
            "creating the working directory",
        )

    def _refuse_ignored_outputs(self, tree: Hierarchy) -> None:
        """Refuse, before anything runs, outputs git ignores here: the local ``datalad save`` would skip them.

        The results are committed in this dataset (and its subdatasets), so
        that is where git is asked, each dataset for its own paths; tracked
        files are never reported (git only ignores untracked ones).
        """
        ignored: list[str] = []
        for dataset, rels in tree.split(self.outputs()).items():
            named = [r for r in rels if r != TOP]
            if not named:
                continue
            said = tree.dataset(dataset).git("check-ignore", "--", *with_probes(named), check=False).stdout
            ignored += [join(dataset, line) for line in without_probes(said.splitlines())]
        if ignored:
            raise self.ignored_paths_error(ignored, f"the dataset {self.job.local_directory}")

    @staticmethod
    def _files(root: str, paths: list[str]) -> list[tuple[str, str]]:
        """``(source, relative path)`` for every file under ``paths``, annexed ones by their content.

        A locked annexed file is a symlink into the ``.git/annex/objects`` of
        the (sub)dataset holding it; the resource has no annex, so the object
        itself is sent.
        """
        found: list[tuple[str, str]] = []

        def add(path: str) -> None:
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            target = os.path.realpath(path)
            if os.path.islink(path) and "/.git/annex/objects/" in target.replace(os.sep, "/"):
                found.append((target, rel))
            else:
                found.append((path, rel))

        for rel in paths:
            top = os.path.join(root, rel)
            if os.path.isdir(top) and not os.path.islink(top):
                for dirpath, dirnames, filenames in os.walk(top):
                    dirnames[:] = [d for d in dirnames if d != ".git"]
                    for name in filenames:
                        if name == ".git":
                            continue
                        add(os.path.join(dirpath, name))
            else:
                add(top)
        return found

    # -- fetch -----------------------------------------------------------------------
    def fetch_results(self) -> list[str]:
        job = self.job
        journal = CommitJournal(job.local_directory, job.jobid)
        if journal.exists():
            journal.resume(self.ref)
        if self.already_merged():
            return self.local_results()
        if self._recorded_before():
            # An earlier fetch committed the results but could not merge them: only merge.
            self.merge_results()
            return self.local_results()
        dirty = self.local.dirty_paths()
        if dirty:
            raise OrchestratorError(
                f"the dataset {job.local_directory} has unsaved changes ({', '.join(dirty[:5])}); "
                f"the results of job {job.jobid} are committed on a clean tree",
                hint=f"Save or stash them, then fetch again with 'reproman jobs {job.jobid}'.",
            )
        status = self.final_status()
        spec = self.final_spec(status)
        changed = self._changed()
        unsavable = [c for c in changed if not_utf8(c)]
        if unsavable:
            raise OrchestratorError(
                "the job wrote file names that are not valid UTF-8, which DataLad cannot save: "
                f"{', '.join(shown_name(n) for n in unsavable[:5])}; nothing was saved and the results stay in {job.working_directory} "
                f"on resource {job.resource_name}",
                hint=f"Rename those files there (or have the command write UTF-8 names), then fetch again "
                f"with 'reproman jobs {job.jobid}'.",
            )
        tree = self.tree
        involved = self._involved(tree, changed)
        with tempfile.TemporaryDirectory(prefix="reproman-datalad-") as tmp:
            files = Path(tmp) / "files"
            logs = Path(tmp) / "logs"
            pairs: list[tuple[str, str | os.PathLike[str]]] = [(job.job_dir, logs)]
            pairs += [(posixpath.join(job.working_directory, rel), files / rel) for rel in changed]
            try:
                self.session.get_many(pairs)
            except (SessionError, OSError) as exc:
                raise OrchestratorError(f"downloading the results of job {job.jobid} failed: {exc}") from exc
            kept = self._keep_rerun(files, changed, logs, spec) if job.rerun_of else None
            if kept is not None:
                return kept
            kept = self._keep_guarded(tree, changed, files)
            if kept:
                aside = {rel: f"{self.record_dir}/{guarding.KEPT_DIR}/{rel}" for rel in kept}
                changed = [aside.get(rel, rel) for rel in changed]
            self._check_destinations(tree, changed, files)
            message = run_message(job, str(job.extra.get("dataset_id", "")), self.exit_code(status),
                                  len(status.failed), kept=guarding.note(self.record_dir, kept))
            self._commit(tree, involved, changed, files, logs, spec, message)
        self.merge_results()
        self.landing_report = guarding.report(job.local_directory, self.record_dir, kept)
        if status.failed:
            lgr.warning("job %s: %s; the record is in %s", job.jobid, status.summary(), self.record_dir)
        return self.local_results()

    def _keep_guarded(self, tree: Hierarchy, changed: list[str], files: Path) -> list[str]:
        """Move downloaded files that would replace a committed one for a subjob that did not succeed aside.

        Each goes to ``<record>/failed-outputs/<path>`` among the
        downloaded files (committed there, see :mod:`.guarding`); returned
        are the paths whose committed version stays. The dataset is clean,
        so a tracked file here is as committed; one the job left identical
        changes nothing and lands as before.
        """
        root = self.job.local_directory
        guarded = guarding.guarded(self.guarded_outputs, root)
        if not guarded:
            return []
        candidates: dict[str, list[str]] = {}
        for rel in changed:
            if guarding.owed(rel, guarded) and os.path.lexists(os.path.join(root, rel)):
                owner = tree.owner(rel)
                candidates.setdefault(owner.path, []).append(relative(rel, owner.path))
        kept: list[str] = []
        for dataset, rels in candidates.items():
            listed = tree.dataset(dataset).git("ls-files", "-z", "--", *[f":(literal){r}" for r in rels]).stdout
            tracked = set(listed.split("\0")) - {""}
            for rel in (join(dataset, r) for r in rels if r in tracked):
                if not filecmp_same(files / rel, Path(root, rel)):
                    dest = files / self.record_dir / guarding.KEPT_DIR / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(files / rel), str(dest))
                    kept.append(rel)
        return sorted(kept)

    def _keep_rerun(self, files: Path, changed: list[str], logs: Path, spec: str) -> list[str] | None:
        """A rerun: results that differ go to ``fetched/`` beside the originals, nothing is committed.

        ``None`` when no existing local file differs: commit as for any job.

        The record (logs and spec) goes to the job's record directory,
        excluded from ``git status`` in this clone only, like the copies.
        """
        from reproman_orchestrators_datalad.keeping import exclude_kept_copies, keep_files

        root = Path(self.job.local_directory)
        report = keep_files(str(root), self.record_dir, files, changed)
        if report is None:
            return None
        record = root / self.record_dir
        record.mkdir(parents=True, exist_ok=True)
        for item in logs.iterdir():
            if item.is_file() and not item.name.endswith(".tmp"):
                shutil.copyfile(item, record / item.name)
        (record / "spec.yaml").write_text(spec)
        exclude_kept_copies(self.local, f"/{self.record_dir}/")
        self.landing_report = report
        return [str(k.fetched) for k in report.kept]

    def _recorded_before(self) -> bool:
        commit = self.local.rev(self.ref)
        return bool(commit) and self.local.rev(self.ref + "^") == self.base

    def _changed(self) -> list[str]:
        """Relative paths of files in the working directory that the job created or changed."""
        outputs = " ".join(q(o) for o in self.outputs())
        script = (
            f": > {q(posixpath.join(self.job.job_dir, 'completed'))} 2>/dev/null || true\n"
            f"cd {q(self.job.working_directory)} 2>/dev/null || exit 0\n"
            f"s={q(self.stamp())}\n"
            'if [ -e "$s" ]; then find . \\( -type f -o -type l \\) -newer "$s" -print; fi\n'
            f'for p in {outputs}; do if [ -d "$p" ]; then find "$p" \\( -type f -o -type l \\) -print; '
            'elif [ -e "$p" ] || [ -L "$p" ]; then printf "%s\\n" "$p"; fi; done\n'
        )
        out = self.remote(script, "listing the job's results").stdout.split("\n")  # a name may hold a CR
        rels = [posixpath.normpath(line[2:] if line.startswith("./") else line) for line in out if line]
        return list(dict.fromkeys(
            r for r in rels
            if r and r != ".." and not r.startswith("../") and ".git" not in r.split("/")
            and r.split("/")[0] != ".reproman"  # ReproMan's records: this job's is written from its logs
        ))

    def _involved(self, tree: Hierarchy, changed: list[str]) -> list[Node]:
        """The datasets the results go into (and those above them), parents first; refuse unreachable ones."""
        for rel in changed:
            owner = tree.owner(rel)
            if not owner.installed:
                raise OrchestratorError(
                    f"job {self.job.jobid} wrote {rel}, inside subdataset {owner.path}, which is not installed here",
                    hint=f"Install it with 'datalad get -n {owner.path}', then fetch again "
                    f"with 'reproman jobs {self.job.jobid}'.",
                )
        return tree.with_ancestors([*changed, self.record_dir])

    def _check_destinations(self, tree: Hierarchy, changed: list[str], files: Path) -> None:
        """Refuse, before touching anything, results that would destroy what git cannot give back.

        The dataset is clean, so an existing path is either committed (its
        old content stays in history) or ignored by git (it would be lost).
        """
        root = self.job.local_directory
        typed = type_problems(root, changed)
        problems = [f"{path} {what}" for path, what in typed.items()]
        existing: dict[str, list[str]] = {}
        for rel in changed:
            full = Path(root, rel)
            if os.path.lexists(full) and not any(b == full or b in full.parents for b in typed):
                owner = tree.owner(rel)
                existing.setdefault(owner.path, []).append(relative(rel, owner.path))
        for dataset, rels in existing.items():
            for rel, what in local_state(root, dataset, rels).items():
                problems.append(f"{Path(root, join(dataset, rel))} {what}")
        if problems:
            raise refuse(problems, f"on resource {self.job.resource_name}")

    def _start_commit(self, tree: Hierarchy, node: Node, starts: dict[str, str]) -> str:
        if node.path in starts:
            return starts[node.path]
        parent = tree.node(node.parent)
        if parent is None or parent.path not in starts:
            return node.commit
        # Installed after the job started: the commit its parent recorded then.
        rel = relative(node.path, parent.path)
        recorded = tree.dataset(parent.path).git("rev-parse", f"{starts[parent.path]}:{rel}", check=False)
        return recorded.stdout.strip() or node.commit

    def _commit(self, tree: Hierarchy, involved: list[Node], changed: list[str], files: Path, logs: Path,
                spec: str, message: str) -> None:
        """Commit the results on the commits the job started from, in every dataset they go into.

        A journal names what is about to change, so a fetch killed half-way
        is finished or undone by the next one (see
        :mod:`reproman_orchestrators_datalad.interrupted`).

        When nothing moved locally meanwhile (the usual case) that is the
        current branch of each dataset; otherwise (new commits, or another
        branch checked out) the datasets are put on their starting commits
        for the commit and back afterwards, and the merge brings the
        results in, or refuses and leaves them on the job's ref.
        """
        starts: dict[str, str] = {n.path: n.commit for n in self.started_datasets()}
        starts[TOP] = self.base
        plan = [(node, tree.dataset(node.path)) for node in involved]
        targets = {node.path: self._start_commit(tree, node, starts) for node in involved}
        originals = {node.path: (repo.rev("HEAD"), repo.current_branch()) for node, repo in plan}
        moved = (
            any(originals[n.path][0] != targets[n.path] for n, _r in plan)
            or originals[TOP][1] != str(self.job.extra.get("branch", ""))
        )
        paths = [*changed, self.record_dir, ".reproman/jobs/.gitattributes"]
        journal = CommitJournal(self.job.local_directory, self.job.jobid)
        journal.begin([{"path": node.path, "parent": node.parent, "target": targets[node.path],
                        "head": originals[node.path][0], "branch": originals[node.path][1]} for node, _r in plan],
                      paths, moved)
        committed = False
        try:
            if moved:
                for node, repo in plan:
                    repo.git("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", targets[node.path])
            self._apply(files, changed, logs, spec)
            try:
                self.local.run([datalad_executable(), "save", "-d", ".", "-m", message, "--", *paths],
                               env=self.identity)
            except OrchestratorError:
                self._restore(tree, changed)
                raise
            for node, repo in plan:
                if repo.rev("HEAD") != targets[node.path]:
                    repo.git("update-ref", self.ref, "HEAD")
            committed = True
        finally:
            if moved:
                for node, repo in plan:
                    head, branch = originals[node.path]
                    if branch:
                        repo.git("checkout", "-q", branch, check=False)
                    else:
                        repo.git("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", head, check=False)
        # Only once committed and back in place: after a failure (or a kill) the next fetch undoes what is left.
        if committed:
            journal.end()

    def _apply(self, files: Path, changed: list[str], logs: Path, spec: str) -> None:
        """Put the downloaded files and the job record into the work tree (destinations were checked)."""
        root = Path(self.job.local_directory)
        for rel in changed:
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(dest):
                dest.unlink()
            shutil.move(str(files / rel), str(dest))
        record = root / self.record_dir
        record.mkdir(parents=True, exist_ok=True)
        for item in logs.iterdir():
            if item.is_file() and not item.name.endswith(".tmp"):
                shutil.copyfile(item, record / item.name)
        (record / "spec.yaml").write_text(spec)
        attributes = root / ".reproman" / "jobs" / ".gitattributes"
        if not attributes.exists():
            attributes.write_text(GITATTRIBUTES)

    def _restore(self, tree: Hierarchy, changed: Iterable[str]) -> None:
        """Undo :meth:`_apply` after a failed commit: tracked files from git, new ones removed."""
        root = Path(self.job.local_directory)
        by_dataset: dict[str, list[str]] = {}
        for rel in changed:
            owner = tree.owner(rel)
            by_dataset.setdefault(owner.path, []).append(relative(rel, owner.path))
        for dataset, rels in by_dataset.items():
            repo = tree.dataset(dataset)
            tracked = set(repo.git("ls-files", "-z", "--", *rels, check=False).stdout.split("\0")) - {""}
            if tracked:
                repo.git("checkout", "-q", "HEAD", "--", *sorted(tracked), check=False)
            for rel in rels:
                if rel not in tracked:
                    path = root / join(dataset, rel)
                    if os.path.lexists(path):
                        path.unlink()
        if not self.local.git("ls-files", "--", self.record_dir, check=False).stdout.strip():
            shutil.rmtree(root / self.record_dir, ignore_errors=True)

    # -- releasing the resource ---------------------------------------------------------
    def abandon(self) -> None:
        """A job that will never be fetched: its stamp and per-job working directory go too.

        Submission can fail after :meth:`prepare_remote` made them (a full
        disk when core sends the job's files); nothing is running there.
        """
        self._remove(self.staged_paths(), "release")

    def staged_paths(self) -> list[str]:
        """The stamp and, when it is the per-job default, the working directory with the staged inputs."""
        job = self.job
        paths = [*super().staged_paths(), self.stamp()]
        default = posixpath.join(job.root_directory, job.jobid)
        chosen = job.parameters.get("working_directory")
        if not chosen and job.working_directory and posixpath.normpath(job.working_directory) == default:
            paths.append(default)
        return paths
