"""Where fetched files land: the one set of rules every backend and orchestrator obeys.

A transfer from a resource never writes into the user's files directly. The
backend fills a fresh, empty staging directory (see
:meth:`reproman.resources.session.Session.get_many`); then :func:`land` moves
what arrived into place under these rules, which exist because ReproMan once
deleted users' files:

* **merge, never delete**: an incoming directory is merged into an existing
  local one; local paths the transfer does not carry are left alone, so
  ``-o .`` or ``-o results`` means "add what the job wrote there";
* **no type changes**: an incoming file where a local directory is (or the
  reverse) is a conflict, and all conflicts are reported, with both paths,
  before anything is written;
* **edits are kept**: with :attr:`Landing.changed_after` set (a job's
  submission stamp), a local file that changed after that moment and differs
  from the incoming one stays as it is; the incoming copy goes to
  :attr:`Landing.keep_dir` and the report names both (the caller tells the
  user, once; the landing logs them at debug level only);
* **a failure never replaces a result**: a local file at or under one of
  :attr:`Landing.guarded` (the outputs of subjobs that did not succeed)
  that differs from the incoming one is kept the same way, whenever it
  changed and even with ``overwrite``: what a failed command left (an empty
  or half-written file) must not take the place of a good earlier result;
* **a failure's file is no edit**: where a guarded output lands with no local
  file in the way, the report says so (:attr:`LandingReport.from_failures`);
  a later landing asks :attr:`Landing.left_by_failure` whether a local file is
  still exactly what such a landing left, and replaces it even where the
  changed-after rule (or the guard) would keep it, since it is nobody's edit
  and nobody's result;
* **version control and ReproMan's records are never written**: a ``.git``
  or ``.reproman`` directory inside an incoming tree is skipped (and the user
  told), so a job's working directory cannot graft its repository onto the
  user's or rewrite the records of earlier jobs;
* **nothing lands outside the destination**: with a root set (a job's
  working directory), a local symbolic link that would carry a write outside
  that root, or into a ``.git`` or ``.reproman`` directory, is a conflict,
  reported before anything is written. A job can make such a link itself
  (its outputs arrive as links), so following it on the next fetch would let
  one job write anywhere the user can;
* files are replaced by a rename (never half-written), keep their modes, and
  belong to the local user; a directory with nothing local in its way (a
  job's new log directory, a new output tree) is renamed into place whole.

Symbolic links that arrive are created as links and never followed. A local
link where a file arrives is replaced by that file, never written through
(a job may have made the link, to any file of yours); a local link to a
directory is merged into only where it stays inside the root: a user who
keeps ``results/`` on a scratch disk fetches into it by naming that
directory (``cd`` there), not through a link.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import attrs

from reproman.errors import OutputConflictError, SessionError

lgr = logging.getLogger(__name__)

#: Directory names never written into locally from an incoming tree.
SKIPPED_NAMES = frozenset({".git", ".reproman"})
#: The one file ReproMan keeps in a ``.reproman`` directory of a working directory the user named
#: (:mod:`reproman.jobs.workdir_hold`): skipping a directory holding only it is no news to the user.
WORKDIR_HOLD_NAME = "held-by"


@attrs.frozen(kw_only=True)
class Landing:
    """How fetched files may replace local ones.

    ``changed_after`` is a ``st_ctime_ns`` value taken from the local file
    system (see :func:`stamp`): a local file whose ctime is at or after it,
    and whose content differs from the incoming file, is kept and the incoming
    file goes to ``keep_dir`` instead (with its path relative to the landing
    destination's root, ``keep_root``). ``overwrite`` replaces such files anyway.
    """

    changed_after: int | None = None
    keep_dir: Path | None = None
    keep_root: Path | None = None
    overwrite: bool = False
    #: Destinations under these directories are never protected (ReproMan's own records).
    exempt: tuple[Path, ...] = ()
    #: Local paths (absolute, normalised) owed by subjobs that did not succeed: an existing local file at
    #: or under one is never replaced by a different incoming one, whatever ``overwrite`` says.
    guarded: frozenset[str] = frozenset()
    #: Whether the local file at a path (with its ``lstat``) is still exactly what a subjob that did not
    #: succeed left there, where no local file was (see :attr:`LandingReport.from_failures`): such a file
    #: is replaced by a different incoming one even where :attr:`changed_after` or :attr:`guarded` would keep it.
    left_by_failure: Callable[[Path, os.stat_result], bool] | None = None
    #: Paths on the resource (and everything under them) that are deleted right after this fetch.
    #: A backend whose "resource" is this machine may hard-link those instead of copying; any other
    #: source must be copied: a link would tie the user's result to a file that a later job, or an
    #: edit on either side, can change in place.
    linkable: tuple[str, ...] = ()

    def may_link(self, source: str) -> bool:
        """Whether the resource's ``source`` goes away after this fetch (so a hard link shares nothing)."""
        return any(source == p or source.startswith(p.rstrip("/") + "/") for p in self.linkable)

    def guards(self, path: Path) -> bool:
        """Whether ``path`` is, or is under, an output of a subjob that did not succeed.

        Looked up ancestor by ancestor (a set per path, not a scan of every
        guarded output): a 1,000-subjob batch guards up to 1,000 paths.
        """
        if not self.guarded:
            return False
        current = os.path.abspath(path)
        while True:
            if current in self.guarded:
                return True
            parent = os.path.dirname(current)
            if parent == current:
                return False
            current = parent

    def protects(self, path: Path) -> bool:
        """Whether a local file at ``path`` is subject to the changed-after rule at all."""
        if self.overwrite or self.changed_after is None:
            return False
        return not self.exempts(path)

    def exempts(self, path: Path) -> bool:
        """Whether ``path`` is in ReproMan's own records (:attr:`exempt`), which no rule protects."""
        absolute = path.absolute()
        return any(absolute == e or e in absolute.parents for e in (p.absolute() for p in self.exempt))


@attrs.frozen(kw_only=True)
class KeptFile:
    """A local file left alone: it changed after the job was submitted, or a subjob that did not succeed owes it."""

    local: Path
    fetched: Path
    #: Kept because it is guarded (see :attr:`Landing.guarded`), not because it was edited.
    guarded: bool = False


@attrs.define(kw_only=True)
class LandingReport:
    """What :func:`land` did: files written, files kept, entries skipped."""

    written: list[Path] = attrs.Factory(list)
    kept: list[KeptFile] = attrs.Factory(list)
    skipped: list[Path] = attrs.Factory(list)
    #: Among :attr:`written`: files at or under a guarded output that landed where no local file was
    #: (what a subjob that did not succeed left), so that a later landing need not take them for the user's.
    from_failures: list[Path] = attrs.Factory(list)
    #: Among :attr:`written`: files that replaced one :attr:`Landing.left_by_failure` recognised.
    replaced_failures: list[Path] = attrs.Factory(list)

    def extend(self, other: LandingReport) -> None:
        self.written += other.written
        self.kept += other.kept
        self.skipped += other.skipped
        self.from_failures += other.from_failures
        self.replaced_failures += other.replaced_failures


def stamp(directory: str | os.PathLike[str]) -> int:
    """A ctime taken from ``directory``'s own file system clock, for :attr:`Landing.changed_after`.

    Comparing a file's ctime with this machine's clock is wrong on network
    file systems (the server's clock sets ctime), so a throwaway file is
    created where outputs will land and its ctime is the stamp. Falls back
    to the local clock when the directory is not writable.
    """
    import time

    try:
        with tempfile.TemporaryFile(dir=directory, prefix=".reproman-stamp-") as handle:
            return os.fstat(handle.fileno()).st_ctime_ns
    except OSError:
        return time.time_ns()


STAGING_PREFIX = ".reproman-incoming-"
#: The file inside a staging directory that proves ReproMan made it (see :func:`_mark`).
STAGING_MARKER = ".reproman-staging-owner"
#: A marker is a few dozen bytes; anything larger was not written by :func:`_mark`.
_MARKER_LIMIT = 4096


def staging_dir(destinations: Sequence[Path]) -> Path:
    """A fresh hidden directory on the destinations' file system, so landing is a rename, not a copy.

    Its name carries this host and process, and it holds a marker file
    binding it to this very directory (:func:`_mark`). Staging directories
    left there by a fetch whose process is gone (``kill -9``, a crash, a lost
    terminal) are removed first, since nothing else would ever free that
    space, but only those carrying a valid marker: a name alone proves
    nothing, and a user's directory that merely looks like one is never touched.
    """
    anchor = _nearest_existing(destinations[0].parent if destinations else Path.cwd())
    owner = f"{_host()}-{os.getpid()}-"
    _remove_abandoned(anchor)
    try:
        path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX + owner, dir=anchor))
    except OSError:
        path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX.lstrip(".") + owner))
    _mark(path)
    return path


