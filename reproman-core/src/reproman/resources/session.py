"""The Session contract: everything ReproMan does on a resource goes through it.

A backend implements four primitives: :meth:`Session._execute`,
:meth:`Session._put_file`, :meth:`Session._get_file` and
:meth:`Session._interactive`. Everything else (file queries, directory
transfers, environment handling) is written once here in terms of those
primitives and POSIX shell utilities, so a new backend passes the contract
suite in :mod:`reproman.testing.session_contract` as soon as its primitives
work. Backends override the derived methods only to be faster.

Remote paths are POSIX paths on the resource; relative ones are relative to
the session's working directory (the login directory for SSH, the
container's working directory for Docker).
"""

from __future__ import annotations

import io
import os
import posixpath
import shlex
import tarfile
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Union

import attrs

from reproman.errors import CommandError, SessionError

Command = Union[str, Sequence[str]]


@attrs.frozen
class CommandResult:
    """What a command left behind: its two output streams and exit code, apart."""

    command: str
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self) -> CommandResult:
        """Raise :class:`CommandError` unless the command succeeded."""
        if self.returncode != 0:
            detail = self.stderr.strip().splitlines()[-1:] or self.stdout.strip().splitlines()[-1:]
            raise CommandError(
                f"command failed with exit code {self.returncode}: {self.command}"
                + (f": {detail[0]}" if detail else ""),
                command=self.command,
                returncode=self.returncode,
                stdout=self.stdout,
                stderr=self.stderr,
            )
        return self


def to_shell(command: Command) -> str:
    """Render a command for ``sh -c``: a string is shell code, a list is quoted word by word."""
    if isinstance(command, str):
        return command
    return shlex.join(str(c) for c in command)


def wrap_command(command: Command, env: Mapping[str, str] | None = None, cwd: str | None = None) -> str:
    """One shell line that runs ``command`` in ``cwd`` with ``env`` added.

    Everything user-supplied is quoted, so a path or value with spaces,
    quotes or ``$`` reaches the command unchanged.
    """
    parts: list[str] = []
    if cwd:
        parts.append(f"cd {shlex.quote(cwd)} || exit;")
    if env:
        assignments = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())
        parts.append(f"export {assignments};")
    if isinstance(command, str):
        parts.append(command)
    else:
        parts.append("exec " + to_shell(command) if parts else to_shell(command))
    return " ".join(parts)


