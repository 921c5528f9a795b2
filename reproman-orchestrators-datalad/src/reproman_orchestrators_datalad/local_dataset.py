"""The submitting side's dataset, queried with ``git``/``git annex`` subprocesses.

The local dataset is always on this machine, so it is read with plain
subprocesses rather than through a session; DataLad's Python API is not
imported (it costs about a second) because everything needed here is one
``git`` call away.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence

import attrs

from reproman.plugins import OrchestratorError

#: Job records that core rewrites after a fetch; never a reason to refuse a run.
_RECORD_SPEC = re.compile(r"^\.reproman/jobs/[^/]+/[^/]+/spec\.yaml$")


@attrs.frozen(kw_only=True)
class DatasetState:
    """What a job must remember about the local dataset when it starts."""

    path: str
    dataset_id: str
    branch: str
    head: str


class LocalDataset:
    """A DataLad dataset at ``path`` on the submitting machine."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        #: Descriptors :meth:`run` hands down (the fetch lock: a tool orphaned by a killed fetch keeps holding it).
        self.inherited_fds: tuple[int, ...] = ()

    def git(
        self,
        *args: str,
        check: bool = True,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``git ARGS`` in the dataset; with ``check`` a failure is an :class:`OrchestratorError`."""
        proc = subprocess.run(
            ["git", *args],
            cwd=self.path,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            # Commit messages and paths may carry bytes that are not UTF-8 (a command's own words): git
            # stores bytes, so they pass through as they are instead of failing to encode.
            errors="surrogateescape",
            env={**os.environ, **(env or {})},
        )
        if check and proc.returncode != 0:
            detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
            raise OrchestratorError(f"'git {' '.join(args)}' failed in {self.path}: {detail[0]}")
        return proc

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run another tool (``datalad``) in the dataset; a failure is an :class:`OrchestratorError`."""
        try:
            proc = subprocess.run(
                list(argv), cwd=self.path, input="", capture_output=True, text=True, env={**os.environ, **(env or {})},
                pass_fds=self.inherited_fds,
            )
        except FileNotFoundError as exc:
            raise OrchestratorError(
                f"{argv[0]} is not installed on this machine", hint="Install DataLad: pip install datalad."
            ) from exc
        if proc.returncode != 0:
            detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
            raise OrchestratorError(f"'{' '.join(argv[:2])}' failed in {self.path}: {' '.join(detail)}")
        return proc

    # -- checks --------------------------------------------------------------
    def state(self, orchestrator: str) -> DatasetState:
        """Check that a job can start from here and return what it must remember.

        The directory must be the top of a DataLad dataset, on a branch, with
        no unsaved changes: the job's commit is built on the current commit,
        and changes the resource never saw would be silently left out of it.
        """
        top = self.git("rev-parse", "--show-toplevel", check=False)
        if top.returncode != 0:
            raise OrchestratorError(
                f"orchestrator {orchestrator} needs a DataLad dataset, but {self.path} is not in a git repository",
                hint="Create one with 'datalad create --force .' or run from a dataset.",
            )
        if os.path.realpath(top.stdout.strip()) != os.path.realpath(self.path):
            raise OrchestratorError(
                f"orchestrator {orchestrator} must be run from the top directory of the dataset "
                f"({top.stdout.strip()}), not from {self.path}",
                hint="cd to the dataset's top directory and give paths relative to it.",
            )
        dsid = self.dataset_id()
        if not dsid:
            raise OrchestratorError(
                f"orchestrator {orchestrator} needs a DataLad dataset, but {self.path} has no dataset id "
                "(.datalad/config)",
                hint="Turn the repository into a dataset with 'datalad create --force .'.",
            )
        branch = self.git("symbolic-ref", "-q", "--short", "HEAD", check=False).stdout.strip()
        if not branch:
            raise OrchestratorError(
                f"the dataset {self.path} has a detached HEAD; orchestrator {orchestrator} needs a branch "
                "to bring results back to",
                hint="Check out a branch, e.g. 'git switch -c results'.",
            )
        head = self.git("rev-parse", "--verify", "-q", "HEAD", check=False).stdout.strip()
        if not head:
            raise OrchestratorError(f"the dataset {self.path} has no commit yet", hint="Save something first.")
        dirty = self.dirty_paths()
        if dirty:
            shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
            raise OrchestratorError(
                f"the dataset {self.path} has unsaved changes ({shown}); the job would not see them "
                "and its results could not be recorded cleanly",
                hint="Save them with 'datalad save -r -m MESSAGE' (-r: subdatasets too), then run again.",
            )
        return DatasetState(path=self.path, dataset_id=dsid, branch=branch, head=head)

    def dataset_id(self) -> str:
        proc = self.git("config", "-f", os.path.join(self.path, ".datalad", "config"), "datalad.dataset.id", check=False)
        return proc.stdout.strip()

    def dirty_paths(self) -> list[str]:
        """Modified, staged or untracked paths, except job records core rewrites after a fetch."""
        out = self.git("status", "--porcelain", "-z", "--untracked-files=normal", "--ignore-submodules=none").stdout
        paths = []
        entries = out.split("\0")
        i = 0
        while i < len(entries):
            entry = entries[i]
            i += 1
            if not entry:
                continue
            code, path = entry[:2], entry[3:]
            if code[0] in "RC":
                i += 1  # a rename is followed by its source path
            if not _RECORD_SPEC.match(path):
                paths.append(path)
        return paths

    def current_branch(self) -> str:
        return self.git("symbolic-ref", "-q", "--short", "HEAD", check=False).stdout.strip()

    def rev(self, ref: str) -> str:
        return self.git("rev-parse", "--verify", "-q", ref + "^{commit}", check=False).stdout.strip()

    def is_repository(self) -> bool:
        """Is there a repository of its own here (an installed dataset)?"""
        return os.path.exists(os.path.join(self.path, ".git"))

    def has_commit(self, commit: str) -> bool:
        return self.git("cat-file", "-e", commit + "^{commit}", check=False).returncode == 0

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self.git("merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0

    def has_annex(self) -> bool:
        return bool(self.git("config", "--get", "annex.uuid", check=False).stdout.strip())

    def identity_env(self) -> dict[str, str]:
        """The local git identity as environment variables.

        Commits made on the resource then carry the name of the person who
        submitted the job, not whatever identity (if any) the resource has.
        """
        env: dict[str, str] = {}
        name = self.git("config", "user.name", check=False).stdout.strip()
        email = self.git("config", "user.email", check=False).stdout.strip()
        if name:
            env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = name
        if email:
            env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = email
        return env

    # -- annex -----------------------------------------------------------------
    def annexed(self, paths: Sequence[str], present: bool) -> list[tuple[str, str]]:
        """``(key, file)`` for annexed files under ``paths`` whose content is (not) here."""
        if not paths or not self.has_annex():
            return []
        args = ["annex", "find", "--format=${key}\\t${file}\\n"]
        if not present:
            args += ["--not", "--in=here"]
        out = self.git(*args, "--", *paths).stdout
        pairs = []
        for line in out.split("\n"):  # not splitlines(): a name may hold a CR
            key, _, name = line.partition("\t")
            if key and name:
                pairs.append((key, name))
        return pairs

    def content_location(self, key: str) -> str:
        """Absolute path of the object file holding ``key``'s content."""
        rel = self.git("annex", "contentlocation", key, check=False).stdout.strip()
        if not rel:
            raise OrchestratorError(f"the content of {key} is not in {self.path}")
        return os.path.join(self.path, rel)
