"""``datalad-no-remote``: run in the dataset itself, where the resource already sees it.

For the local shell resource, or a cluster whose nodes mount the same file
system at the same path: nothing is copied. Inputs are fetched with
``datalad get`` and results saved with ``datalad save -r`` by the resource,
in the dataset ``reproman run`` was called from (subdatasets holding inputs
or outputs were installed before), and the top commit is marked with
``refs/reproman/<jobid>``.

Whatever changed in the dataset while the job held it is saved as the
job's result: the command may write anywhere, so that is the only way not
to leave its results unsaved.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from reproman.plugins import OrchestratorError
from reproman_orchestrators_datalad import guarding
from reproman_orchestrators_datalad.base import ACTIVE_DIR, DataladOrchestrator, q
from reproman_orchestrators_datalad.messages import save_message

lgr = logging.getLogger("reproman.orchestrators_datalad")

_NOT_SHARED = 3
_IN_USE = 4
_ABSENT = 5
_IGNORED = 7


class NoRemoteOrchestrator(DataladOrchestrator):
    """Run in the local dataset on a resource that shares its file system."""

    name = "datalad-no-remote"

    def default_working_directory(self) -> str:
        """The dataset itself: the resource must see it at the same path."""
        return str(self.job.local_directory)

    def prepare_remote(self) -> None:
        job = self.job
        # The dataset is shared, so a running job's marker is visible here too;
        # checking it before the clean-tree check names the real reason (that
        # job is writing its outputs into the tree) instead of "unsaved changes".
        active = Path(job.local_directory, ACTIVE_DIR)
        busy = sorted(p.name for p in active.iterdir()) if active.is_dir() else []
        if busy:
            raise self._in_use(busy[0])
        state = self.start()
        if job.rerun_of:
            existing = [o for o in self.outputs() if os.path.lexists(os.path.join(state.path, o))]
            if existing:
                lgr.warning(
                    "job %s reruns %s in the dataset itself (%s): it overwrites %s, and its fetch commits that; "
                    "the original's outputs stay in commit %s", job.jobid, job.rerun_of.get("jobid"), self.name,
                    ", ".join(existing[:5]), state.head[:10],
                )
        lines = [
            f"cd {q(job.working_directory)} || exit {_NOT_SHARED}",
            f'h=$(git rev-parse -q --verify HEAD 2>/dev/null) || exit {_NOT_SHARED}; [ "$h" = {q(state.head)} ] || '
            f'{{ echo "$h"; exit {_NOT_SHARED}; }}',
            f'for f in {ACTIVE_DIR}/*; do if [ -e "$f" ]; then echo "${{f##*/}}"; exit {_IN_USE}; fi; done',
            "set -e",
        ]
        ignored = self.ignored_outputs_script(_IGNORED)
        if ignored:
            lines.append(ignored)
        inputs = self.inputs()
        if inputs:
            lines.append("datalad get -- " + " ".join(q(p) for p in inputs) + f" >/dev/null 2>&1 || exit {_ABSENT}")
        unlock = self.unlock_outputs_script()
        if unlock:
            lines.append(unlock)
        lines.append(f"mkdir -p {ACTIVE_DIR} && : > {ACTIVE_DIR}/{q(job.jobid)}")
        result = self.remote("\n".join(lines) + "\n", "preparing the dataset", check=False)
        if result.returncode == _NOT_SHARED:
            raise OrchestratorError(
                f"resource {job.resource_name} does not see the dataset {job.working_directory} at commit "
                f"{state.head[:10]}; {self.name} needs the resource to share this file system",
                hint="Use datalad-pair to copy the dataset to the resource instead.",
            )
        if result.returncode == _IN_USE:
            raise self._in_use(result.stdout.strip())
        if result.returncode == _IGNORED:
            raise self.ignored_outputs_error(result.stdout, f"the dataset {job.working_directory}")
        if result.returncode == _ABSENT:
            raise OrchestratorError(
                f"resource {job.resource_name} could not get the content of input(s) {', '.join(inputs)} "
                f"in the dataset {job.working_directory}: no copy of it is reachable from there",
                hint="See where it is with 'git annex whereis PATH' (in the subdataset holding it), "
                "get it with 'datalad get PATH', then run again.",
            )
        if result.returncode != 0:
            raise self.failure(result, "preparing the dataset")

    def _in_use(self, other: str) -> OrchestratorError:
        workdir = self.job.working_directory or self.job.local_directory
        return OrchestratorError(
            f"the dataset {workdir} is in use by job {other}, which must be fetched first",
            hint=f"Fetch it with 'reproman jobs {other}'; if it is gone, remove {workdir}/{ACTIVE_DIR}/{other}.",
        )

    def fetch_results(self) -> list[str]:
        """Copy the job record into the dataset and save everything the job changed."""
        job = self.job
        if self.already_merged():
            return self.local_results()
        status = self.final_status()
        spec = self.final_spec(status)
        script = f"set -e\ncd {q(job.working_directory)}\n" + self.record_script(save_message(job, len(status.failed)))
        said = self.save_on_resource(script, spec.encode()).stdout.splitlines()
        self.landing_report = guarding.report(job.local_directory, self.record_dir, self.kept_paths(said))
        if status.failed:
            lgr.warning("job %s: %s; the record is in %s", job.jobid, status.summary(), self.record_dir)
        return self.local_results()