def _host() -> str:
    import socket

    return socket.gethostname().replace("-", "_") or "localhost"


def _marker_text(path: Path, st: os.stat_result) -> bytes:
    """What the marker of the directory ``path`` (whose lstat is ``st``) must say.

    It names the directory and its inode: a copy, a rename target or a
    user's directory of the same name has another inode, so only the
    directory :func:`staging_dir` created can carry a matching marker.
    """
    return f"reproman staging directory\nname: {path.name}\ninode: {st.st_ino}\nuid: {st.st_uid}\n".encode()


def _mark(path: Path) -> None:
    """Write the ownership marker into a staging directory just created (best effort: unmarked is never swept)."""
    try:
        st = os.lstat(path)
        fd = os.open(path / STAGING_MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, _marker_text(path, st))
        finally:
            os.close(fd)
    except OSError as exc:
        lgr.debug("could not mark staging directory %s: %s", path, exc)


def _ours(path: Path) -> bool:
    """Whether ``path`` is a staging directory ReproMan created: a real directory of ours with its marker."""
    try:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            return False
        fd = os.open(path / STAGING_MARKER, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            marker = os.fstat(fd)
            if not stat.S_ISREG(marker.st_mode) or marker.st_uid != st.st_uid or marker.st_size > _MARKER_LIMIT:
                return False
            content = os.read(fd, _MARKER_LIMIT + 1)
        finally:
            os.close(fd)
    except OSError:
        return False
    return content == _marker_text(path, st)


@contextlib.contextmanager
def writing_into(stage: Path) -> Iterator[None]:
    """Hold ``stage`` (a staging directory of another process) while this process fills it.

    A session host fills the staging directory of the command that asked
    for the fetch; that command may be killed or interrupted meanwhile.
    The shared lock on the marker keeps every remover (:func:`remove_staging`:
    the command's own clean-up, the next fetch's sweep) away until the
    writing is over: removing a tree that is still being written leaves
    directories recreated without a marker, which nothing would ever remove.
    A staging directory that is already gone (or not proven ours) is refused,
    never recreated.
    """
    import fcntl

    if not _ours(stage):
        raise SessionError(f"the staging directory {stage} is gone (the command that asked for the files ended)")
    fd = os.open(stage / STAGING_MARKER, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if not _ours(stage):  # removed between the check and the lock
            raise SessionError(f"the staging directory {stage} is gone (the command that asked for the files ended)")
        yield
    finally:
        os.close(fd)


def remove_staging(stage: Path) -> bool:
    """Remove a staging directory unless another process still writes into it; whether it is gone.

    A marked directory is removed only while holding its marker's exclusive
    lock, which no writer (:func:`writing_into`) holds then; a writer that
    outlives the command it served removes the directory itself when done.
    An unmarked one (its marker could not be written) is removed only by the
    process that created it, which is the only one that ever writes into it.
    """
    import fcntl

    try:
        fd = os.open(stage / STAGING_MARKER, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        shutil.rmtree(stage, ignore_errors=True)
        return not os.path.lexists(stage)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lgr.debug("%s is still being written by another process: it removes it when done", stage)
            return False
        shutil.rmtree(stage, ignore_errors=True)
    finally:
        os.close(fd)
    return not os.path.lexists(stage)


def _remove_abandoned(directory: Path) -> None:
    """Staging directories of this host's fetches whose process no longer exists, proven ours by their marker."""
    host = _host()
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries if e.name.startswith(STAGING_PREFIX) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for name in names:
        parts = name[len(STAGING_PREFIX):].split("-")
        if len(parts) < 3 or parts[0] != host or not parts[1].isdigit():
            continue  # another machine's (a shared file system), or an older name: not ours to judge
        pid = int(parts[1])
        if pid == os.getpid() or _alive(pid):
            continue
        if not _ours(directory / name):
            lgr.debug("leaving %s alone: no ReproMan staging marker in it", directory / name)
            continue
        if remove_staging(directory / name):
            lgr.info("removed %s, left by an interrupted fetch (process %d)", directory / name, pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.is_dir():
        path = path.parent
    return path


def _kind(st: os.stat_result | None) -> str:
    if st is None:
        return "absent"
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    return "file"


def _lstat(path: Path) -> os.stat_result | None:
    """``lstat`` of ``path``, or ``None`` where nothing can be: a missing path, or one under a file or a loop.

    A symbolic link in the path that loops (``ln -s out out``) means nothing
    can be written there either; the planner then finds that link among the
    ancestors (:func:`_parent_ok`) and reports it as a conflict, before anything is written.
    """
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise


def _what(path: Path, st: os.stat_result) -> str:
    """What is in the way at ``path``, for a conflict: its kind, and a link that loops said as such."""
    if stat.S_ISLNK(st.st_mode):
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "a symbolic link here that loops (it leads back to itself)"
    return f"a {_kind(st)} here"


def _is_dir(path: Path) -> bool:
    """A directory here, following a local symlink (the user's own) to one."""
    return path.is_dir()


@attrs.frozen
class _Step:
    source: Path
    target: Path
    directory: bool
    #: A directory whose target is absent moves in one rename: its files (relative paths, for the
    #: report) and the subdirectories (relative, "" for itself) that need ``u+rwx`` added.
    whole: _Tree | None = None


@attrs.frozen
class _Tree:
    files: tuple[str, ...]
    fix_modes: tuple[str, ...]
    #: The symbolic links among ``files``.
    links: tuple[str, ...] = ()


def _scan_tree(staged: Path) -> _Tree | None:
    """What a staged directory holds, or ``None`` if it must land entry by entry (it has a skipped name)."""
    files: list[str] = []
    fix: list[str] = []
    links: list[str] = []
    if stat.S_IMODE(os.lstat(staged).st_mode) & 0o700 != 0o700:
        fix.append("")
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(os.path.join(staged, rel) if rel else staged) as entries:
            for entry in entries:
                if entry.name in SKIPPED_NAMES:
                    return None
                path = os.path.join(rel, entry.name) if rel else entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append(path)
                    if stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode) & 0o700 != 0o700:
                        fix.append(path)
                else:
                    files.append(path)
                    if entry.is_symlink():
                        links.append(path)
    return _Tree(files=tuple(files), fix_modes=tuple(fix), links=tuple(links))


def _walk(staged: Path, target: Path, skipped: list[Path], whole: bool = True) -> Iterator[_Step]:
    """Every staged entry with its target, parents before children; staged symlinks are not followed.

    With ``whole``, a staged directory whose target does not exist (nothing
    local to merge with, protect or confuse with another type) is one step:
    a 1,000-subjob batch's logs are 4,000 files that would otherwise cost a
    ``stat`` and a rename each.
    """
    st = _lstat(staged)
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        yield _Step(staged, target, False)
        return
    if whole and _lstat(target) is None:
        tree = _scan_tree(staged)
        if tree is not None:
            yield _Step(staged, target, True, whole=tree)
            return
    yield _Step(staged, target, True)
    with os.scandir(staged) as entries:
        names = sorted(entry.name for entry in entries)
    for name in names:
        if name in SKIPPED_NAMES:
            if not (name == ".reproman" and _only_hold(staged / name)):
                skipped.append(target / name)
            continue
        yield from _walk(staged / name, target / name, skipped, whole)


def _only_hold(staged: Path) -> bool:
    """Whether a staged ``.reproman`` directory holds nothing but a working directory's hold."""
    try:
        return not staged.is_symlink() and os.listdir(staged) == [WORKDIR_HOLD_NAME]
    except OSError:
        return False


class _Confinement:
    """Where writes may go: inside ``root`` once local symbolic links are resolved, never into skipped names.

    Works on strings, not :class:`Path`: it runs once per landed file, and a
    1,000-subjob batch lands some 6,000 (outputs and per-subjob logs).
    """

    def __init__(self, root: Path | None, exempt: Sequence[Path] = ()) -> None:
        self.root = os.path.realpath(root) if root is not None else None
        self.exempt = tuple(os.path.realpath(e) for e in exempt)
        #: realpath of parent directories already looked at (a 10,000-file tree has few parents).
        self._parents: dict[str, str] = {}

    def problem(self, target: Path, local: os.stat_result | None, follow: bool = True) -> str | None:
        """Why writing ``target`` (whose ``lstat`` is ``local``) would leave the root, or ``None``.

        ``follow``: a link at ``target`` itself is written through (a directory merged into);
        otherwise the link is what gets replaced, wherever it points.
        """
        if self.root is None:
            return None
        text = os.fspath(target)
        parent, name = os.path.split(text)
        real_parent = self._parents.get(parent)
        if real_parent is None:
            real_parent = self._parents[parent] = os.path.realpath(parent)
        real = os.path.join(real_parent, name)
        if follow and real_parent == parent:
            if local is not None and stat.S_ISLNK(local.st_mode):
                real = os.path.realpath(real)
        elif follow and os.path.islink(real):
            real = os.path.realpath(real)
        if any(_within(real, e) for e in self.exempt):
            return None
        if not _within(real, self.root):
            return f"{target} leads to {real} through a symbolic link, outside {self.root}"
        if not follow and local is not None and stat.S_ISLNK(local.st_mode):
            pointed = os.path.realpath(real)
            if _within(pointed, self.root) and SKIPPED_NAMES & set(pointed[len(self.root):].split(os.sep)):
                # A file's link into .git is how git-annex keeps a file: replacing it behind
                # git-annex's back is for 'datalad unlock', not for a fetch.
                return f"{target} leads into {pointed} through a symbolic link (never written by a fetch)"
        inside = real[len(self.root):].split(os.sep)
        named = [part for part in inside if part in SKIPPED_NAMES]
        if named:
            absolute = os.path.abspath(text)
            plain = absolute[len(self.root):].split(os.sep) if _within(absolute, self.root) else []
            if named[0] in plain:
                return f"{target} is inside a {named[0]} directory, which a fetch never writes"
            return f"{target} leads into {real} through a symbolic link (never written by a fetch)"
        return None


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def plan(pairs: Sequence[tuple[Path, Path]], root: Path | None = None,
         exempt: Sequence[Path] = (), whole: bool = True) -> tuple[list[_Step], list[Path]]:
    """All steps for ``(staged, destination)`` pairs, or :class:`OutputConflictError` naming every conflict.

    With ``root``, every write must stay inside it after local symbolic links
    are resolved (``exempt`` directories, ReproMan's own record, may be elsewhere).
    """
    steps: list[_Step] = []
    skipped: list[Path] = []
    conflicts: list[str] = []
    confinement = _Confinement(root, exempt)
    #: Directories known to exist (or to be created by an earlier step): no need to look again.
    directories: set[Path] = set()
    for staged, dest in pairs:
        for step in _walk(staged, dest, skipped, whole):
            local = _lstat(step.target)
            escape = confinement.problem(step.target, local, follow=step.directory)
            if escape is not None:
                conflicts.append(escape)
                continue
            if local is None:
                parent = step.target.parent
                if parent not in directories:
                    if not _parent_ok(step.target, conflicts):
                        continue
                    directories.add(parent)
            elif step.directory and not _is_dir(step.target):
                conflicts.append(f"{step.target} is {_what(step.target, local)}, the job made a directory")
            elif not step.directory and stat.S_ISDIR(local.st_mode):
                # A real directory only: a local link (to a directory too) is replaced, never written through.
                conflicts.append(f"{step.target} is a directory here, the job made a {_kind(_lstat(step.source))}")
            if step.directory:
                directories.add(step.target)
            steps.append(step)
    if conflicts:
        shown = "; ".join(conflicts[:5]) + (f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else "")
        raise OutputConflictError(f"{shown}", hint="Nothing was changed. Move the local path away and fetch again.")
    return steps, skipped


def _parent_ok(target: Path, conflicts: list[str]) -> bool:
    """A missing target whose nearest existing ancestor is not a directory cannot be created."""
    parent = target.parent
    while True:
        st = _lstat(parent)
        if st is not None:
            if not _is_dir(parent):
                message = f"{parent} is {_what(parent, st)}, the job put {target} inside it"
                if message not in conflicts:
                    conflicts.append(message)
                return False
            return True
        if parent == parent.parent:
            return True
        parent = parent.parent


def land(pairs: Sequence[tuple[Path, Path]], landing: Landing | None = None) -> LandingReport:
    """Move staged trees to their destinations under the module's rules; return what happened.

    ``pairs`` are ``(staged path, destination)``; staged paths are consumed
    (moved). Conflicts raise :class:`OutputConflictError` before anything is
    written. An ``OSError`` while writing (disk full, permissions) becomes a
    :class:`SessionError` naming the path; what landed before it stays, and
    landing the same files again later is harmless.
    """
    landing = landing or Landing()
    steps, skipped = plan(pairs, landing.keep_root, landing.exempt)
    report = LandingReport(skipped=skipped)
    if skipped:
        shown = ", ".join(str(p) for p in skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        lgr.warning("not fetched: %s (a fetch never writes into .git or .reproman directories)", shown)
    inward = _warn_outward_links(steps, landing.keep_root)
    made: set[Path] = set()
    for step in steps:
        try:
            _apply(step, landing, report, made)
        except OSError as exc:
            where = exc.filename or step.target
            reason = exc.strerror or str(exc)
            if exc.errno == errno.ENOSPC:
                reason = "no space left on device"
            raise SessionError(f"cannot write {where}: {reason}") from None
    dangling = [f"{target} -> {pointed}" for target, pointed in inward
                if os.path.islink(target) and not os.path.exists(target)]
    if dangling:
        shown = "; ".join(dangling[:3]) + (f"; and {len(dangling) - 3} more" if len(dangling) > 3 else "")
        lgr.warning("fetched as symbolic links to nothing here (the files they point to were not among the "
                    "outputs): %s", shown)
    return report


def _warn_outward_links(steps: Sequence[_Step], root: Path | None) -> list[tuple[str, str]]:
    """Say which arriving symbolic links point outside ``root``: they land as links, not copies.

    A job may link its output to a file of its own working directory or anywhere else; what
    arrives is that link, so writing "the result" writes the file it points to, which a later
    ``--delete`` may remove. Landed as they are (they are what the job made), but said.
    Returns the other arriving links, (destination, what it points to): once landed, those
    pointing to nothing are said too (their targets were not outputs).
    """
    if root is None:
        return []
    top = os.path.realpath(root)
    outward: list[str] = []
    inward: list[tuple[str, str]] = []
    for step in steps:
        if step.whole is not None:
            pairs = [(os.path.join(step.source, rel), os.path.join(step.target, rel)) for rel in step.whole.links]
        elif not step.directory and os.path.islink(step.source):
            pairs = [(os.fspath(step.source), os.fspath(step.target))]
        else:
            continue
        for source, target in pairs:
            pointed = os.readlink(source)
            where = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(target)), pointed))
            if not _within(os.path.realpath(where), top):
                outward.append(f"{target} -> {pointed}")
            else:
                inward.append((target, pointed))
    if outward:
        shown = "; ".join(outward[:3]) + (f"; and {len(outward) - 3} more" if len(outward) > 3 else "")
        lgr.warning("fetched as symbolic links pointing outside %s (what the job made; writing through one "
                    "changes the file it points to, not a copy): %s", root, shown)
    return inward


def _apply(step: _Step, landing: Landing, report: LandingReport, made: set[Path]) -> None:
    """Land one step; ``made`` holds the directories this landing has made or found (a stat each saved)."""
    target = step.target
    if step.whole is not None:
        _apply_whole(step, step.whole, landing, report, made)
        return
    if step.directory:
        if not _is_dir(target):
            target.mkdir(parents=True, exist_ok=True)
            mode = stat.S_IMODE(os.lstat(step.source).st_mode)
            os.chmod(target, mode | 0o700)
        made.add(target)
        return
    if target.parent not in made:
        target.parent.mkdir(parents=True, exist_ok=True)
        made.add(target.parent)
    # A local link where a file arrives is replaced, never written through: a job can make such a
    # link itself (outputs arrive as links), and a later fetch must not overwrite what it points to.
    local = _lstat(target)
    why = _protected(target, local, step.source, landing) if local is not None else None
    replaces_failure = why == _FAILURES
    if replaces_failure:
        report.replaced_failures.append(step.target)
        why = None
    if why is not None:
        kept = _keep(step.source, step.target, landing)
        report.kept.append(KeptFile(local=step.target, fetched=kept, guarded=why == _GUARDED))
        # Said to the user once, by whoever asked for the fetch (the CLI's summary names the job, says why
        # and what to do, and bounds the list); a warning here as well printed every kept file twice.
        lgr.debug("kept the local %s; the job's version is %s", step.target, kept)
        return
    _move(step.source, target)
    report.written.append(step.target)
    if (local is None or replaces_failure) and _from_failure(target, landing):
        report.from_failures.append(step.target)


def _from_failure(target: Path, landing: Landing) -> bool:
    """Whether ``target`` is at or under a guarded output (and not in ReproMan's records)."""
    return landing.guards(target) and not landing.exempts(target)


def _apply_whole(step: _Step, tree: _Tree, landing: Landing, report: LandingReport, made: set[Path]) -> None:
    """Rename a staged directory into place where nothing was; entry by entry if that fails.

    The rename fails rather than replace anything that appeared since the
    plan (a non-empty directory, a file), and across file systems; the
    entries are then planned and landed one by one under every rule.
    """
    target = step.target
    if target.parent not in made:
        target.parent.mkdir(parents=True, exist_ok=True)
        made.add(target.parent)
    try:
        os.rename(step.source, target)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise
        steps, skipped = plan([(step.source, target)], landing.keep_root, landing.exempt, whole=False)
        report.skipped += skipped
        for inner in steps:
            _apply(inner, landing, report, made)
        return
    for rel in tree.fix_modes:
        path = os.path.join(target, rel) if rel else os.fspath(target)
        os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) | 0o700)
    made.add(target)
    landed = [target / rel for rel in tree.files]
    report.written += landed
    if landing.guarded and not landing.exempts(target):  # a job's logs are not looked at file by file
        report.from_failures += [path for path in landed if _from_failure(path, landing)]


