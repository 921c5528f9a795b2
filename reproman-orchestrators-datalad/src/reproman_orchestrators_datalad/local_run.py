"""``datalad-local-run``: a plain directory on the resource, a ``datalad run`` record here.

For resources without DataLad or git-annex: inputs are copied to a fresh
per-job directory (as the ``plain`` orchestrator does, but with the content
of annexed files rather than their symlinks), the command runs there, and
the files it created or changed come back. They are committed *locally*
with a ``datalad run`` record as the message, on the commit the job
started from, so ``datalad rerun`` can redo the job here.

Changed files are those newer than a stamp written when the inputs were in
place, plus the declared outputs that exist (for file systems whose clocks
are too coarse to tell). Files the command deleted are not noticed.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tempfile
from pathlib import Path

from reproman.errors import OrchestratorError, SessionError
from reproman_orchestrators_datalad.base import GITATTRIBUTES, DataladOrchestrator, datalad_executable, q
from reproman_orchestrators_datalad.messages import run_message

lgr = logging.getLogger(__name__)


class LocalRunOrchestrator(DataladOrchestrator):
    """Copy inputs to a plain directory; commit the changed files here as a run record."""

    name = "datalad-local-run"
    run_record = True

    def stamp(self) -> str:
        return posixpath.join(self.job.root_directory, ".reproman", "datalad-stamps", self.job.jobid)

    # -- prepare -------------------------------------------------------------------
    def prepare_remote(self) -> None:
        state = self.start()
        inputs = self.inputs()
        absent = [f for _k, f in self.local.annexed(inputs, present=False)]
        if absent:
            lgr.info("getting %d annexed input(s) locally", len(absent))
            self.local.run([datalad_executable(), "get", "--", *absent])
        pairs = [(src, posixpath.join(self.job.working_directory, rel)) for src, rel in self._files(state.path, inputs)]
        if pairs:
            try:
                self.session.put_many(pairs)
            except (SessionError, OSError) as exc:
                raise OrchestratorError(f"copying inputs to {self.job.resource_name} failed: {exc}") from exc
        stamp = self.stamp()
        self.remote(
            f"mkdir -p {q(self.job.working_directory)} {q(posixpath.dirname(stamp))} && : > {q(stamp)}",
            "creating the working directory",
        )

    @staticmethod
    def _files(root: str, paths: list[str]) -> list[tuple[str, str]]:
        """``(source, relative path)`` for every file under ``paths``, annexed ones by their content.

        A locked annexed file is a symlink into ``.git/annex/objects``; the
        resource has no annex, so the object itself is sent.
        """
        annex = os.path.realpath(os.path.join(root, ".git", "annex", "objects"))
        found: list[tuple[str, str]] = []

        def add(path: str) -> None:
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            target = os.path.realpath(path)
            if os.path.islink(path) and target.startswith(annex + os.sep):
                found.append((target, rel))
            else:
                found.append((path, rel))

        for rel in paths:
            top = os.path.join(root, rel)
            if os.path.isdir(top) and not os.path.islink(top):
                for dirpath, dirnames, filenames in os.walk(top):
                    dirnames[:] = [d for d in dirnames if d != ".git"]
                    for name in filenames:
                        add(os.path.join(dirpath, name))
            else:
                add(top)
        return found

    # -- fetch -----------------------------------------------------------------------
    def fetch(self) -> list[str]:
        job = self.job
        if self.already_merged():
            return self.local_results()
        branch = str(job.extra.get("branch", ""))
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
        with tempfile.TemporaryDirectory(prefix="reproman-datalad-") as tmp:
            files = Path(tmp) / "files"
            logs = Path(tmp) / "logs"
            pairs: list[tuple[str, str | os.PathLike[str]]] = [(job.job_dir, logs)]
            pairs += [(posixpath.join(job.working_directory, rel), files / rel) for rel in changed]
            try:
                self.session.get_many(pairs)
            except (SessionError, OSError) as exc:
                raise OrchestratorError(f"downloading the results of job {job.jobid} failed: {exc}") from exc
            self.session.execute_command(["rm", "-f", self.stamp()])
            moved = self.local.rev("HEAD") != self.base
            if moved:
                # The outputs were made from the starting commit; record them on it.
                self.local.git("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", self.base)
            try:
                self._apply(files, changed, logs, spec)
                message = run_message(
                    job, str(job.extra.get("dataset_id", "")), self.exit_code(status), len(status.failed)
                )
                self.local.run([datalad_executable(), "save", "-m", message], env=self.identity)
                self.local.git("update-ref", self.ref, "HEAD")
            finally:
                if moved:
                    self.local.git("checkout", "-q", branch)
        if moved:
            self.merge_results(branch)
        if status.failed:
            lgr.warning("job %s: %s; the record is in %s", job.jobid, status.summary(), self.record_dir)
        return self.local_results()

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
        out = self.remote(script, "listing the job's results").stdout.splitlines()
        rels = [posixpath.normpath(line[2:] if line.startswith("./") else line) for line in out if line]
        return list(dict.fromkeys(r for r in rels if r and not r.startswith("../") and r != ".."))

    def _apply(self, files: Path, changed: list[str], logs: Path, spec: str) -> None:
        """Put the downloaded files and the job record into the work tree."""
        root = Path(self.job.local_directory)
        for rel in changed:
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_symlink() or dest.is_file():
                dest.unlink()
            elif dest.is_dir():
                shutil.rmtree(dest)
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
