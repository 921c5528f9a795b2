"""The Session contract: everything ReproMan does on a resource goes through it.

A backend implements four primitives: :meth:`Session._execute`,
:meth:`Session._put_file`, :meth:`Session._get_file` and
:meth:`Session._interactive`. Everything else (file queries, directory
transfers, environment handling, stopping an interrupted command) is written
once here in terms of those primitives and POSIX shell utilities, so a new
backend passes the contract suite in :mod:`reproman.testing.session_contract`
as soon as its primitives work. Backends override the derived methods only to
be faster: :meth:`Session._send` and :meth:`Session._fetch` for transfers,
:meth:`Session._execute_aside` where commands share one channel.

Two promises hold on every backend:

* **bytes are bytes**: a command's standard output and error travel as bytes
  from the resource to the caller (:attr:`CommandResult.stdout_bytes`); the
  ``str`` views decode them losslessly (``surrogateescape``), so even a
  non-UTF-8 file name survives a round trip through the text view;
* **fetching never destroys local files**: transfers from the resource land in
  a fresh staging directory first and are then moved into place by
  :func:`reproman.resources.landing.land`, the one place that decides what may
  replace what.

Remote paths are POSIX paths on the resource; relative ones are relative to
the session's working directory (the login directory for SSH, the
container's working directory for Docker).
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import shlex
import shutil
import tarfile
import tempfile
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Union

import attrs

from reproman.errors import CommandError, SessionError, Terminated, reason
from reproman.resources.landing import Landing, LandingReport, land, remove_staging, staging_dir

lgr = logging.getLogger(__name__)

#: Seconds stopping an interrupted command may take before the user is told that it is waiting (and how to give up).
STOP_NOTICE_DELAY = 1.0

Command = Union[str, Sequence[str]]
#: Receives a command's output as it arrives: ``(1, chunk)`` for stdout, ``(2, chunk)`` for stderr.
OutputCallback = Callable[[int, bytes], None]

#: Encoding of the ``str`` views: lossless for any bytes, identical to UTF-8 for UTF-8 text.
TEXT_ERRORS = "surrogateescape"


def decode(data: bytes) -> str:
    """Text view of command output: UTF-8, with undecodable bytes kept as surrogates."""
    return data.decode("utf-8", TEXT_ERRORS)


@attrs.frozen
class CommandResult:
    """What a command left behind: its two output streams (bytes) and exit code, apart.

    ``stdout`` and ``stderr`` are text views of the bytes; write
    ``stdout_bytes`` where exact output matters (a binary, a file's content).
    When the command's output was streamed to an :data:`OutputCallback`, both
    streams are empty here.
    """

    command: str
    returncode: int
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""

    @property
    def stdout(self) -> str:
        return decode(self.stdout_bytes)

    @property
    def stderr(self) -> str:
        return decode(self.stderr_bytes)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self) -> CommandResult:
        """Raise :class:`CommandError` unless the command succeeded."""
        if self.returncode != 0:
            stdout, stderr = self.stdout, self.stderr
            detail = stderr.strip().splitlines()[-1:] or stdout.strip().splitlines()[-1:]
            raise CommandError(
                f"command failed with exit code {self.returncode}: {self.command}"
                + (f": {detail[0]}" if detail else ""),
                command=self.command,
                returncode=self.returncode,
                stdout=stdout,
                stderr=stderr,
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


def byte_exact(line: str) -> str:
    """``line`` as shell code any transport carries unchanged, even when it holds non-UTF-8 bytes.

    Command words typed as bytes that are not UTF-8 reach Python as lone
    surrogates (``surrogateescape``). A local process gets those bytes back,
    but a Docker exec (JSON) or an SSH channel would replace or refuse them.
    Such a line is sent as ASCII instead: ``printf`` rebuilds its exact
    bytes on the resource and the shell evaluates them.
    """
    if line.isascii():
        return line
    try:
        line.encode("utf-8")
        return line
    except UnicodeEncodeError:
        pass
    escaped = []
    for byte in line.encode("utf-8", TEXT_ERRORS):
        char = chr(byte)
        escaped.append(f"\\{byte:03o}" if char in "\\%'" or not 32 <= byte < 127 else char)
    return f"eval \"$(printf '{''.join(escaped)}')\""


def group_wrapper(line: str, pgfile: str) -> str:
    """Shell code running ``line`` in a process group of its own, its ID written to ``pgfile``.

    Without a terminal, ``sh`` has no job control, so the group comes from
    ``setsid`` (util-linux and BusyBox both have it), run in the foreground:
    a background job would start with SIGINT ignored and its standard input
    on ``/dev/null``. Run as a child of this shell, ``setsid`` is never a
    group leader and so never forks away; the command after it keeps the
    shell from replacing itself with it. Where there is no ``setsid`` the
    command still runs, and an interrupt stops its top process only.
    """
    quoted = shlex.quote(pgfile)
    inner = f"/bin/sh -c 'echo $$ > \"$1\"; shift; exec /bin/sh -c \"$1\"' reproman-group {quoted} {shlex.quote(line)}"
    return (
        f"if command -v setsid >/dev/null 2>&1; then setsid {inner}; else {inner}; fi; "
        f'__rm_rc=$?; rm -f {quoted}; exit "$__rm_rc"'
    )


def stop_group_script(pgfile: str, signal_name: str = "INT", grace: float = 2.0) -> str:
    """Shell code that signals the group named in ``pgfile``, then escalates to TERM and KILL.

    ``signal_name`` is what the user sent (INT for Ctrl-C, TERM); each step
    waits up to ``grace`` seconds for the group to go.
    """
    quoted = shlex.quote(pgfile)
    ticks = max(1, int(grace * 10))
    wait = (f'i=0; while kill -0 -"$pg" 2>/dev/null && [ $i -lt {ticks} ]; do '
            "sleep 0.1 2>/dev/null || sleep 1; i=$((i+1)); done; ")
    steps = [signal_name] + [s for s in ("TERM", "KILL") if s != signal_name]
    kills = "".join(f'kill -{name} -"$pg" 2>/dev/null || kill -{name} "$pg" 2>/dev/null; ' + (wait if name != "KILL" else "")
                    for name in steps)
    return (
        f"f={quoted}; i=0; "
        'while [ ! -s "$f" ] && [ $i -lt 20 ]; do sleep 0.1 2>/dev/null || sleep 1; i=$((i+1)); done; '
        'pg=; IFS= read -r pg < "$f" 2>/dev/null; [ -n "$pg" ] || exit 0; '
        + kills + 'rm -f "$f"; true'
    )


def stdin_watch_wrapper(grouped: str, pgfile: str) -> str:
    """Shell code running ``grouped`` (a :func:`group_wrapper` line) that stops its group if the caller dies.

    A caller killed with ``kill -9`` cannot stop its command, and a command
    that prints nothing never notices that nobody reads it: it would run on,
    orphaned, on the resource. So the standard input of this code is a watch
    channel that the caller holds open, unwritten, while the command runs: a
    watcher (a background subshell using only the ``read`` builtin) waits
    for its end-of-file, which the kernel or the Docker Engine delivers when
    the caller's end closes, and then stops the group with SIGHUP (escalating
    as :func:`stop_group_script` does). When the command ends first, the
    watcher is killed. The command's own standard input is ``/dev/null``;
    a caller with input for the command cannot use the watch.

    A caller interrupted on purpose (Ctrl-C) keeps the channel open until it
    has stopped the group itself, so the command gets the caller's signal,
    not SIGHUP.
    """
    gone = shlex.quote(f"{pgfile}.gone")
    watcher = (f"{{ while IFS= read -r __rm_l; do :; done; : > {gone}; {stop_group_script(pgfile, 'HUP')}; "
               f"rm -f {gone}; }} <&3 >/dev/null 2>&1 &")
    return (
        f"exec 3<&0 </dev/null; {watcher} __rm_w=$!; exec 3<&-; "
        f"/bin/sh -c {shlex.quote(grouped)}; __rm_rc=$?; "
        # The caller went away at the moment the command ended: let the watcher finish its stop.
        f'if [ -e {gone} ]; then wait "$__rm_w"; else kill "$__rm_w" 2>/dev/null; fi; '
        'exit "$__rm_rc"'
    )


class Session(ABC):
    """A connection to a resource able to run commands and move files.

    Sessions are cheap to keep and expensive to open: open one, use it for
    many calls, then :meth:`close` it (or use it as a context manager).
    """

    def __init__(self) -> None:
        #: Variables added to every command of this session (``set_envvar``).
        self._env: dict[str, str] = {}

    @property
    def place(self) -> str:
        """Where commands run, for messages ("SSH resource 'h'", "host:port"); backends name it better."""
        return "the resource"

    # -- primitives a backend implements --------------------------------
    @abstractmethod
    def _execute(
        self, command: str, stdin: bytes | None = None, on_output: OutputCallback | None = None
    ) -> CommandResult:
        """Run POSIX shell code on the resource and wait for it.

        ``command`` is complete (cwd and environment already folded in by
        :func:`wrap_command`) and must run as ``sh -c`` would run it: its own
        process, so an ``exit`` or ``cd`` in it affects nothing after it.
        Return stdout and stderr separately, as the exact bytes the command
        wrote, and the exact exit status; never raise for a non-zero exit.
        ``stdin`` bytes, when given, are the command's standard input
        (otherwise it reads end-of-file). With ``on_output``, hand each
        chunk to it as it arrives (``1`` stdout, ``2`` stderr) and return
        empty streams: output of any size then costs no memory here.

        A :class:`KeyboardInterrupt` while waiting must propagate (after
        releasing what the call held); :meth:`execute_interruptible` then
        stops the command on the resource.
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

    def _execute_aside(self, command: str) -> CommandResult:
        """Run a short command while another one of this session may still be running.

        Used to stop an interrupted command. The default suits backends whose
        commands are independent (a process, a container exec); a backend
        that runs commands through one long-lived channel opens another.
        """
        return self._execute(command)

    def open(self) -> Session:
        """Connect now rather than on the first call, to fail early; a no-op by default."""
        return self

    def check_answers(self, timeout: float | None = None) -> None:
        """Prove the resource answers now, within ``timeout`` seconds; raise a ReproManError if it does not.

        For a status check (``ls --refresh``): a connection that is open is
        no proof, a frozen server keeps it open. The default has nothing to
        prove (a session that is open answers); a backend holding a
        long-lived connection asks its server.
        """

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
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        """Run ``command`` on the resource.

        A string is shell code; a list is a command and its arguments, each
        passed literally. ``env`` is added to the session's variables for
        this call only. With ``check`` a non-zero exit raises
        :class:`CommandError`; otherwise inspect ``returncode``. With
        ``on_output`` the output is streamed to it instead of returned.
        """
        merged = {**self._env, **(env or {})}
        line = byte_exact(wrap_command(command, merged or None, cwd))
        if on_output is None:
            result = self._execute(line, stdin=stdin)
        else:
            result = self._execute(line, stdin=stdin, on_output=on_output)
        result = attrs.evolve(result, command=to_shell(command))
        return result.check() if check else result

    def execute_interruptible(
        self,
        command: Command,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        *,
        stdin: bytes | None = None,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        """Run a user's command so that interrupting the caller stops it on the resource.

        The command runs in a process group of its own there. When the wait
        is interrupted (:class:`KeyboardInterrupt`: Ctrl-C, or a SIGTERM the
        CLI turned into one), the whole group gets SIGINT, then SIGKILL
        after a grace period, and the interrupt propagates. Without this, a
        closed connection leaves the command running on the resource. A
        :class:`BrokenPipeError` from ``on_output`` (the caller's reader is
        gone) stops the group the same way, with SIGPIPE first.
        """
        merged = {**self._env, **(env or {})}
        pgfile = f"/tmp/.reproman-pg-{os.getpid()}-{os.urandom(6).hex()}"
        line = byte_exact(group_wrapper(wrap_command(command, merged or None, cwd), pgfile))
        try:
            result = self._execute_grouped(line, pgfile, stdin, on_output)
        except (KeyboardInterrupt, BrokenPipeError) as exc:
            # A reader that went away (output piped to `head`) stops the command as a local pipe would.
            signal_name = "PIPE" if isinstance(exc, BrokenPipeError) else "TERM" if isinstance(exc, Terminated) else "INT"
            # A resource that answers stops the command in a moment; one that does not (a frozen server) keeps the
            # user waiting until its connection gives up, so after a moment the wait and the way out are said.
            notice = threading.Timer(STOP_NOTICE_DELAY, lgr.warning, args=(
                "stopping the command on %s; press Ctrl-C again to give up", self.place))
            notice.daemon = True
            if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Terminated):
                notice.start()
            try:
                failure = self.stop_interrupted(pgfile, signal_name)
            finally:
                notice.cancel()
            if failure is not None:
                # For the caller's message: the command may still run there.
                exc.reproman_not_stopped = failure  # type: ignore[union-attr]
            raise
        return attrs.evolve(result, command=to_shell(command))

    def _execute_grouped(self, line: str, pgfile: str, stdin: bytes | None,
                         on_output: OutputCallback | None) -> CommandResult:
        """Run a line made by :func:`group_wrapper`; ``pgfile`` names its process group on the resource.

        A session served by another process (a persistent connection host)
        passes ``pgfile`` along, so that process can stop the group itself
        when this one dies without a word (``kill -9``). A backend whose
        command can hold a watch channel open (a local pipe, a container
        exec's attached input) runs :func:`stdin_watch_wrapper` instead.
        """
        if on_output is None:
            return self._execute(line, stdin=stdin)
        return self._execute(line, stdin=stdin, on_output=on_output)

    def stop_interrupted(self, pgfile: str, signal_name: str = "INT") -> str | None:
        """Stop the process group recorded in ``pgfile``; None once stopped, else why not.

        Never raises: the caller is already failing.
        """
        try:
            result = self._execute_aside(stop_group_script(pgfile, signal_name))
        except KeyboardInterrupt:
            return "interrupted again while stopping it"
        except BaseException as exc:  # a dropped connection
            return reason(exc)
        if result.returncode < 0:
            return "the connection closed before the resource answered"
        return None

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
    #: Whether :meth:`wait_for_path` ends as soon as the path appears (not only a sleep).
    watches_paths: bool = False

    def wait_for_path(self, path: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``path`` to exist; whether it appeared.

        Following a job sleeps between polls. A session that can watch a file
        for the cost of a ``stat`` (this machine's file system) overrides this
        to end the sleep as soon as a job's completion marker appears, instead
        of up to one poll interval later, and sets :attr:`watches_paths`. The
        default only sleeps: asking a remote host more often would cost more
        than the wait it saves.
        """
        import time

        time.sleep(max(0.0, timeout))
        return False

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

        ``dest`` is the full target path; missing parents are created; an
        existing directory there is merged into, existing files replaced.
        """
        self.put_many([(src, dest)])
        if uid != -1 or gid != -1:
            owner = "" if uid == -1 else str(uid)
            self.chown(owner, dest, recursive=True, group=None if gid == -1 else gid)

    def get(
        self, src: str, dest: str | os.PathLike[str] | None = None, uid: int = -1, gid: int = -1
    ) -> LandingReport:
        """Copy a remote file or directory tree to the local ``dest``, under the landing rules.

        ``dest`` defaults to the basename of ``src`` in the current
        directory. An existing local directory is merged into, never emptied
        (see :mod:`reproman.resources.landing`).
        """
        dest_path = Path(dest) if dest is not None else Path(posixpath.basename(src.rstrip("/")) or "root")
        report = self.get_many([(src, dest_path)])
        if uid != -1 or gid != -1:
            for path in report.written:
                os.chown(path, uid, gid, follow_symlinks=False)
        return report

    def put_many(self, items: Iterable[tuple[str | os.PathLike[str], str]]) -> None:
        """Copy many local paths to the resource, whatever their number, in one transfer.

        This is what orchestrators stage inputs with; directories merge into
        existing remote ones and files replace files.
        """
        pairs = [(Path(src), dest) for src, dest in items]
        if not pairs:
            return
        for src, _dest in pairs:
            if not os.path.lexists(src):
                raise SessionError(f"cannot put {src}: no such file or directory")
        self._send(pairs)

    def get_many(
        self, items: Iterable[tuple[str, str | os.PathLike[str]]], landing: Landing | None = None
    ) -> LandingReport:
        """Copy many remote paths here in one transfer; what arrives lands under ``landing``'s rules.

        The backend fills a fresh staging directory next to the destinations
        (:meth:`_fetch`); :func:`reproman.resources.landing.land` then merges
        it into place, refusing type conflicts before writing anything and
        keeping local files that ``landing`` protects.
        """
        pairs = [(src, Path(dest)) for src, dest in items]
        if not pairs:
            return LandingReport()
        stage = staging_dir([dest for _src, dest in pairs])
        try:
            staged = [(src, stage / str(i)) for i, (src, _dest) in enumerate(pairs)]
            try:
                self._fetch_under(staged, landing)
            except OSError as exc:
                raise SessionError(f"cannot store fetched files in {stage}: {exc.strerror or exc}") from None
            return land([(path, dest) for (_src, path), (_s, dest) in zip(staged, pairs)], landing)
        finally:
            # Interrupted while a session host still fills it: the host removes it when done.
            remove_staging(stage)

    def _send(self, pairs: Sequence[tuple[Path, str]]) -> None:
        """Copy local paths to remote destinations: one archive, one upload, one command.

        Members are named after their absolute destinations and unpacked at
        ``/``, so any number of paths needs no per-path command line (no
        argument-length limit) and existing remote directories are merged.
        """
        targets = self._absolute_many([dest for _src, dest in pairs])
        if "/" in targets:
            raise SessionError("cannot put over the resource's root directory")
        with tempfile.TemporaryDirectory(prefix="reproman-") as tmp:
            archive = Path(tmp) / "put.tar"
            with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
                for (src, _dest), target in zip(pairs, targets):
                    tar.add(str(src), arcname=target.lstrip("/"), recursive=True, filter=_owned_by_receiver)
            remote_tar = f"/tmp/reproman-put-{os.getpid()}-{os.urandom(4).hex()}.tar"
            self._put_file(archive, remote_tar)
        result = self._execute(f"tar -xf {shlex.quote(remote_tar)} -C /; rc=$?; rm -f {shlex.quote(remote_tar)}; exit $rc")
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["tar failed"])[-1]
            raise SessionError(f"cannot put {', '.join(str(s) for s, _ in pairs[:3])}: {detail}")

    def _fetch_under(self, staged: Sequence[tuple[str, Path]], landing: Landing | None) -> None:
        """:meth:`_fetch`, knowing the landing rules (which sources go away afterwards: see the shell session)."""
        self._fetch(staged)

    def _fetch(self, staged: Sequence[tuple[str, Path]]) -> None:
        """Copy each remote path (file, symlink or tree) to its local path, which does not exist yet.

        Symbolic links arrive as links. The default sends the list of names
        as the standard input of one script (no per-path command line, so no
        argument-length limit), which archives them on the resource; the
        archive is downloaded with :meth:`_get_file` and unpacked.
        """
        sources = self._absolute_many([src for src, _path in staged])
        for src in sources:
            if "\n" in src:
                raise SessionError(f"cannot get {src!r}: file names with a newline cannot be listed")
        remote_tar = f"/tmp/reproman-get-{os.getpid()}-{os.urandom(4).hex()}.tar"
        names = "".join(f"./{src.lstrip('/')}\n" for src in sources)
        script = (
            "cd / || exit 1\n"
            "missing=; while IFS= read -r p; do "
            '[ -e "$p" ] || [ -L "$p" ] || { missing="$p"; break; }; done <<"__RM_LIST__"\n'
            f"{names}__RM_LIST__\n"
            'if [ -n "$missing" ]; then printf "cannot get %s: no such file or directory\\n" "${missing#.}" >&2; exit 2; fi\n'
            # GNU tar would otherwise read a leading dash or a backslash in a listed name as syntax.
            "if tar --version 2>/dev/null | grep -q GNU; then set -- --verbatim-files-from; else set --; fi\n"
            f'tar -cf {shlex.quote(remote_tar)} "$@" -T - <<"__RM_LIST__"\n{names}__RM_LIST__\n'
        )
        result = self._execute("exec /bin/sh -s", stdin=script.encode("utf-8", TEXT_ERRORS))
        if result.returncode != 0:
            self._execute(f"rm -f {shlex.quote(remote_tar)}")
            said = result.stderr.strip().splitlines()
            raise SessionError(said[-1] if said else f"cannot get {', '.join(sources[:3])}")
        with tempfile.TemporaryDirectory(prefix="reproman-", dir=staged[0][1].parent) as tmp:
            archive = Path(tmp) / "get.tar"
            try:
                self._get_file(remote_tar, archive)
            finally:
                self._execute(f"rm -f {shlex.quote(remote_tar)}")
            extract_to_staging(archive, [(src.lstrip("/"), path) for src, (_s, path) in zip(sources, staged)])

    def _absolute_many(self, paths: Sequence[str]) -> list[str]:
        """Absolute remote paths; the session's working directory is asked for once, if needed."""
        cwd: str | None = None
        result: list[str] = []
        for path in paths:
            if not posixpath.isabs(path):
                if cwd is None:
                    cwd = self.realpath(".")
                path = posixpath.join(cwd, path)
            result.append(posixpath.normpath(path) if path != "/" else path)
        return result


def _owned_by_receiver(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Archive members carry no owner: whoever unpacks them on the resource owns them."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _ours(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """Unpack safely into ``dest``: nothing outside it, no devices, owned by the local user.

    Symbolic links are stored as they are, whatever they point to (a result
    may be a link to ``/usr/bin/python3``); they are never followed while
    unpacking, because a later member whose path goes through a link is
    refused by the same check.
    """
    if member.issym():
        checked = tarfile.tar_filter(member.replace(linkname=".", deep=False), dest)
        if checked is None:
            return None
        checked = checked.replace(linkname=member.linkname, deep=False)
    else:
        checked = tarfile.tar_filter(member, dest)
        if checked is None:
            return None
    mode = checked.mode if member.mode is None or checked.isdir() or checked.issym() else member.mode & 0o777
    return checked.replace(mode=mode, uid=os.getuid(), gid=os.getgid(), uname="", gname="", deep=False)


def extract_to_staging(archive: Path | io.BufferedIOBase, prefixes: Sequence[tuple[str, Path]]) -> None:
    """Unpack an archive whose members are named after remote paths; each prefix becomes its staged path.

    ``prefixes`` pairs a member-name prefix (a remote path without the
    leading ``/``, or a number for archives made with numbered members) with
    the fresh local path it must become. Members that belong to no prefix
    are an error: the resource sent something that was not asked for.
    """
    with tempfile.TemporaryDirectory(prefix="reproman-x-", dir=prefixes[0][1].parent) as tmp:
        if isinstance(archive, Path):
            tar = tarfile.open(archive, "r")
        else:
            tar = tarfile.open(fileobj=archive, mode="r|")
        with tar:
            try:
                tar.extractall(tmp, filter=_ours)
            except tarfile.FilterError as exc:
                raise SessionError(f"refusing an unsafe member in the transferred archive: {exc}") from None
        requested = Counter(prefix for prefix, _path in prefixes)

        def shared(prefix: str) -> bool:
            """Also needed by another request: the same path twice, or a path inside another requested tree.

            Looked up by ancestor, not by comparing every pair: 10,000 paths would take minutes.
            """
            if requested[prefix] > 1:
                return True
            ancestor = prefix
            while "/" in ancestor:
                ancestor = ancestor.rpartition("/")[0]
                if ancestor and ancestor in requested:
                    return True
            return False

        # Copies first: moving a requested tree away would take nested requests with it.
        for prefix, path in sorted(prefixes, key=lambda item: not shared(item[0])):
            unpacked = Path(tmp) / prefix if prefix else Path(tmp)
            if not unpacked.exists() and not unpacked.is_symlink():
                raise SessionError(f"/{prefix} was not in the transferred archive")
            if shared(prefix):
                _copy_tree(unpacked, path)
            else:
                os.replace(unpacked, path)


def _copy_tree(src: Path, dest: Path) -> None:
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dest, symlinks=True)
    else:
        shutil.copy2(src, dest, follow_symlinks=False)
