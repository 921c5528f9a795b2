"""The ``plain`` orchestrator: copy inputs to the resource and results back.

No version control: inputs go to the same relative paths under the job's
working directory (default ``<root_directory>/<jobid>``, a fresh directory per
job) and outputs come back to the same relative paths under the directory
``reproman run`` was called from. Each direction is one batched transfer
(:meth:`Session.put_many` / :meth:`Session.get_many`), not a remote call per
file. Logs and the job spec come back too, under
``.reproman/jobs/<resource>/<jobid>/``, so the record of how results were made
stays next to them.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shlex

import attrs

from reproman.errors import OrchestratorError, OutputConflictError, ResourceConnectionError, SessionError
from reproman.jobs import layout, workdir_hold
from reproman.jobs.contracts import Orchestrator
from reproman.jobs.status import local_log_dir
from reproman.resources.landing import Landing

lgr = logging.getLogger(__name__)


def relative_path(path: str, base: str) -> str:
    """``path`` relative to ``base``; paths outside ``base`` cannot be mirrored on the resource."""
    if not path.startswith("/") and not {"", ".", ".."} & set(path.split("/")):
        return path  # already relative and normal (the usual case: a fetch asks this once per output)
    rel = os.path.relpath(os.path.join(base, path), base)
    if rel == ".." or rel.startswith(".." + os.sep):
        raise OrchestratorError(
            f"{path!r} is outside {base}; inputs and outputs must be inside the directory you run from"
        )
    return rel.replace(os.sep, "/")


def check_job_paths(inputs: list[str], outputs: list[str], base: str, *, annexed_ok: bool = False) -> None:
    """Refuse, before anything runs, inputs and outputs a fetch could not bring back safely.

    Paths must stay inside the directory ``run`` is called from (absolute
    paths inside it are fine); outputs may not point into version-control
    metadata, which a fetch never writes, except git-annex files where the
    orchestrator unlocks them (``annexed_ok``).
    """
    from reproman.errors import UsageError

    for kind, paths in (("input", inputs), ("output", outputs)):
        for path in paths:
            if not path.strip():
                raise UsageError(f"an {kind} path is empty", hint=f"Name the {kind} file or directory after "
                                 f"{'-i' if kind == 'input' else '-o'}.")
            if "\0" in path or "\n" in path:
                flag = "-i" if kind == "input" else "-o"
                raise UsageError(
                    f"{kind} path {_short(path)} contains a newline or NUL byte",
                    hint=f"Rename it, or name the directory that holds it as the {kind} ({flag} DIR): "
                         "files inside a directory may have any name.")
            rel = os.path.relpath(os.path.join(base, path), base)
            if rel == ".." or rel.startswith(".." + os.sep):
                raise UsageError(
                    f"{kind} {_short(path)} is outside {base}",
                    hint=f"{kind.capitalize()}s must be inside the directory you run from; cd to a common parent.",
                )
            if kind == "output":
                _check_output_destination(path, rel, base, annexed_ok)


def _check_output_destination(path: str, rel: str, base: str, annexed_ok: bool) -> None:
    """Refuse an output a fetch would never write: inside ``.git`` or ``.reproman``, named or through a link.

    Caught here, with the true reason, rather than after the job ran (the
    fetch refuses the same paths, see :mod:`reproman.resources.landing`).
    """
    from reproman.errors import UsageError
    from reproman.resources.landing import SKIPPED_NAMES

    named = [part for part in rel.split(os.sep) if part in SKIPPED_NAMES]
    if named:
        raise UsageError(f"output {_short(path)} is inside a {named[0]} directory, which a fetch never writes",
                         hint=f"Name outputs outside {named[0]}.")
    # A local symbolic link on the way (the user's, or a directory that is one) may lead there too.
    real_base = os.path.realpath(base)
    real = os.path.realpath(os.path.join(base, rel))
    inside = os.path.relpath(real, real_base)
    if inside == ".." or inside.startswith(".." + os.sep):
        return  # outside: the fetch says so (and names the link)
    named = [part for part in inside.split(os.sep) if part in SKIPPED_NAMES]
    if named and _annexed(os.path.join(base, rel), inside):
        if annexed_ok:
            return  # the orchestrator unlocks it and saves the new content, as 'datalad run' does
        raise UsageError(f"output {_short(path)} is a git-annex file (a link into {named[0]}/annex/objects), which "
                         "this orchestrator would have to write through", hint="Run with a DataLad orchestrator "
                         "(e.g. '--orchestrator datalad-local-run'), which unlocks it, or 'git annex unlock' it first.")
    if named:
        raise UsageError(f"output {_short(path)} leads into {real} through a symbolic link; a fetch never writes "
                         f"into a {named[0]} directory", hint="Name the output by its real path, outside "
                         f"{named[0]}, or remove the link.")


def _annexed(path: str, inside: str) -> bool:
    """Whether ``path`` is itself a symbolic link to git-annex content (``.git/annex/objects/...``)."""
    parts = inside.split(os.sep)
    at = [i for i, part in enumerate(parts) if part == ".git"]
    return (os.path.islink(path) and bool(at) and parts[at[-1] + 1:at[-1] + 3] == ["annex", "objects"])


def _short(path: str, limit: int = 120) -> str:
    """A path quoted for a message, its middle elided when long (a 5,000-character path is no message)."""
    text = repr(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"


#: What :meth:`PlainOrchestrator._present` says when the working directory is gone ("/" is no relative path).
_NO_WORKDIR = "/"


class PlainOrchestrator(Orchestrator):
    """Inputs up and outputs down by plain copies."""

    name = "plain"

    def prepare_remote(self) -> None:
        job = self.job
        pairs: list[tuple[str, str]] = []
        for path in job.inputs:
            rel = relative_path(path, job.local_directory)
            local = os.path.join(job.local_directory, rel)
            if not os.path.lexists(local):
                raise OrchestratorError(f"input {_short(path)} does not exist in {job.local_directory}")
            pairs.append((local, posixpath.join(job.working_directory, rel)))
        if self._own_working_directory():
            self.session.execute_command(["mkdir", "-p", job.working_directory], check=True)
        else:
            # A directory the user named may be another job's: hold it first, before staging writes there.
            workdir_hold.claim(self.session, job)
        if pairs:
            self.session.put_many(pairs)

    def fetch(self) -> list[str]:
        """Outputs that exist and the job directory, in one transfer; missing outputs are logged.

        Outputs land under the job's :meth:`landing` rules: merged into
        local directories, never deleting a local path, and keeping local
        files that changed after submission.
        """
        job = self.job
        outputs = [relative_path(o, job.local_directory) for o in job.outputs]
        present = set(self._present(outputs))
        if _NO_WORKDIR in present:
            # Every output would read "not produced", a falsehood the record would keep.
            earlier = (f"What an earlier fetch brought back is in {job.local_directory}. "
                       if job.was_fetched else "")
            raise OrchestratorError(
                f"job {job.jobid}: its working directory {job.working_directory} is gone from resource "
                f"{job.resource_name!r}, so there is nothing to fetch from it",
                hint=f"{earlier}Nothing was changed. 'reproman jobs --delete {job.jobid}' forgets the job.",
            )
        missing = [o for o in outputs if o not in present]
        self.missing_outputs = missing
        if missing:
            # Core keeps the job's files on the resource then: copy, never link what stays there.
            self.releases_remote = False
        logs = local_log_dir(job)
        pairs: list[tuple[str, str]] = [(job.job_dir, logs)]
        pairs += [
            (posixpath.join(job.working_directory, o), os.path.join(job.local_directory, o))
            for o in outputs
            if o in present
        ]
        try:
            self.landing_report = self.session.get_many(pairs, landing=self.landing())
        except OutputConflictError:
            raise
        except (SessionError, ResourceConnectionError, OSError) as exc:
            # A lost connection has nothing local to fix: the next fetch, once the resource answers, is the fix.
            fix = ("Once the resource answers again," if isinstance(exc, ResourceConnectionError) else
                   "Fix what the error names (a full disk, a local link in the way), then")
            raise OrchestratorError(
                f"fetching job {job.jobid} failed: {exc}",
                hint=f"Nothing on the resource was freed and no local file was half-written. {fix} "
                     f"'reproman jobs {job.jobid}' fetches again.",
            ) from exc
        return [dest for _src, dest in pairs]

    def _present(self, outputs: list[str]) -> list[str]:
        """Which outputs exist on the resource, asked in one command whatever their number.

        :data:`_NO_WORKDIR` among them: the working directory itself is gone.

        The list travels as standard input (no argument-length limit) and is
        tested with shell builtins only; the same command marks the job
        completed.
        """
        job = self.job
        listing = "".join(o + "\n" for o in outputs)
        script = (
            f": > {shlex.quote(posixpath.join(job.job_dir, layout.COMPLETED))} 2>/dev/null\n"
            f"cd {shlex.quote(job.working_directory)} 2>/dev/null || {{ echo {_NO_WORKDIR}; exit 0; }}\n"
            'while IFS= read -r p; do if [ -e "$p" ] || [ -L "$p" ]; then printf "%s\\n" "$p"; fi; '
            f"done <<'__RM_OUTPUTS__'\n{listing}__RM_OUTPUTS__\n"
        )
        result = self.session.execute_command("exec /bin/sh -s", stdin=script.encode("utf-8", "surrogateescape"))
        # Split on newlines only: str.splitlines() also splits at CR, FF, U+2028..., which a name may hold.
        return [line for line in result.stdout.split("\n") if line]

    def landing(self) -> Landing:
        """The base rules; the per-job working directory is linkable too when the fetch frees it."""
        rules = super().landing()
        if self.releases_remote and self._own_working_directory():
            rules = attrs.evolve(rules, linkable=(*rules.linkable, self.job.working_directory))
        return rules

    def _own_working_directory(self) -> bool:
        """The working directory is ReproMan's per-job one (removed by :meth:`cleanup`), not one the user named."""
        job = self.job
        return not job.parameters.get("working_directory") and job.working_directory == self.default_working_directory()

    def abandon(self) -> None:
        """Let go of a working directory the user named, for a job that will never be fetched."""
        if not self._own_working_directory():
            workdir_hold.release(self.session, self.job)

    def staged_paths(self) -> list[str]:
        """The per-job working directory; never one the user named."""
        return [self.job.working_directory] if self._own_working_directory() else []

    def cleanup(self) -> None:
        """Remove the per-job working directory (staged inputs and outputs); never one the user named.

        A directory the user named keeps its content; only the job's hold on it goes.
        """
        job = self.job
        if not self._own_working_directory():
            workdir_hold.release(self.session, job)
            return
        result = self.session.execute_command(["rm", "-rf", "--", job.working_directory])
        if result.returncode != 0:
            lgr.warning("job %s: could not remove %s on the resource: %s",
                        job.jobid, job.working_directory, result.stderr.strip())