class Session(ABC):
    """A connection to a resource able to run commands and move files.

    Sessions are cheap to keep and expensive to open: open one, use it for
    many calls, then :meth:`close` it (or use it as a context manager).
    """

    def __init__(self) -> None:
        #: Variables added to every command of this session (``set_envvar``).
        self._env: dict[str, str] = {}

    # -- primitives a backend implements --------------------------------
    @abstractmethod
    def _execute(self, command: str, stdin: bytes | None = None) -> CommandResult:
        """Run POSIX shell code on the resource and wait for it.

        ``command`` is complete (cwd and environment already folded in by
        :func:`wrap_command`) and must run as ``sh -c`` would run it: its own
        process, so an ``exit`` or ``cd`` in it affects nothing after it.
        Return stdout and stderr separately and the exact exit status; never
        raise for a non-zero exit. ``stdin`` bytes, when given, are the
        command's standard input (otherwise it reads end-of-file).
        """

    @abstractmethod
    def _put_file(self, local: Path, remote: str) -> None:
        """Copy one local regular file to ``remote`` (whose parent exists)."""

    @abstractmethod
    def _get_file(self, remote: str, local: Path) -> None:
        """Copy one remote regular file to ``local`` (whose parent exists)."""

    def _interactive(self, command: str | None = None) -> int:
        """Attach the user's terminal to a shell (or ``command``) on the resource."""
        raise SessionError(f"{type(self).__name__} does not support interactive login")

    def open(self) -> Session:
        """Connect now rather than on the first call, to fail early; a no-op by default."""
        return self

    def close(self) -> None:
        """Release connections; the session may not be used afterwards."""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ---------------------------------------------------------
    def execute_command(
        self,
        command: Command,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        *,
        check: bool = False,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run ``command`` on the resource.

        A string is shell code; a list is a command and its arguments, each
        passed literally. ``env`` is added to the session's variables for
        this call only. With ``check`` a non-zero exit raises
        :class:`CommandError`; otherwise inspect ``returncode``.
        """
        merged = {**self._env, **(env or {})}
        line = wrap_command(command, merged or None, cwd)
        result = self._execute(line, stdin=stdin)
        result = attrs.evolve(result, command=to_shell(command))
        return result.check() if check else result

    def login(self, command: str | None = None) -> int:
        """Interactive shell with a pty; returns its exit status."""
        return self._interactive(command)

    # -- environment -------------------------------------------------------
    def set_envvar(self, name: str | Mapping[str, str], value: str | None = None) -> None:
        """Add variables to every later command of this session."""
        if isinstance(name, Mapping):
            self._env.update({str(k): str(v) for k, v in name.items()})
        else:
            self._env[name] = "" if value is None else str(value)

    def get_envvars(self) -> dict[str, str]:
        """The variables this session adds (not the resource's whole environment)."""
        return dict(self._env)

    def query_envvars(self) -> dict[str, str]:
        """The resource's environment as a command run through this session sees it."""
        out = self.execute_command("env -0 2>/dev/null || env", check=True).stdout
        sep = "\0" if "\0" in out else "\n"
        env: dict[str, str] = {}
        for item in out.split(sep):
            if "=" in item:
                key, _, value = item.partition("=")
                env[key] = value
        return env

    # -- file queries --------------------------------------------------------
    def exists(self, path: str) -> bool:
        return self.execute_command(["test", "-e", path]).returncode == 0 or self.islink(path)

    def islink(self, path: str) -> bool:
        return self.execute_command(["test", "-L", path]).returncode == 0

    def isdir(self, path: str) -> bool:
        return self.execute_command(["test", "-d", path]).returncode == 0

    def mkdir(self, path: str, parents: bool = False) -> None:
        self.execute_command(["mkdir", "-p", path] if parents else ["mkdir", path], check=True)

    def chmod(self, mode: int | str, path: str, recursive: bool = False) -> None:
        mode_text = format(mode, "o") if isinstance(mode, int) else mode
        cmd = ["chmod"] + (["-R"] if recursive else []) + [mode_text, path]
        self.execute_command(cmd, check=True)

    def chown(self, owner: str | int, path: str, recursive: bool = False, group: str | int | None = None) -> None:
        spec = f"{owner}:{group}" if group is not None else str(owner)
        cmd = ["chown"] + (["-R"] if recursive else []) + [spec, path]
        self.execute_command(cmd, check=True)

    def read(self, path: str) -> str:
        """Text of a remote file."""
        return self.execute_command(["cat", path], check=True).stdout

    def put_text(self, text: str, path: str, mode: int | None = None) -> None:
        """Write ``text`` to a remote file, creating parent directories."""
        with tempfile.TemporaryDirectory(prefix="reproman-") as tmp:
            local = Path(tmp) / "text"
            local.write_text(text)
            if mode is not None:
                local.chmod(mode)
            self.put(str(local), path)

    def remove(self, path: str, recursive: bool = False) -> None:
        self.execute_command(["rm", "-rf" if recursive else "-f", path], check=True)

    def home(self) -> str:
        return self.execute_command('printf %s "$HOME"', check=True).stdout

    def realpath(self, path: str) -> str:
        """Absolute remote path (relative ones resolved against the session's cwd)."""
        if posixpath.isabs(path):
            return path
        cwd = self.execute_command("pwd", check=True).stdout.strip()
        return posixpath.normpath(posixpath.join(cwd, path))

    # -- transfers -----------------------------------------------------------
    def put(self, src: str | os.PathLike[str], dest: str, uid: int = -1, gid: int = -1) -> None:
        """Copy a local file or directory tree to ``dest`` on the resource.

        ``dest`` is the full target path; missing parents are created. A
        directory is sent as one tar stream (one transfer, one command), not
        file by file.
        """
        src_path = Path(src)
        if not src_path.exists():
            raise SessionError(f"cannot put {src}: no such file or directory")
        if src_path.is_dir():
            self.put_many([(src_path, dest)])
        else:
            parent = posixpath.dirname(dest)
            if parent:
                self.mkdir(parent, parents=True)
            self._put_file(src_path, dest)
        if uid != -1 or gid != -1:
            owner = "" if uid == -1 else str(uid)
            self.chown(owner, dest, recursive=True, group=None if gid == -1 else gid)

    def get(self, src: str, dest: str | os.PathLike[str] | None = None, uid: int = -1, gid: int = -1) -> None:
        """Copy a remote file or directory tree to the local ``dest``.

        ``dest`` defaults to the basename of ``src`` in the current directory.
        """
        dest_path = Path(dest) if dest is not None else Path(posixpath.basename(src.rstrip("/")))
        if self.isdir(src):
            self.get_many([(src, dest_path)])
        else:
            dest_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._get_file(src, dest_path)
            except SessionError:
                raise
            except (OSError, RuntimeError) as exc:
                raise SessionError(f"cannot get {src}: {exc}") from exc
        if uid != -1 or gid != -1:
            for path in [dest_path, *dest_path.rglob("*")] if dest_path.is_dir() else [dest_path]:
                os.chown(path, uid, gid)

    def put_many(self, items: Iterable[tuple[str | os.PathLike[str], str]]) -> None:
        """Copy many local paths to the resource in one tar stream.

        Costs one upload and one remote command whatever the number of files,
        which is what orchestrators use to stage inputs.
        """
        pairs = [(Path(src), dest) for src, dest in items]
        if not pairs:
            return
        with tempfile.TemporaryDirectory(prefix="reproman-") as tmp:
            archive = Path(tmp) / "put.tar"
            with tarfile.open(archive, "w") as tar:
                for i, (src, _dest) in enumerate(pairs):
                    if not src.exists():
                        raise SessionError(f"cannot put {src}: no such file or directory")
                    tar.add(str(src), arcname=f"{i}", recursive=True)
            remote_tar = f"/tmp/reproman-put-{os.getpid()}-{os.urandom(4).hex()}.tar"
            self._put_file(archive, remote_tar)
        script = [f"set -e; T={shlex.quote(remote_tar)}; S=$(mktemp -d /tmp/reproman-x.XXXXXX)",
                  'tar -xf "$T" -C "$S"']
        for i, (_src, dest) in enumerate(pairs):
            q = shlex.quote(dest)
            script.append(
                f'mkdir -p "$(dirname {q})"; rm -rf {q} 2>/dev/null || true; '
                f'mv "$S/{i}" {q} 2>/dev/null || cp -R "$S/{i}" {q}'
            )
        script.append('rm -rf "$S" "$T"')
        self.execute_command("; ".join(script), check=True)

    def get_many(self, items: Iterable[tuple[str, str | os.PathLike[str]]]) -> None:
        """Copy many remote paths here in one tar stream (one command, one download)."""
        pairs = [(src, Path(dest)) for src, dest in items]
        if not pairs:
            return
        remote_tar = f"/tmp/reproman-get-{os.getpid()}-{os.urandom(4).hex()}.tar"
        links = "; ".join(f"ln -s {shlex.quote(self._absolute(src))} \"$S/{i}\"" for i, (src, _d) in enumerate(pairs))
        script = (
            f"set -e; S=$(mktemp -d /tmp/reproman-g.XXXXXX); {links}; "
            f"tar -chf {shlex.quote(remote_tar)} -C \"$S\" . ; rm -rf \"$S\""
        )
        result = self.execute_command(script)
        if result.returncode != 0:
            self.execute_command(["rm", "-f", remote_tar])
            raise SessionError(f"cannot get {', '.join(s for s, _ in pairs)}: {result.stderr.strip()}")
        with tempfile.TemporaryDirectory(prefix="reproman-") as tmp:
            archive = Path(tmp) / "get.tar"
            try:
                self._get_file(remote_tar, archive)
            finally:
                self.execute_command(["rm", "-f", remote_tar])
            extract_pairs(archive, pairs)

    def _absolute(self, path: str) -> str:
        return path if posixpath.isabs(path) else self.realpath(path)


def _owned_by_us(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """Fetched files belong to the local user, whoever owned them remotely.

    Running as root, tarfile would otherwise chown every file to the remote
    uid; empty owner names make it fall back to our own numeric ids.
    """
    member = tarfile.tar_filter(member, dest)
    return member.replace(uid=os.getuid(), gid=os.getgid(), uname="", gname="", deep=False)


def extract_pairs(archive: Path | io.BufferedIOBase, pairs: Sequence[tuple[str, Path]]) -> None:
    """Unpack a tar whose members are numbered ``0``, ``1``... to their destinations."""
    import shutil

    with tempfile.TemporaryDirectory(prefix="reproman-") as tmp:
        if isinstance(archive, Path):
            tar = tarfile.open(archive, "r")
        else:
            tar = tarfile.open(fileobj=archive, mode="r|")
        with tar:
            tar.extractall(tmp, filter=_owned_by_us)
        for i, (_src, dest) in enumerate(pairs):
            staged = Path(tmp) / str(i)
            if not staged.exists() and not staged.is_symlink():
                raise SessionError(f"{_src} was not in the transferred archive")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            elif dest.exists() or dest.is_symlink():
                dest.unlink()
            shutil.move(str(staged), str(dest))
