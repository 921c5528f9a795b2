"""The ``copy`` orchestrator: the smallest one that keeps core's fetch contract.

Inputs go to a fresh per-job working directory on the resource; outputs
and the job directory come back in ONE transfer, landing under
:meth:`Orchestrator.landing` (merge into local directories, never delete,
keep a local file edited after submission). Core's ``plain`` orchestrator
does the same and more (missing outputs named, inputs checked).
"""

from __future__ import annotations

import os
import posixpath

from reproman.plugins import Orchestrator, OrchestratorError, OutputConflictError, SessionError, local_record_dir


class CopyOrchestrator(Orchestrator):
    name = "copy"

    def prepare_remote(self) -> None:
        job = self.job
        self.session.execute_command(["mkdir", "-p", job.working_directory], check=True)
        pairs = [(os.path.join(job.local_directory, path), posixpath.join(job.working_directory, path))
                 for path in map(self._relative, job.inputs)]
        if pairs:
            self.session.put_many(pairs)  # one transfer whatever the number of inputs

    def fetch(self) -> list[str]:
        job = self.job
        record = local_record_dir(job.local_directory, job.resource_name, job.jobid)
        pairs = [(job.job_dir, record)]  # logs, status files and the spec, kept with the results
        outputs = [self._relative(path) for path in job.outputs]
        present = self._present(outputs)
        pairs += [(posixpath.join(job.working_directory, path), os.path.join(job.local_directory, path))
                  for path in outputs if path in present]
        try:
            self.landing_report = self.session.get_many(pairs, landing=self.landing())
        except OutputConflictError:
            raise  # the user's files are in the way: core tells them, nothing was written
        except SessionError as exc:
            raise OrchestratorError(f"fetching job {job.jobid} failed: {exc}") from exc
        return [local for _remote, local in pairs]

    def _relative(self, path: str) -> str:
        """``path`` relative to where ``run`` was called (core has refused paths outside it)."""
        local = self.job.local_directory
        return os.path.relpath(os.path.join(local, path), local).replace(os.sep, "/")

    def _present(self, outputs: list[str]) -> set[str]:
        """Which outputs the job made, asked in one command (the list travels on standard input)."""
        if not outputs:
            return set()
        result = self.session.execute_command(
            'while IFS= read -r p; do if [ -e "$p" ] || [ -L "$p" ]; then printf "%s\\n" "$p"; fi; done',
            cwd=self.job.working_directory,
            stdin="".join(f"{path}\n" for path in outputs).encode("utf-8", "surrogateescape"),
        )
        return set(result.stdout.splitlines())

    def cleanup(self) -> None:
        """Free the per-job directory after a fetch; never a working directory the user named."""
        job = self.job
        if job.working_directory == self.default_working_directory():
            self.session.execute_command(["rm", "-rf", "--", job.working_directory])
