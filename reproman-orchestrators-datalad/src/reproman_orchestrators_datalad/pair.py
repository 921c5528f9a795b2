"""``datalad-pair`` and ``datalad-pair-run``: a clone of the dataset on the resource.

Everything moves through the ReproMan session, so the same code serves the
local shell, SSH, Docker and cloud resources, with the session's own
credentials, and the resource never has to reach the submitting machine:

* history goes as a git bundle holding only the commits the resource's
  clone lacks (the clone reports its ref tips first);
* annexed inputs whose content is here go as object files in the same
  upload and are registered with ``git annex setkey``; other annexed inputs
  are fetched on the resource with ``datalad get`` (from the sources the
  dataset knows, e.g. web URLs);
* results come back the same way: after the job, the resource's clone
  commits them with ``datalad save`` and marks the commit with
  ``refs/reproman/<jobid>``; a bundle of that commit and the annexed
  outputs' content are downloaded in one transfer, and the commit is merged
  into the branch the job was started from.

``datalad-pair`` merges the resource's commit itself. ``datalad-pair-run``
merges a commit with the same tree whose message is a ``datalad run``
record, so ``datalad rerun`` can redo the job here.

One clone per dataset and resource lives at
``<root_directory>/<dataset id>`` (the default working directory), reused by
later jobs. A job holds it from ``prepare_remote`` until it is fetched, and
a second job is refused meanwhile: two jobs in one work tree would commit
each other's outputs.
"""

from __future__ import annotations

import logging
import os
import posixpath
import tempfile
from pathlib import Path

from reproman.errors import OrchestratorError, SessionError
from reproman.jobs.status import JobStatus
from reproman_orchestrators_datalad.base import ACTIVE_DIR, ORIGIN, DataladOrchestrator, q
from reproman_orchestrators_datalad.local_dataset import DatasetState
from reproman_orchestrators_datalad.messages import run_message, save_message

lgr = logging.getLogger(__name__)

#: Exit status of the setup command when ``datalad get`` could not get inputs.
_ABSENT = 5