def _move(source: Path, target: Path) -> None:
    """Rename into place; across file systems, copy next to the target first so the switch stays atomic."""
    try:
        os.replace(source, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    if os.path.islink(source):
        temporary = target.with_name(f".{target.name}.reproman-{os.getpid()}")
        os.symlink(os.readlink(source), temporary)
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
        temporary = Path(name)
        shutil.copy2(source, temporary)
    try:
        os.replace(temporary, target)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    os.unlink(source)


#: Why :func:`_protected` keeps a local file.
_GUARDED = "guarded"
_CHANGED = "changed"
#: :func:`_protected`'s word for a file it would keep (changed, or guarded), but that a failure left unchanged
#: since: replaced, and said in the report (:attr:`LandingReport.replaced_failures`).
_FAILURES = "left by a failure"


def _protected(target: Path, local: os.stat_result, incoming: Path, landing: Landing) -> str | None:
    """Why the local file must survive (:data:`_GUARDED` or :data:`_CHANGED`), or ``None`` to replace it.

    Only a file that differs from what arrived is ever kept: an identical
    one may be replaced (nothing changes). :data:`_FAILURES`: replace it,
    it is what a subjob that did not succeed left (:attr:`Landing.left_by_failure`),
    nobody's result: what arrives replaces it, even from a subjob that did
    not succeed again (the latest attempt's output then stands, listed in turn).
    """
    if landing.guards(target) and not landing.exempts(target):
        if _same(target, local, incoming):
            return None
        return _FAILURES if _left_by_failure(target, local, landing) else _GUARDED
    if not landing.protects(target) or landing.changed_after is None:
        return None
    if local.st_ctime_ns < landing.changed_after:
        return None
    if _same(target, local, incoming):
        return None
    return _FAILURES if _left_by_failure(target, local, landing) else _CHANGED


def _left_by_failure(target: Path, local: os.stat_result, landing: Landing) -> bool:
    return landing.left_by_failure is not None and landing.left_by_failure(target, local)


def _same(target: Path, local: os.stat_result, incoming: Path) -> bool:
    other = _lstat(incoming)
    if other is None or _kind(local) != _kind(other):
        return False
    if stat.S_ISLNK(local.st_mode):
        return os.readlink(target) == os.readlink(incoming)
    return local.st_size == other.st_size and filecmp.cmp(target, incoming, shallow=False)


def _keep(source: Path, target: Path, landing: Landing) -> Path:
    """Put the incoming copy of a protected file under ``keep_dir`` (same relative path)."""
    if landing.keep_dir is None:
        raise OutputConflictError(f"{target} must be kept and there is nowhere to keep the fetched copy")
    try:
        rel = target.relative_to(landing.keep_root) if landing.keep_root else Path(target.name)
    except ValueError:
        rel = Path(target.name)
    kept = landing.keep_dir / rel
    kept.parent.mkdir(parents=True, exist_ok=True)
    if kept.is_dir() and not kept.is_symlink():
        shutil.rmtree(kept)
    _move(source, kept)
    return kept
