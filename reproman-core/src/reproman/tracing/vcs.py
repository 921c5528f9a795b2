"""Version-controlled working copies: git and svn.

A file belongs to a working copy when the repository tracks it (untracked
files in a checkout stay in ``files:``, as in the old ReproMan). Files are
grouped by working-copy root on the resource and each repository is asked
a fixed number of questions, all in one remote command.

Field names are the old tool's, plus ``dirty: true`` for working copies with
uncommitted changes (written only when true, so clean specs still load in
the old tool, which rejects unknown fields)::

    name: git
    packages:
      - path: /home/me/project
        files: [analysis.py]
        root_hexsha: 3f1c...      # first commit: identifies the project
        branch: master
        hexsha: 9ab0...
        describe: v1.0-3-g9ab0
        tracked_remote: origin
        remotes: {origin: {url: https://..., contains: true}}

    name: svn
    packages:
      - {path, files, revision, url, root_url, relative_url, uuid}
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from reproman.errors import TracingError
from reproman.tracing.pip import prune
from reproman.tracing.pyscripts import run_script
from reproman.tracing.tracer import Comparison, PackageDifference, Tracer, TraceResult

if TYPE_CHECKING:
    from reproman.resources.session import Session

lgr = logging.getLogger(__name__)


class _VcsTracer(Tracer):
    #: Fields that identify the same project on both sides of a diff.
    identity_field: ClassVar[str] = ""
    #: Field holding the checked-out revision.
    revision_field: ClassVar[str] = ""

    def identify(self, paths: Sequence[str]) -> TraceResult:
        if not paths:
            return TraceResult()
        answer = run_script(self.session, "vcs", {"vcs": self.spec_name, "paths": list(paths)})
        if not answer["packages"]:
            return TraceResult()
        entry = prune({"name": self.spec_name, "packages": answer["packages"]})
        return TraceResult(distributions=[entry], claimed=frozenset(answer["claimed"]))

    @classmethod
    def _pairs(
        cls, left: Mapping[str, Any], right: Mapping[str, Any]
    ) -> list[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]]:
        """Pair repositories by path, then the rest by identity (same project elsewhere)."""
        lrepos = {str(r.get("path")): r for r in left.get("packages") or []}
        rrepos = {str(r.get("path")): r for r in right.get("packages") or []}
        pairs: list[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]] = []
        for path in list(lrepos):
            if path in rrepos:
                pairs.append((path, lrepos.pop(path), rrepos.pop(path)))
        for path, repo in list(lrepos.items()):
            ident = repo.get(cls.identity_field)
            match = next((p for p, r in rrepos.items() if ident and r.get(cls.identity_field) == ident), None)
            if match is not None:
                pairs.append((path, lrepos.pop(path), rrepos.pop(match)))
        pairs.extend((p, r, None) for p, r in lrepos.items())
        pairs.extend((p, None, r) for p, r in rrepos.items())
        return sorted(pairs, key=lambda t: t[0])

    @classmethod
    def compare(cls, left: Mapping[str, Any], right: Mapping[str, Any]) -> Comparison:
        """A repository differs when its revision, branch or dirty state differs."""
        differences: list[PackageDifference] = []
        for path, a, b in cls._pairs(left, right):
            if a is None or b is None:
                differences.append(PackageDifference(
                    key=path, left=_s(a.get(cls.revision_field)) if a else None,
                    right=_s(b.get(cls.revision_field)) if b else None))
                continue
            details = []
            for field in ("branch", "url"):
                if (a.get(field) or b.get(field)) and a.get(field) != b.get(field):
                    details.append(f"{field}: {a.get(field)} vs {b.get(field)}")
            if bool(a.get("dirty")) != bool(b.get("dirty")):
                details.append(f"dirty: {bool(a.get('dirty'))} vs {bool(b.get('dirty'))}")
            if a.get("path") != b.get("path"):
                details.append(f"path: {a.get('path')} vs {b.get('path')}")
            ra, rb = a.get(cls.revision_field), b.get(cls.revision_field)
            if ra != rb or details:
                differences.append(PackageDifference(key=path, left=_s(ra), right=_s(rb), detail="; ".join(details)))
        return Comparison(name=cls.spec_name, differences=differences)

    @classmethod
    def satisfies(cls, requirement: Mapping[str, Any], candidate: Mapping[str, Any]) -> Comparison:
        differences: list[PackageDifference] = []
        for path, req, cand in cls._pairs(requirement, candidate):
            if req is None:
                continue
            if cand is None:
                differences.append(PackageDifference(key=path, left=_s(req.get(cls.revision_field)), right=None,
                                                     detail="missing"))
                continue
            problem = cls._shortfall(req, cand)
            if problem:
                differences.append(PackageDifference(key=path, left=_s(req.get(cls.revision_field)),
                                                     right=_s(cand.get(cls.revision_field)), detail=problem))
        return Comparison(name=cls.spec_name, differences=differences)

    @classmethod
    def _shortfall(cls, req: Mapping[str, Any], cand: Mapping[str, Any]) -> str:
        raise NotImplementedError


class GitTracer(_VcsTracer):
    """Git working copies (root, commit, branch, remotes, dirty state)."""

    spec_name = "git"
    identity_field = "root_hexsha"
    revision_field = "hexsha"

    @classmethod
    def _shortfall(cls, req: Mapping[str, Any], cand: Mapping[str, Any]) -> str:
        """Satisfied by the same commit or a descendant of it, without uncommitted changes.

        Ancestry is not in the spec, so it is asked of a clone that ``diff``
        can read locally (the candidate's path, then the requirement's); with
        none, only the same commit satisfies.
        """
        want, have = req.get("hexsha"), cand.get("hexsha")
        if req.get("root_hexsha") and cand.get("root_hexsha") and req["root_hexsha"] != cand["root_hexsha"]:
            return "a different project (root commit differs)"
        if cand.get("dirty") and not req.get("dirty"):
            return "has uncommitted changes"
        if not want or want == have:
            return ""
        if not have:
            return "no commit"
        for where in (cand.get("path"), req.get("path")):
            verdict = _is_ancestor(str(where), str(want), str(have)) if where else None
            if verdict is True:
                return ""
            if verdict is False:
                return "not a descendant of the required commit"
        return "a different commit (ancestry unknown: no local clone to ask)"

    @classmethod
    def install(cls, session: Session, entry: Mapping[str, Any]) -> None:
        """Clone each repository at its recorded path and check out the recorded commit.

        The remote is the tracked one if it contains the commit, else
        ``origin``, else any remote. An existing clone of the same project
        (same root commit) is fetched and checked out if clean; anything
        else at the path is left alone with an error.
        """
        problems = []
        for repo in entry.get("packages") or []:
            try:
                _install_git_repo(session, repo)
            except TracingError as exc:
                problems.append(str(exc))
        if problems:
            raise TracingError("git install incomplete: " + " | ".join(problems))


class SvnTracer(_VcsTracer):
    """Subversion working copies (root, revision, URL, repository UUID)."""

    spec_name = "svn"
    identity_field = "uuid"
    revision_field = "revision"

    @classmethod
    def _shortfall(cls, req: Mapping[str, Any], cand: Mapping[str, Any]) -> str:
        """Satisfied by the same repository and path at the same or a later revision.

        Subversion revisions of one repository are totally ordered, so a later
        revision of the same URL contains the required one.
        """
        if req.get("uuid") and cand.get("uuid") and req["uuid"] != cand["uuid"]:
            return "a different repository (uuid differs)"
        if req.get("relative_url") and cand.get("relative_url") and req["relative_url"] != cand["relative_url"]:
            return f"a different path in the repository ({cand.get('relative_url')})"
        if cand.get("dirty") and not req.get("dirty"):
            return "has uncommitted changes"
        want, have = req.get("revision"), cand.get("revision")
        if want is None or want == have:
            return ""
        try:
            if have is not None and int(have) >= int(want):
                return ""
        except (TypeError, ValueError):
            return "revisions cannot be compared"
        return "older revision"

    @classmethod
    def install(cls, session: Session, entry: Mapping[str, Any]) -> None:
        """``svn checkout -r REV URL PATH`` for each working copy (update if already there)."""
        for repo in entry.get("packages") or []:
            path, url, rev = repo.get("path"), repo.get("url"), repo.get("revision")
            if not path or not url:
                raise TracingError(f"svn entry {path or url or '?'} lacks 'path' or 'url'")
            revision = ["-r", str(rev)] if rev is not None else []
            if session.isdir(f"{path}/.svn"):
                session.execute_command(["svn", "update", "--non-interactive", *revision, str(path)], check=True)
            else:
                session.execute_command(["svn", "checkout", "--non-interactive", *revision, str(url), str(path)],
                                        check=True)


def _install_git_repo(session: Session, repo: Mapping[str, Any]) -> None:
    path, hexsha = repo.get("path"), repo.get("hexsha")
    if not path:
        raise TracingError("a git entry without 'path' cannot be installed")
    remotes: Mapping[str, Mapping[str, Any]] = repo.get("remotes") or {}
    if repo.get("dirty"):
        lgr.warning("git %s: was traced with uncommitted changes, which cannot be restored", path)
    containing = [n for n, r in remotes.items() if r.get("contains") and r.get("url")]
    usable = containing or [n for n, r in remotes.items() if r.get("url")]
    remote = next((n for n in (repo.get("tracked_remote"), "origin") if n in usable), usable[0] if usable else None)

    def git(*args: str, check: bool = True) -> Any:
        return session.execute_command(["git", "-C", str(path), *args], check=check)

    cloned = False
    if session.exists(f"{path}/.git"):
        root = git("rev-list", "--max-parents=0", "HEAD", check=False).stdout.split()
        if repo.get("root_hexsha") and root and root[-1] != repo["root_hexsha"]:
            raise TracingError(f"{path} holds a different git project; not touching it")
        if hexsha and not git("cat-file", "-e", f"{hexsha}^{{commit}}", check=False).ok and remote:
            git("fetch", remote)
    elif session.exists(str(path)) and session.execute_command(["sh", "-c", 'ls -A "$1" | grep -q .', "sh",
                                                                 str(path)]).ok:
        raise TracingError(f"{path} exists and is not a git repository; not touching it")
    else:
        if remote is None:
            raise TracingError(f"{path}: no remote URL recorded; cannot clone")
        url = str(remotes[remote]["url"])
        lgr.info("git %s: cloning %s (%s)", path, url, remote)
        session.execute_command(["git", "clone", "-q", "-o", remote, url, str(path)], check=True)
        cloned = True
    present = set(git("remote", check=False).stdout.split())
    for name, info in remotes.items():
        if name not in present and info.get("url"):
            if not git("remote", "add", name, str(info["url"]), check=False).ok:
                lgr.warning("git %s: could not add remote %s", path, name)
    if not hexsha:
        return
    if not git("cat-file", "-e", f"{hexsha}^{{commit}}", check=False).ok:
        raise TracingError(f"{path}: commit {hexsha} is in none of the recorded remotes")
    if git("status", "--porcelain", "--untracked-files=no", check=False).stdout.strip():
        raise TracingError(f"{path} has uncommitted changes; not checking out {hexsha}")
    branch = repo.get("branch")
    if branch:
        current = git("symbolic-ref", "--short", "-q", "HEAD", check=False).stdout.strip()
        exists = git("rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False)
        if cloned or current == branch or not exists.ok or exists.stdout.strip() == hexsha:
            git("checkout", "-q", "-B", str(branch), str(hexsha))
            if repo.get("tracked_remote") and repo["tracked_remote"] in set(git("remote").stdout.split()):
                git("config", f"branch.{branch}.remote", str(repo["tracked_remote"]))
                git("config", f"branch.{branch}.merge", f"refs/heads/{branch}")
            return
        lgr.warning("git %s: branch %s exists at another commit; checking out %s detached", path, branch, hexsha)
    git("checkout", "-q", "--detach", str(hexsha))


def _is_ancestor(path: str, ancestor: str, descendant: str) -> bool | None:
    """Ask a local clone whether ``ancestor`` is an ancestor of ``descendant`` (None: cannot tell)."""
    if not os.path.isdir(path):
        return None
    try:
        proc = subprocess.run(["git", "-C", path, "merge-base", "--is-ancestor", ancestor, descendant],
                              capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode in (0, 1):
        return proc.returncode == 0
    return None


def _s(value: Any) -> str | None:
    return None if value is None else str(value)
