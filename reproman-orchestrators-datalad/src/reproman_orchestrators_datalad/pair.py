"""``datalad-pair`` and ``datalad-pair-run``: a clone of the dataset on the resource.

Everything moves through the ReproMan session, so the same code serves the
local shell, SSH, Docker and cloud resources, with the session's own
credentials, and the resource never has to reach the submitting machine:

* history goes as git bundles holding only the commits the resource's
  clone lacks (the clone reports its ref tips first), one per dataset:
  the top dataset and every subdataset installed here, which the clone
  gets at the same path, so the job sees the hierarchy as it is here;
* annexed inputs whose content is here go as object files in the same
  upload and are registered with ``git annex setkey`` in the dataset that
  holds them; other annexed inputs are fetched on the resource with
  ``datalad get`` (from the sources the datasets know, e.g. web URLs);
* results come back the same way: after the job, the clone saves them with
  ``datalad save -r`` (one commit in each dataset that changed) and marks
  the commits with ``refs/reproman/<jobid>``; a bundle per changed dataset
  and the annexed outputs' content are downloaded in one transfer, and the
  commits are merged into the branch the job was started from, deepest
  subdataset first (see :mod:`reproman_orchestrators_datalad.merging`).

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

import attrs

from reproman.plugins import JobStatus, OrchestratorError, SessionError
from reproman_orchestrators_datalad import guarding
from reproman_orchestrators_datalad.base import ACTIVE_DIR, HELD_BY, ORIGIN, DataladOrchestrator, q
from reproman_orchestrators_datalad.hierarchy import TOP, Hierarchy, Node, join
from reproman_orchestrators_datalad.local_dataset import LocalDataset
from reproman_orchestrators_datalad.messages import run_message, save_message

lgr = logging.getLogger("reproman.orchestrators_datalad")

#: Exit status of the setup command when ``datalad get`` could not get inputs.
_ABSENT = 5
#: Exit status of the setup command when the clone is not in the job's starting state.
_UNCLEAN = 6
#: Exit status of the setup command when git ignores an output in the clone.
_IGNORED = 7
#: Exit status of the setup command when another job holds the clone.
_HELD = 8


@attrs.frozen(kw_only=True)
class _Content:
    """An annexed input whose content goes along: which dataset, which key."""

    dataset: int
    key: str


@attrs.define(kw_only=True)
class _CloneState:
    """What the clone on the resource has, from one inspection command."""

    exists: bool = False
    tips: dict[int, set[str]] = attrs.Factory(dict)
    present: dict[int, list[str]] = attrs.Factory(dict)


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
        tree = self.tree
        datasets = tree.installed
        wanted, absent = self._input_content(tree, datasets)
        clone = self._inspect_clone(datasets, wanted)
        shipped = [c for c in wanted if c.key not in clone.present.get(c.dataset, [])]
        stage = self.staging_dir()
        with tempfile.TemporaryDirectory(prefix="reproman-datalad-") as tmp:
            bundles: dict[int, list[str]] = {}
            pairs: list[tuple[str, str]] = []
            for i, node in enumerate(datasets):
                path = Path(tmp) / f"b{i}"
                heads = self._bundle(tree.dataset(node.path), clone.tips.get(i, set()), path)
                if heads:
                    bundles[i] = heads
                    pairs.append((str(path), posixpath.join(stage, f"b{i}")))
            for n, content in enumerate(shipped):
                source = tree.dataset(datasets[content.dataset].path).content_location(content.key)
                pairs.append((source, posixpath.join(stage, f"k{n}")))
            if pairs:
                try:
                    self.session.put_many(pairs)
                except (SessionError, OSError) as exc:
                    raise OrchestratorError(f"sending the dataset to {self.job.resource_name} failed: {exc}") from exc
        script = self._setup_script(tree, datasets, bundles, shipped, absent)
        result = self.remote(script, "preparing the dataset", check=False)
        if absent and result.returncode == _ABSENT:
            raise OrchestratorError(
                f"resource {self.job.resource_name} could not get the content of input(s) "
                f"{', '.join(absent)}, which is not on this machine either",
                hint="Get it here first ('datalad get PATH'); ReproMan then sends it along.",
            )
        if result.returncode == _HELD:
            holders = [line[7:] for line in result.stdout.split("\n") if line.startswith("ACTIVE ")]
            raise self._in_use(holders)
        if result.returncode == _UNCLEAN:
            paths = [line[6:] for line in result.stdout.split("\n") if line.startswith("DIRTY ")]
            raise OrchestratorError(
                f"the dataset clone {self.job.working_directory} on resource {self.job.resource_name} does not "
                f"match this dataset at {state.head[:10]} ({', '.join(paths[:5])})",
                hint="A subdataset installed there but not here is the usual cause: install it here "
                "('datalad get -n PATH') or remove it from the clone.",
            )
        if result.returncode == _IGNORED:
            raise self.ignored_outputs_error(
                result.stdout, f"the dataset clone {self.job.working_directory} on resource {self.job.resource_name}"
            )
        if result.returncode != 0:
            said = (result.stderr.strip() or result.stdout.strip()).splitlines()[-4:]
            raise OrchestratorError(
                f"preparing the dataset failed on resource {self.job.resource_name} "
                f"(exit {result.returncode}): {' | '.join(said)}"
            )
        self.job.extra["shipped_keys"] = len(shipped)

    def _input_content(self, tree: Hierarchy, datasets: list[Node]) -> tuple[list[_Content], list[str]]:
        """Annexed inputs: the keys whose content is here (to send) and the paths whose content is not."""
        groups = tree.split(self.inputs())
        wanted: list[_Content] = []
        absent: list[str] = []
        for i, node in enumerate(datasets):
            rels = groups.get(node.path)
            repo = tree.dataset(node.path)
            if not rels or not repo.has_annex():
                continue
            wanted += [_Content(dataset=i, key=k) for k, _f in repo.annexed(rels, present=True)]
            absent += [join(node.path, f) for _k, f in repo.annexed(rels, present=False)]
        return list(dict.fromkeys(wanted)), absent

    def _inspect_clone(self, datasets: list[Node], wanted: list[_Content]) -> _CloneState:
        """One command: whether the clone exists, is free and clean, which commits and contents it has."""
        wd = self.job.working_directory
        lines = [
            f"wd={q(wd)}",
            'if [ ! -e "$wd/.git" ]; then',
            '  if [ -d "$wd" ] && [ -n "$(ls -A "$wd" 2>/dev/null)" ]; then echo NOTREPO; else echo NOREPO; fi; exit 0',
            "fi",
            'cd "$wd" || exit 1',
            "echo REPO",
            f'for f in {ACTIVE_DIR}/*; do [ -e "$f" ] && echo "ACTIVE ${{f##*/}}"; done',
            "git status --porcelain --untracked-files=normal | sed 's/^/DIRTY /'",
        ]
        for i, node in enumerate(datasets):
            keys = [c.key for c in wanted if c.dataset == i]
            body = f"git -C {q(node.path)} for-each-ref --format='TIP {i} %(objectname)'"
            if keys:
                listing = "".join(k + "\n" for k in keys)
                body += (f"; printf %s {q(listing)} | git -C {q(node.path)} annex contentlocation --batch "
                         f"2>/dev/null | sed 's/^/LOC {i} /'")
            lines.append(f"if [ -e {q(node.path)}/.git ]; then {body}; fi")
        found = self.remote("\n".join(lines) + "\n", "inspecting the dataset").stdout.splitlines()
        if not found or found[0] == "NOREPO":
            return _CloneState()
        if found[0] == "NOTREPO":
            raise OrchestratorError(
                f"{wd} on resource {self.job.resource_name} exists and is not a dataset",
                hint="Give another working_directory, or remove that directory.",
            )
        active = [line[7:] for line in found if line.startswith("ACTIVE ")]
        if active:
            raise self._in_use(active)
        dirty = [line[6:] for line in found if line.startswith("DIRTY ")]
        if dirty:
            raise OrchestratorError(
                f"the dataset clone {wd} on resource {self.job.resource_name} has unsaved changes "
                f"({', '.join(dirty[:5])})",
                hint=f"Save them there ('datalad save'), or discard them ('cd {wd} && git reset --hard && "
                "git clean -fd'), then run again.",
            )
        state = _CloneState(exists=True)
        for line in found:
            kind, _, rest = line.partition(" ")
            if kind not in ("TIP", "LOC"):
                continue
            index, _, value = rest.partition(" ")
            if not index.isdigit():
                continue
            if kind == "TIP":
                state.tips.setdefault(int(index), set()).add(value.strip())
            else:
                state.present.setdefault(int(index), []).append(value.strip())
        # contentlocation answers one line per key, in order: keep the keys it located.
        for i in list(state.present):
            keys = [c.key for c in wanted if c.dataset == i]
            state.present[i] = [k for k, loc in zip(keys, state.present[i]) if loc]
        return state

    def _in_use(self, holders: list[str]) -> OrchestratorError:
        wd = self.job.working_directory
        return OrchestratorError(
            f"the dataset clone {wd} on resource {self.job.resource_name} is in use by job(s) "
            f"{', '.join(h for h in holders if h) or '?'}, which must be fetched first",
            hint=f"Fetch them with 'reproman jobs JOBID'; if they are gone, remove {wd}/{ACTIVE_DIR}/JOBID "
            f"and {wd}/{HELD_BY}.",
        )

    @staticmethod
    def _bundle(repo: LocalDataset, remote_tips: set[str], path: Path) -> list[str]:
        """Bundle what the clone lacks of ``HEAD`` and the git-annex branch; return the refs it holds."""
        known = []
        if remote_tips:
            check = repo.git("cat-file", "--batch-check", stdin="".join(t + "\n" for t in remote_tips))
            known = [line.split()[0] for line in check.stdout.splitlines() if not line.endswith("missing")]
        refs = ["HEAD"]
        if repo.rev("refs/heads/git-annex"):
            refs.append("refs/heads/git-annex")
        args = ["bundle", "create", "-q", str(path), *refs]
        if known:
            args += ["--not", *known]
        proc = repo.git(*args, check=False)
        if proc.returncode != 0:
            if "empty bundle" in proc.stderr:
                return []
            raise OrchestratorError(f"could not bundle the history of {repo.path}: {proc.stderr.strip()}")
        heads = repo.git("bundle", "list-heads", str(path)).stdout.split()
        return [h for h in heads if h in ("HEAD", "refs/heads/git-annex")]

    def _setup_script(
        self, tree: Hierarchy, datasets: list[Node], bundles: dict[int, list[str]], shipped: list[_Content],
        absent: list[str],
    ) -> str:
        """One command: clone or update every dataset, check out the job's commits, place inputs, hold the clone."""
        job = self.job
        stage = self.staging_dir()
        label = q(f"reproman clone on {job.resource_name}")
        lines = [
            "set -e",
            f"wd={q(job.working_directory)}; stage={q(stage)}",
            "trap 'rm -rf \"$stage\"' EXIT",
            'if [ ! -e "$wd/.git" ]; then mkdir -p "$wd"; git -C "$wd" init -q; fi',
            'cd "$wd"',
            self._claim_script(),
            # Refused or failed from here on: the hold goes with it (it is set again only below).
            f"release() {{ {self.release_script()}; }}",
            """trap 'rm -rf "$stage"; release' EXIT""",
        ]
        for i, node in enumerate(datasets):
            p = q(node.path)
            if node.path != TOP:
                lines.append(f"if [ ! -e {p}/.git ]; then mkdir -p {p}; git -C {p} init -q; fi")
            if bundles.get(i):
                refspecs = " ".join(q(f"+{h}:refs/remotes/{ORIGIN}/{posixpath.basename(h)}") for h in bundles[i])
                lines.append(f'git -C {p} fetch -q --no-recurse-submodules "$stage/b{i}" {refspecs}')
            if tree.dataset(node.path).has_annex():
                lines.append(f"git -C {p} config --get annex.uuid >/dev/null || git -C {p} annex init -q {label} >/dev/null")
            lines.append(f"git -C {p} -c advice.detachedHead=false checkout -q --detach {q(node.commit)}")
        # Subdatasets installed in the clone by an earlier job but not here: bring them to the recorded state.
        for node in tree.subdatasets:
            if not node.installed:
                p = q(node.path)
                lines.append(f"if [ -e {p}/.git ]; then git -C {p} -c advice.detachedHead=false "
                             f"checkout -q --detach {q(node.commit)} 2>/dev/null || true; fi")
        for n, content in enumerate(shipped):
            p = q(datasets[content.dataset].path)
            lines.append(f'git -C {p} annex setkey {q(content.key)} "$stage/k{n}" >/dev/null')
        if absent:
            lines.append("datalad get -- " + " ".join(q(p) for p in absent) + f" >/dev/null 2>&1 || exit {_ABSENT}")
        lines.append(
            "dirty=$(git status --porcelain --untracked-files=normal); "
            f"if [ -n \"$dirty\" ]; then printf '%s\\n' \"$dirty\" | sed 's/^/DIRTY /'; exit {_UNCLEAN}; fi"
        )
        ignored = self.ignored_outputs_script(_IGNORED)
        if ignored:
            lines.append(ignored)
        unlock = self.unlock_outputs_script()
        if unlock:
            lines.append(unlock)
        lines.append("""trap 'rm -rf "$stage"' EXIT""")
        return "\n".join(lines) + "\n"

    def _claim_script(self) -> str:
        """Shell text holding the clone for this job before anything in it changes, or exiting :data:`_HELD`.

        The hold is one file created exclusively (a hard link fails if the
        name exists): of two submissions racing for the clone, one gets it
        and the other is refused, where checking for markers and then
        writing one let both in (trial R, 2). A hold whose job's marker is
        gone (a release interrupted between its two removals) is stale and
        taken over once. Markers of jobs held by an older ReproMan (no hold
        file) still refuse. A refused submission leaves the holder's files
        alone: the trap only releases a hold this job took.
        """
        jobid = q(self.job.jobid)
        held, active = HELD_BY, ACTIVE_DIR
        return "\n".join([
            f"mkdir -p {active}; t={held}.$$; printf '%s\\n' {jobid} > \"$t\"",
            f'if ! ln "$t" {held} 2>/dev/null; then',
            f'  h=$(cat {held} 2>/dev/null || :)',
            f'  if [ -n "$h" ] && [ "$h" != {jobid} ] && [ ! -e "{active}/$h" ]; then rm -f {held}; fi',
            f'  if ! ln "$t" {held} 2>/dev/null && [ "$(cat {held} 2>/dev/null)" != {jobid} ]; then',
            f'    rm -f "$t"; echo "ACTIVE $(cat {held} 2>/dev/null)"; exit {_HELD}',
            "  fi",
            "fi",
            'rm -f "$t"',
            f'for f in {active}/*; do if [ -e "$f" ] && [ "${{f##*/}}" != {jobid} ]; then '
            f'rm -f {held}; echo "ACTIVE ${{f##*/}}"; exit {_HELD}; fi; done',
            f": > {active}/{jobid}",
        ])

    # -- fetch -----------------------------------------------------------------------
    def fetch_results(self) -> list[str]:
        """Commit on the resource, download the commits and annexed outputs, merge."""
        job = self.job
        if self.already_merged():
            self.release_clone()
            return self.local_results()
        status = self.final_status()
        failed = len(status.failed)
        spec = self.final_spec(status)
        datasets = self.started_datasets()
        found = self.save_on_resource(self._commit_script(datasets, save_message(job, failed)),
                                      spec.encode()).stdout.splitlines()
        changed = [int(line.split()[1]) for line in found if line.startswith("CHANGED ")]
        kept = self.kept_paths(found)
        keys = []
        for line in found:
            if line.startswith("KEY "):
                index, _, rest = line[4:].partition(" ")
                key, _, obj = rest.partition("\t")
                keys.append((int(index), key, obj))
        for line in found:
            if line.startswith("NEWSUB "):
                lgr.warning(
                    "job %s created subdataset %s; its commits stay in the clone %s on resource %s",
                    job.jobid, line[7:], job.working_directory, job.resource_name,
                )
        stage = self.staging_dir()
        tree = Hierarchy(job.local_directory, datasets)
        with tempfile.TemporaryDirectory(prefix="reproman-datalad-") as tmp:
            pairs: list[tuple[str, str | os.PathLike[str]]] = [
                (posixpath.join(stage, f"r{i}.bundle"), Path(tmp) / f"r{i}.bundle") for i in changed
            ]
            pairs += [
                (posixpath.join(job.working_directory, obj), Path(tmp) / f"k{n}")
                for n, (_i, _k, obj) in enumerate(keys)
            ]
            try:
                self.session.get_many(pairs)
            except (SessionError, OSError) as exc:
                raise OrchestratorError(f"downloading the results of job {job.jobid} failed: {exc}") from exc
            finally:
                self.session.execute_command(["rm", "-rf", stage])
            for i in changed:
                repo = tree.dataset(datasets[i].path)
                if not repo.is_repository():
                    raise OrchestratorError(
                        f"job {job.jobid} changed subdataset {datasets[i].path}, which is no longer installed here",
                        hint=f"Install it with 'datalad get -n {datasets[i].path}', then fetch again.",
                    )
                self._import(repo, Path(tmp) / f"r{i}.bundle", own=datasets[i].path == TOP)
            for n, (i, key, _obj) in enumerate(keys):
                tree.dataset(datasets[i].path).git("annex", "setkey", key, str(Path(tmp) / f"k{n}"))
        self.finish_commit(status, kept)
        kept_aside = self.keep_rerun_results() if job.rerun_of else None
        if kept_aside is not None:
            self.release_clone()
            if failed:
                lgr.warning("job %s: %s; the record is on %s", job.jobid, status.summary(), self.ref)
            return kept_aside
        self.merge_results()
        self.release_clone()
        self.landing_report = guarding.report(job.local_directory, self.record_dir, kept)
        if failed:
            lgr.warning("job %s: %s; the record is in %s", job.jobid, status.summary(), self.record_dir)
        return self.local_results()

    def _commit_script(self, datasets: list[Node], message: str) -> str:
        """Record and save in the clone, then bundle each changed dataset and list the annexed outputs."""
        job = self.job
        stage = self.staging_dir()
        tree = Hierarchy(job.local_directory, datasets)
        outputs = self.outputs()
        by_dataset = tree.split(outputs)
        known = " ".join(q(n.path) for n in datasets if n.path != TOP)
        lines = [
            "set -e",
            f"cd {q(job.working_directory)}",
            self.record_script(message, release=False).rstrip("\n"),
            f"stage={q(stage)}; mkdir -p \"$stage\"",
        ]
        for i, node in enumerate(datasets):
            p = q(node.path)
            # The job's commit is its ref (set by the record script at the top), never HEAD as such: a
            # refetch may find the clone moved on, and HEAD is then another job's commit (trial R, 1).
            body = [
                *([] if node.path == TOP else [f'git -C {p} update-ref {q(self.ref)} "$c"']),
                f"echo 'CHANGED {i}'",
                f"set -- {q(self.ref)}",
                f'if git -C {p} rev-parse -q --verify refs/heads/git-annex >/dev/null; then '
                'set -- "$@" refs/heads/git-annex; fi',
                f'set -- "$@" --not {q(node.commit)}',
                f"if git -C {p} rev-parse -q --verify refs/remotes/{ORIGIN}/git-annex >/dev/null; then "
                f'set -- "$@" refs/remotes/{ORIGIN}/git-annex; fi',
                f'git -C {p} bundle create -q "$stage/r{i}.bundle" "$@"',
            ]
            rels = by_dataset.get(node.path, [])
            if tree.dataset(node.path).has_annex() and (rels or not outputs):
                objects = posixpath.normpath(posixpath.join(node.path, ".git/annex/objects"))
                fmt = q(f"KEY {i} ${{key}}\\t{objects}/${{hashdirmixed}}${{key}}/${{key}}\\n")
                paths = " ".join(q(r) for r in rels)
                body.append(
                    f"(cd {p} && git diff -z --name-only --no-renames --ignore-submodules=all --diff-filter=AMT "
                    f"{q(node.commit)} {q(self.ref)} -- {paths} | xargs -0 -r git annex find --format={fmt} --) "
                    "2>/dev/null || true"
                )
            # New subdatasets the job created are not brought back; say so.
            body.append(
                f"git -C {p} diff --raw --no-abbrev {q(node.commit)} {q(self.ref)} | "
                "while read -r m1 m2 s1 s2 st path; do "
                f'if [ \"$m2\" = 160000 ]; then full={q(node.path)}/$path; full=${{full#./}}; '
                f'case " {known} " in *" $full "*) ;; *) echo "NEWSUB $full" ;; esac; fi; done'
            )
            condition = "true" if node.path == TOP else (
                f'c=$(git -C {p} rev-parse -q --verify {q(self.ref)} || git -C {p} rev-parse HEAD); '
                f'[ "$c" != {q(node.commit)} ]')
            lines.append(f"if {condition}; then\n  " + "\n  ".join(body) + "\nfi")
        return "\n".join(lines) + "\n"

    def release_clone(self) -> None:
        """The results are here (merged, or kept on the job's ref by choice): the clone is free for later jobs.

        Not before: until then the clone's commit on the job's ref may be
        the only copy of the results, and a later job moving the clone on
        was taken for this job's results by the next fetch (trial R, 1).
        """
        self._remove([], "release the clone of")

    def _import(self, repo: LocalDataset, bundle: Path, *, own: bool = False) -> None:
        """Fetch the resource's commit into the dataset's ``refs/reproman/<jobid>``.

        ``own``: the commit must say it records this job (the top dataset's
        does), checked before the ref moves; a ref is never pointed at
        another job's commit.
        """
        heads = repo.git("bundle", "list-heads", str(bundle)).stdout
        if own:
            tips = [line.split()[0] for line in heads.splitlines() if line.split()[1:] == [self.ref]]
            repo.git("fetch", "-q", "--no-recurse-submodules", str(bundle), self.ref)
            said = repo.git("log", "-1", "--format=%B", tips[0], check=False).stdout if tips else ""
            if f"ReproMan job: {self.job.jobid}" not in said.splitlines():
                raise OrchestratorError(
                    f"the commit resource {self.job.resource_name} gave for job {self.job.jobid} "
                    f"({tips[0][:10] if tips else 'none'}) is not that job's; nothing was merged",
                    hint=f"Look at {self.ref} in {self.job.working_directory} there; if the job's commit is "
                    f"gone, forget the job with 'reproman jobs --delete {self.job.jobid}'.",
                )
        refspecs = [f"+{self.ref}:{self.ref}"]
        if " refs/heads/git-annex" in heads:
            refspecs.append(f"+refs/heads/git-annex:refs/remotes/reproman-{self.job.resource_name}/git-annex")
        repo.git("fetch", "-q", "--no-recurse-submodules", str(bundle), *refspecs)

    def abandon(self) -> None:
        """Free the clone for later jobs: what this never-fetched job left in it is discarded, then the hold.

        Only when the job still holds the clone (its marker is there) and
        the clone is ReproMan's own (the default working directory): a job
        deleted unfetched, or refused after staging, would otherwise leave
        its partial outputs there (a full disk, and every later job refused
        for unsaved changes in the clone).
        """
        wd = self.job.working_directory
        if wd and not self.job.parameters.get("working_directory"):
            marker = f"{ACTIVE_DIR}/{self.job.jobid}"
            discard = "git reset -q --hard && git clean -q -fd"
            script = (f"cd {q(wd)} 2>/dev/null || exit 0\n[ -e {q(marker)} ] || exit 0\n{discard}\n"
                      f"git submodule foreach -q --recursive {q(discard)}\n")
            try:
                result = self.session.execute_command(script)
                if result.returncode != 0:
                    lgr.warning("could not discard what job %s left in %s on resource %s: %s", self.job.jobid, wd,
                                self.job.resource_name, result.stderr.strip() or f"exit {result.returncode}")
            except Exception as exc:  # the resource may be gone; this is best effort by contract
                lgr.warning("could not discard what job %s left in %s: %s", self.job.jobid, wd, exc)
        super().abandon()

    def finish_commit(self, status: JobStatus, kept: list[str]) -> None:
        """Hook for the top dataset's commit once it is here (``datalad-pair`` keeps the resource's).

        ``kept``: the dataset's files the commit keeps as they were, though
        subjobs that did not succeed changed them (see :mod:`.guarding`).
        """


class PairRunOrchestrator(PairOrchestrator):
    """Like ``datalad-pair``, but the local commit is a ``datalad run`` record."""

    name = "datalad-pair-run"
    run_record = True

    def finish_commit(self, status: JobStatus, kept: list[str]) -> None:
        """Commit the resource's tree locally with a run record as message.

        The tree is exactly the resource's (outputs, subdataset commits and
        job record), the parent is the commit the job started from, so the
        history reads as if ``datalad run`` had run the job here.
        """
        message = run_message(
            self.job, str(self.job.extra.get("dataset_id", "")), self.exit_code(status), len(status.failed),
            kept=guarding.note(self.record_dir, kept),
        )
        commit = self.local.git(
            "commit-tree", f"{self.ref}^{{tree}}", "-p", self.base, "-F", "-", stdin=message
        ).stdout.strip()
        self.local.git("update-ref", self.ref, commit)