class PairOrchestrator(DataladOrchestrator):
    """Run in a clone of the dataset on the resource; merge the commit it makes."""

    name = "datalad-pair"

    def default_working_directory(self) -> str:
        """``<root_directory>/<dataset id>``: one clone per dataset, reused by later jobs."""
        dsid = self.local.dataset_id()
        if not dsid:
            # Not a dataset: prepare_remote says so with the details; any path will do until then.
            return super().default_working_directory()
        return posixpath.join(self.job.root_directory, dsid)

    # -- prepare -------------------------------------------------------------------
    def prepare_remote(self) -> None:
        state = self.start()
        inputs = self.inputs()
        shipped = self.local.annexed(inputs, present=True)
        absent = [f for _k, f in self.local.annexed(inputs, present=False)]
        remote = self._query_remote([k for k, _f in shipped])
        have = remote["keys"]
        shipped = [(k, f) for k, f in shipped if k not in have]
        with tempfile.TemporaryDirectory(prefix="reproman-datalad-") as tmp:
            bundle = self._bundle(state, remote["tips"], Path(tmp) / "bundle")
            stage = self.staging_dir()
            pairs: list[tuple[str, str]] = []
            if bundle:
                pairs.append((str(bundle), posixpath.join(stage, "bundle")))
            for i, (key, _f) in enumerate(shipped):
                pairs.append((self.local.content_location(key), posixpath.join(stage, f"k{i}")))
            if pairs:
                try:
                    self.session.put_many(pairs)
                except (SessionError, OSError) as exc:
                    raise OrchestratorError(f"sending the dataset to {self.job.resource_name} failed: {exc}") from exc
        script = self._setup_script(state, bool(bundle), shipped, absent)
        result = self.remote(script, "preparing the dataset", check=False)
        if absent and result.returncode == _ABSENT:
            raise OrchestratorError(
                f"resource {self.job.resource_name} could not get the content of input(s) "
                f"{', '.join(absent)}, which is not on this machine either",
                hint="Get it here first ('datalad get PATH'); ReproMan then sends it along.",
            )
        if result.returncode != 0:
            said = (result.stderr.strip() or result.stdout.strip()).splitlines()[-4:]
            raise OrchestratorError(
                f"preparing the dataset failed on resource {self.job.resource_name} "
                f"(exit {result.returncode}): {' | '.join(said)}"
            )
        self.job.extra["shipped_keys"] = len(shipped)

    def _query_remote(self, keys: list[str]) -> dict[str, set[str]]:
        """One command: is there a clone, is it free and clean, which commits and keys does it have."""
        wd = self.job.working_directory
        script = (
            f"wd={q(wd)}\n"
            'if [ ! -e "$wd/.git" ]; then\n'
            '  if [ -d "$wd" ] && [ -n "$(ls -A "$wd" 2>/dev/null)" ]; then echo NOTREPO; else echo NOREPO; fi; exit 0\n'
            "fi\n"
            'cd "$wd" || exit 1\n'
            "echo REPO\n"
            f'for f in {ACTIVE_DIR}/*; do [ -e "$f" ] && echo "ACTIVE ${{f##*/}}"; done\n'
            "git status --porcelain --untracked-files=normal | sed 's/^/DIRTY /'\n"
            "git for-each-ref --format='TIP %(objectname)'\n"
            "echo KEYS\n"
        )
        if keys:
            listing = "".join(k + "\n" for k in keys)
            script += f"printf %s {q(listing)} | git annex contentlocation --batch 2>/dev/null || true\n"
        out = self.remote(script, "inspecting the dataset").stdout.splitlines()
        if not out or out[0] == "NOREPO":
            return {"tips": set(), "keys": set()}
        if out[0] == "NOTREPO":
            raise OrchestratorError(
                f"{wd} on resource {self.job.resource_name} exists and is not a dataset",
                hint="Give another working_directory, or remove that directory.",
            )
        active = [line[7:] for line in out if line.startswith("ACTIVE ")]
        if active:
            raise OrchestratorError(
                f"the dataset clone {wd} on resource {self.job.resource_name} is in use by job(s) "
                f"{', '.join(active)}, which must be fetched first",
                hint=f"Fetch them with 'reproman jobs JOBID'; if they are gone, remove {wd}/{ACTIVE_DIR}/JOBID.",
            )
        dirty = [line[6:] for line in out if line.startswith("DIRTY ")]
        if dirty:
            raise OrchestratorError(
                f"the dataset clone {wd} on resource {self.job.resource_name} has unsaved changes "
                f"({', '.join(dirty[:5])})",
                hint="Save or remove them there (e.g. 'datalad save' or 'git reset --hard'), then run again.",
            )
        tips = {line[4:] for line in out if line.startswith("TIP ")}
        found = out[out.index("KEYS") + 1:] if "KEYS" in out else []
        have = {k for k, line in zip(keys, found) if line.strip()}
        return {"tips": tips, "keys": have}

    def _bundle(self, state: DatasetState, remote_tips: set[str], path: Path) -> Path | None:
        """A bundle of what the clone lacks: the branch and the git-annex branch, minus its commits."""
        known = []
        if remote_tips:
            check = self.local.git("cat-file", "--batch-check", stdin="".join(t + "\n" for t in remote_tips))
            known = [line.split()[0] for line in check.stdout.splitlines() if not line.endswith("missing")]
        refs = [f"refs/heads/{state.branch}"]
        if self.local.rev("refs/heads/git-annex"):
            refs.append("refs/heads/git-annex")
        args = ["bundle", "create", "-q", str(path), *refs]
        if known:
            args += ["--not", *known]
        proc = self.local.git(*args, check=False)
        if proc.returncode != 0:
            if "empty bundle" in proc.stderr:
                return None
            raise OrchestratorError(f"could not bundle the dataset's history: {proc.stderr.strip()}")
        return path

    def _setup_script(
        self, state: DatasetState, bundle: bool, shipped: list[tuple[str, str]], absent: list[str]
    ) -> str:
        """One command: clone or update, check out the job's commit, place inputs, hold the clone."""
        job = self.job
        stage = self.staging_dir()
        lines = [
            "set -e",
            f"wd={q(job.working_directory)}; stage={q(stage)}",
            "trap 'rm -rf \"$stage\"' EXIT",
            'if [ ! -e "$wd/.git" ]; then mkdir -p "$wd"; git -C "$wd" init -q; fi',
            'cd "$wd"',
        ]
        if bundle:
            lines.append(f"git fetch -q \"$stage/bundle\" '+refs/heads/*:refs/remotes/{ORIGIN}/*'")
        if self.local.has_annex():
            label = q(f"reproman clone on {job.resource_name}")
            lines.append(f"git config --get annex.uuid >/dev/null || git annex init -q {label} >/dev/null")
        lines.append(f"git -c advice.detachedHead=false checkout -q --detach {q(state.head)}")
        for i, (key, _f) in enumerate(shipped):
            lines.append(f'git annex setkey {q(key)} "$stage/k{i}" >/dev/null')
        if absent:
            lines.append("datalad get -- " + " ".join(q(p) for p in absent) + f" >/dev/null 2>&1 || exit {_ABSENT}")
        unlock = self.unlock_outputs_script(self.outputs())
        if unlock:
            lines.append(unlock)
        lines.append(f"mkdir -p {ACTIVE_DIR} && : > {ACTIVE_DIR}/{q(job.jobid)}")
        return "\n".join(lines) + "\n"

    # -- fetch -----------------------------------------------------------------------
    def fetch(self) -> list[str]:
        """Commit on the resource, download that commit and annexed outputs, merge."""
        job = self.job
        if self.already_merged():
            return self.local_results()
        status = self.final_status()
        failed = len(status.failed)
        spec = self.final_spec(status)
        found = self.remote(
            self._commit_script(save_message(job, failed)), "recording the job's results", stdin=spec.encode()
        ).stdout.splitlines()
        keys = [line[4:].split("\t", 1) for line in found if line.startswith("KEY ")]
        stage = self.staging_dir()
        with tempfile.TemporaryDirectory(prefix="reproman-datalad-") as tmp:
            bundle = Path(tmp) / "result.bundle"
            pairs: list[tuple[str, str | os.PathLike[str]]] = [(posixpath.join(stage, "result.bundle"), bundle)]
            pairs += [
                (posixpath.join(job.working_directory, obj), Path(tmp) / f"k{i}") for i, (_k, obj) in enumerate(keys)
            ]
            try:
                self.session.get_many(pairs)
            except (SessionError, OSError) as exc:
                raise OrchestratorError(f"downloading the results of job {job.jobid} failed: {exc}") from exc
            finally:
                self.session.execute_command(["rm", "-rf", stage])
            self._import(bundle, status)
            for i, (key, _obj) in enumerate(keys):
                self.local.git("annex", "setkey", key, str(Path(tmp) / f"k{i}"))
        self.merge_results(str(job.extra.get("branch", "")))
        if failed:
            lgr.warning("job %s: %s; the record is in %s", job.jobid, status.summary(), self.record_dir)
        return self.local_results()

    def _commit_script(self, message: str) -> str:
        """Record and save in the clone, then bundle the commit and list the annexed outputs to download."""
        job = self.job
        stage = self.staging_dir()
        outputs = self.outputs()
        paths = " ".join(q(p) for p in outputs)
        lines = [
            "set -e",
            f"cd {q(job.working_directory)}",
            self.record_script(message),
            f"stage={q(stage)}; mkdir -p \"$stage\"",
            f"set -- {q(self.ref)}",
            'if git rev-parse -q --verify refs/heads/git-annex >/dev/null; then set -- "$@" refs/heads/git-annex; fi',
            f'set -- "$@" --not {q(self.base)}',
            f"if git rev-parse -q --verify refs/remotes/{ORIGIN}/git-annex >/dev/null; then "
            f'set -- "$@" refs/remotes/{ORIGIN}/git-annex; fi',
            'git bundle create -q "$stage/result.bundle" "$@"',
            # The annexed files this job changed (under the outputs, if it declared any).
            f"git diff -z --name-only --no-renames --diff-filter=AMT {q(self.base)} HEAD -- {paths} | "
            "xargs -0 -r git annex find "
            "--format='KEY ${key}\\t.git/annex/objects/${hashdirmixed}${key}/${key}\\n' -- 2>/dev/null || true",
        ]
        if not self.local.has_annex():
            lines.pop()
        return "\n".join(lines) + "\n"

    def _import(self, bundle: Path, status: JobStatus) -> None:
        """Fetch the resource's commit into ``refs/reproman/<jobid>``."""
        heads = self.local.git("bundle", "list-heads", str(bundle)).stdout
        refspecs = [f"+{self.ref}:{self.ref}"]
        if " refs/heads/git-annex" in heads:
            refspecs.append(f"+refs/heads/git-annex:refs/remotes/reproman-{self.job.resource_name}/git-annex")
        self.local.git("fetch", "-q", str(bundle), *refspecs)


class PairRunOrchestrator(PairOrchestrator):
    """Like ``datalad-pair``, but the local commit is a ``datalad run`` record."""

    name = "datalad-pair-run"
    run_record = True

    def _import(self, bundle: Path, status: JobStatus) -> None:
        """Fetch the resource's commit, then commit its tree locally with a run record as message.

        The tree is exactly the resource's (outputs and job record), the
        parent is the commit the job started from, so the history reads as if
        ``datalad run`` had run the job here.
        """
        super()._import(bundle, status)
        message = run_message(
            self.job, str(self.job.extra.get("dataset_id", "")), self.exit_code(status), len(status.failed)
        )
        commit = self.local.git(
            "commit-tree", f"{self.ref}^{{tree}}", "-p", self.base, "-F", "-", stdin=message
        ).stdout.strip()
        self.local.git("update-ref", self.ref, commit)
