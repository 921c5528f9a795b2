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

from reproman.errors import OrchestratorError, SessionError
from reproman.jobs import layout
from reproman.jobs.contracts import Orchestrator
from reproman.jobs.status import local_log_dir

lgr = logging.getLogger(__name__)


def relative_path(path: str, base: str) -> str:
    """``path`` relative to ``base``; paths outside ``base`` cannot be mirrored on the resource."""
    rel = os.path.relpath(os.path.join(base, path), base)
    if rel == ".." or rel.startswith(".." + os.sep):
        raise OrchestratorError(
            f"{path!r} is outside {base}; inputs and outputs must be inside the directory you run from"
        )
    return rel.replace(os.sep, "/")


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
                raise OrchestratorError(f"input {path!r} does not exist in {job.local_directory}")
            pairs.append((local, posixpath.join(job.working_directory, rel)))
        self.session.execute_command(["mkdir", "-p", job.working_directory], check=True)
        if pairs:
            self.session.put_many(pairs)

    def fetch(self) -> list[str]:
        """Outputs that exist and the job directory, in one transfer; missing outputs are logged."""
        job = self.job
        outputs = [relative_path(o, job.local_directory) for o in job.outputs]
        # One command learns which outputs exist and marks the job completed.
        probe = " ".join(shlex.quote(o) for o in outputs)
        script = f": > {shlex.quote(posixpath.join(job.job_dir, layout.COMPLETED))} 2>/dev/null; "
        if outputs:
            script += (
                f"cd {shlex.quote(job.working_directory)} 2>/dev/null || exit 0; "
                f'for p in {probe}; do [ -e "$p" ] || [ -L "$p" ] && printf "%s\\n" "$p"; done; true'
            )
        present = set(self.session.execute_command(script).stdout.splitlines())
        missing = [o for o in outputs if o not in present]
        for path in missing:
            lgr.warning("job %s: output %s was not produced on the resource", job.jobid, path)
        logs = local_log_dir(job)
        pairs: list[tuple[str, str]] = [(job.job_dir, logs)]
        pairs += [
            (posixpath.join(job.working_directory, o), os.path.join(job.local_directory, o))
            for o in outputs
            if o in present
        ]
        try:
            self.session.get_many(pairs)
        except (SessionError, OSError) as exc:
            raise OrchestratorError(f"fetching job {job.jobid} failed: {exc}") from exc
        return [dest for _src, dest in pairs]
