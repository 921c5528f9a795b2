"""The SSH session: one authenticated connection, long-lived shells, tar streams.

What each module does:

* :mod:`~reproman_backend_ssh.connection` (with :mod:`~reproman_backend_ssh.auth`
  and :mod:`~reproman_backend_ssh.hostkeys`) opens the connection;
* :mod:`~reproman_backend_ssh.shells` keeps remote ``/bin/sh`` processes
  that commands run through (about 1 ms a command instead of ~90 ms for a
  channel each), and :mod:`~reproman_backend_ssh.framing` cuts each
  command's bytes out of their streams;
* :mod:`~reproman_backend_ssh.transfer` moves any number of listed paths as
  one tar stream each way.

This module ties them to core's :class:`~reproman.resources.session.Session`
contract, and keeps the promises that span them: a dropped connection is
reopened on the next call, but a command it interrupted is never re-run (it
may have had effects); an interrupted command's shell is replaced, never
reused; stopping an interrupted command uses a channel of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import select
import shlex
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko

from reproman.plugins import (
    CommandResult,
    ConfigError,
    OutputCallback,
    ResourceConnectionError,
    Session,
    SessionError,
    wrap_command,
)
from reproman_backend_ssh import alive, framing, transfer
from reproman_backend_ssh.auth import Asker, Secrets, terminal_asker
from reproman_backend_ssh.channels import ChannelGate
from reproman_backend_ssh.connection import Settings, close_quietly, open_connection
from reproman_backend_ssh.shells import RemoteShell, ShellPool, read_available

if TYPE_CHECKING:
    from fabric import Connection

log = logging.getLogger("reproman.backend_ssh.session")


class _ExpectedRefusals(logging.Filter):
    """Drops paramiko's ERROR line for a channel the server refused: past MaxSessions that is expected.

    The channel gate waits and retries (every half second at most) and says
    so once; without this a session host's log got an ERROR line per retry,
    hundreds per waiting command. A refusal the gate does not wait out is
    raised to the command, which reports it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.ERROR and "open FAILED" in record.getMessage()
                    and record.getMessage().startswith("Secsh channel"))


logging.getLogger("paramiko.transport").addFilter(_ExpectedRefusals())

#: Standard input up to this size travels inline in the command line (as a
#: ``printf`` of octal escapes); larger input is uploaded over SFTP first.
INLINE_STDIN_LIMIT = 64 * 1024


class SSHSession(Session):
    """A session on a host reached over SSH, with one connection for all calls.

    ``host`` may be a name, an address or a ``Host`` alias of the SSH config.
    ``ssh_config`` replaces the default files (``~/.ssh/config`` and
    ``/etc/ssh/ssh_config``) with one file; ``known_hosts`` replaces the
    user's known-hosts file (default: ssh_config's UserKnownHostsFile, else
    ``~/.ssh/known_hosts``). Unknown host keys are refused unless
    ``accept_new_host_key`` is true (or ssh_config says
    ``StrictHostKeyChecking accept-new``); a changed key always fails.

    Passwords, key passphrases and keyboard-interactive (two-factor)
    questions are asked through :attr:`asker`: on this process's terminal
    when ``interactive`` (default: when stdin is a terminal), or relayed
    by a persistent-connection host to the command that needs them.
    Passphrases and passwords stay in memory for reconnecting, never on disk.

    The connection opens on first use (or :meth:`open`). Calls may come
    from several threads at once; each command gets a shell of its own.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        user: str | None = None,
        key_filename: str | None = None,
        connect_timeout: float | None = None,
        accept_new_host_key: bool = False,
        ssh_config: str | os.PathLike[str] | None = None,
        known_hosts: str | os.PathLike[str] | None = None,
        interactive: bool | None = None,
    ) -> None:
        super().__init__()
        if not host:
            raise ConfigError("an SSH session needs a host")
        self.settings = Settings(
            host=host,
            port=int(port) if port else None,
            user=user or None,
            key_filename=os.path.expanduser(key_filename) if key_filename else None,
            connect_timeout=connect_timeout,
            accept_new_host_key=bool(accept_new_host_key),
            ssh_config=os.path.expanduser(os.fspath(ssh_config)) if ssh_config else None,
            known_hosts=os.path.expanduser(os.fspath(known_hosts)) if known_hosts else None,
        )
        #: Gives the function that asks a person for a password or code (None: nobody can be asked).
        self.asker: Asker = terminal_asker(interactive)
        self._secrets = Secrets()
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._shells = ShellPool()
        #: Every channel opens here, so commands past the server's MaxSessions wait instead of failing.
        self._gate = ChannelGate(lambda: self.target, self._shells.clear)
        self._shells.on_free = self._gate.released
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_lock = threading.Lock()
        self._tar: transfer.TarFlavour | None = None
        self._closed = False
        self._watch: alive.AliveWatch | None = None
        #: Seconds the server went without answering when the watch gave the connection up.
        self._silent_for: float | None = None

    @property
    def host(self) -> str:
        return self.settings.host

    def __repr__(self) -> str:
        s = self.settings
        return f"SSHSession(host={s.host!r}, port={s.port!r}, user={s.user!r})"

    # -- connection ---------------------------------------------------------------
    @property
    def target(self) -> str:
        """``host:port`` as resolved through ssh_config, for messages."""
        conn = self._conn
        if conn is not None:
            resolved = f"{conn.host}:{conn.port}"
            return resolved if conn.host == self.host else f"{self.host} ({resolved})"
        return f"{self.host}:{self.settings.port or 22}"

    @property
    def place(self) -> str:
        return self.target

    def open(self) -> SSHSession:
        """Connect now (instead of on first use); raise ResourceConnectionError on failure."""
        self._transport()
        return self

    def check_answers(self, timeout: float | None = None) -> None:
        """Prove the server answers now: connect if there is no connection, else ask it for a reply.

        ``timeout`` defaults to ``[ssh] refresh_timeout``; no answer in time
        raises :class:`ResourceConnectionError` (the connection is left for
        the keep-alive to judge: a slow server may be serving others).
        """
        with self._lock:
            was_connected = self.connected
            transport = self._transport()
        if not was_connected:
            return  # it just authenticated us
        wait = alive.refresh_timeout() if timeout is None else timeout
        if not alive.answers(transport, wait):
            if not transport.is_active():
                raise ResourceConnectionError(self._why_closed())
            raise ResourceConnectionError(f"{self.target} does not answer on the open connection "
                                          f"(no reply in {wait:g} s)")

    @property
    def connected(self) -> bool:
        conn = self._conn
        return bool(conn is not None and conn.transport is not None and conn.transport.is_active())

    def _transport(self) -> paramiko.Transport:
        """The live transport, (re)connecting if there is none."""
        with self._lock:
            if self._closed:
                raise SessionError(f"the SSH session to {self.target} is closed")
            if not self.connected:
                self._drop()
                self._conn = open_connection(self.settings, self.asker(), self._secrets)
                assert self._conn.transport is not None
                self._silent_for = None
                interval, count = alive.settings(dict(self._conn.ssh_config or {}))
                self._watch = alive.AliveWatch(self._conn.transport, interval, count, self._gave_up).start()
            assert self._conn is not None and self._conn.transport is not None
            return self._conn.transport

    def _gave_up(self, silence: float) -> None:
        self._silent_for = silence
        log.warning("%s stopped answering (no reply in %.0f s): closing the connection", self.target, silence)

    def _why_closed(self) -> str:
        """Why the connection is gone, for messages: the watch's finding when it gave up, else a plain closing."""
        if self._silent_for is not None:
            return f"connection to {self.target} stopped answering (no reply in {self._silent_for:.0f} s)"
        return f"the connection to {self.target} closed"

    def _drop(self) -> None:
        """Forget the connection and everything on it (after a failure, or on close)."""
        with self._lock:
            if self._watch is not None:
                self._watch.stop()
                self._watch = None
            self._shells.clear()
            with self._sftp_lock:
                if self._sftp is not None:
                    try:
                        self._sftp.close()
                    except Exception:  # the channel may already be gone
                        pass
                    self._sftp = None
            if self._conn is not None:
                close_quietly(self._conn)
                self._conn = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()

    def _lost(self) -> SessionError:
        how = (f"stopped answering (no reply in {self._silent_for:.0f} s)" if self._silent_for is not None
               else "lost")
        return SessionError(
            f"connection to {self.target} {how} while a command was running; it may or may not "
            "have completed (it is not re-run). The next call reconnects."
        )

    def _new_channel(self, purpose: str) -> paramiko.Channel:
        """A channel for ``purpose`` (a transfer, a terminal, SFTP), through the gate.

        A connection dying just as the channel opens makes paramiko raise
        its reader's bare ``EOFError``: that becomes one line saying the
        connection closed, and the next call reconnects.
        """
        try:
            return self._gate.open(self._transport())
        except (OSError, EOFError, paramiko.SSHException) as exc:
            if self.connected:
                said = " ".join(str(exc).split()) or type(exc).__name__
                raise SessionError(f"cannot open a channel on {self.target} for {purpose}: {said}") from None
            self._drop()
            raise SessionError(f"{self._why_closed()} while opening a channel for {purpose}; the next call "
                               "reconnects") from None

    # -- commands ---------------------------------------------------------------------
    def _execute(
        self, command: str, stdin: bytes | None = None, on_output: OutputCallback | None = None
    ) -> CommandResult:
        begin, end = framing.new_markers()
        chunks: dict[int, list[bytes]] = {framing.STDOUT: [], framing.STDERR: []}

        def keep(stream: int, data: bytes) -> None:
            chunks[stream].append(data)

        parser = framing.FrameParser(begin, end, on_output or keep)
        if stdin is not None and len(stdin) > INLINE_STDIN_LIMIT:
            staged = self._stage_stdin(stdin, begin.decode())
            line = framing.command_line(command, begin, end, stdin=staged, cleanup=f"rm -f {shlex.quote(staged)}; ")
        elif stdin is not None:
            line = framing.command_line(command, begin, end, stdin_literal=stdin)
        else:
            line = framing.command_line(command, begin, end)
        shell = self._send_line(line)
        try:
            code = shell.collect(parser, self._lost)
        except BaseException:
            # Interrupted (Ctrl-C), out of step, or the connection went: never reuse this shell.
            shell.close()
            if not self.connected:
                self._drop()
            raise
        self._shells.give_back(shell)
        return CommandResult(
            command=command,
            returncode=code,
            stdout_bytes=b"".join(chunks[framing.STDOUT]),
            stderr_bytes=b"".join(chunks[framing.STDERR]),
        )

    def _send_line(self, line: bytes) -> RemoteShell:
        """A shell that has received ``line``; a line that provably never left is sent once more.

        A connection dying under a new channel makes paramiko re-raise its
        reader's bare ``EOFError``: nothing was sent, so it counts as never left.
        """
        shell: RemoteShell | None = None
        try:
            shell = self._shells.take(self._transport(), self._gate)
            shell.send(line)
            return shell
        except (OSError, EOFError, paramiko.SSHException):
            if shell is not None:
                shell.close()
            self._drop()
        try:
            shell = self._shells.take(self._transport(), self._gate)
        except (OSError, EOFError, paramiko.SSHException):
            self._drop()
            raise SessionError(f"the connection to {self.target} closed twice before the command could be sent "
                               "(it did not run)", hint="Run it again.") from None
        try:
            shell.send(line)
        except BaseException:
            shell.close()
            raise
        return shell

    def _stage_stdin(self, data: bytes, tag: str) -> str:
        """Upload large standard input to a private temporary file; return its path."""
        path = f"/tmp/reproman-stdin-{tag.rsplit('_', 1)[-1]}"
        sftp = self._sftp_client()
        with self._sftp_lock:
            try:
                with sftp.open(path, "wb") as handle:
                    sftp.chmod(path, 0o600)
                    handle.set_pipelined(True)
                    handle.write(data)
            except OSError as exc:
                raise SessionError(f"cannot pass standard input to {self.target}: {_sftp_reason(exc)}") from None
        return path

    def _execute_aside(self, command: str) -> CommandResult:
        """Run a short command on a fresh exec channel: the shells may be busy or in an unknown state.

        It stops an interrupted command, often because the server stopped
        answering: its failure says that (paramiko's own is a bare ``EOFError``).
        """
        try:
            return self._run_aside(command)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            if self.connected:
                said = " ".join(str(exc).split()) or "its command channel failed"
                raise SessionError(f"cannot run a command on {self.target}: {said}") from None
            raise SessionError(self._why_closed()) from None

    def _run_aside(self, command: str) -> CommandResult:
        channel = self._gate.open(self._transport())
        try:
            channel.exec_command(f"/bin/sh -c {shlex.quote(command)}")
            channel.shutdown_write()
            out = bytearray()
            err = bytearray()
            while not (channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready()):
                if not read_available(channel, out.extend, err.extend):
                    if channel.closed:
                        break
                    select.select([channel], [], [], 0.5)
            code = channel.recv_exit_status()
        finally:
            channel.close()
            self._gate.released()
        return CommandResult(command=command, returncode=code, stdout_bytes=bytes(out), stderr_bytes=bytes(err))

    # -- files --------------------------------------------------------------------------
    def _sftp_client(self) -> paramiko.SFTPClient:
        """The session's SFTP channel; use it holding ``_sftp_lock`` (never while taking ``_lock``)."""
        transport = self._transport()
        with self._sftp_lock:
            sftp = self._sftp
            channel = sftp.get_channel() if sftp is not None else None
            if sftp is None or channel is None or channel.closed or channel.get_transport() is not transport:
                try:  # not _new_channel: its cleanup takes _sftp_lock, held here
                    channel = self._gate.open(transport)
                except (OSError, EOFError, paramiko.SSHException) as exc:
                    said = " ".join(str(exc).split()) or "the connection closed"
                    raise SessionError(f"cannot open an SFTP channel on {self.target}: {said}") from None
                try:
                    channel.invoke_subsystem("sftp")
                    sftp = paramiko.SFTPClient(channel)
                except paramiko.SSHException as exc:
                    channel.close()
                    raise SessionError(f"{self.target} offers no SFTP subsystem ({exc})") from None
                self._sftp = sftp
            return sftp

    def _put_file(self, local: Path, remote: str) -> None:
        sftp = self._sftp_client()
        with self._sftp_lock:
            try:
                sftp.put(str(local), remote)
                sftp.chmod(remote, local.stat().st_mode & 0o7777)
            except OSError as exc:
                raise SessionError(f"cannot put {local} to {remote} on {self.target}: {_sftp_reason(exc)}") from None

    def _get_file(self, remote: str, local: Path) -> None:
        sftp = self._sftp_client()
        with self._sftp_lock:
            try:
                mode = sftp.stat(remote).st_mode
                sftp.get(remote, str(local))
            except OSError as exc:
                raise SessionError(f"cannot get {remote} from {self.target}: {_sftp_reason(exc)}") from None
        if mode is not None:
            os.chmod(local, mode & 0o7777)

    def put_text(self, text: str, path: str, mode: int | None = None) -> None:
        """One round trip: ``cat`` fed the text through a shell."""
        quoted = shlex.quote(path)
        parent = posixpath.dirname(path)
        script = (f"mkdir -p -- {shlex.quote(parent)} && " if parent else "") + f"cat > {quoted}"
        if mode is not None:
            script += f" && chmod {mode:o} -- {quoted}"
        self.execute_command(script, check=True, stdin=text.encode("utf-8", "surrogateescape"))

    def _exec_channel(self, command_for_log: str) -> paramiko.Channel:
        """A fresh channel for a transfer (raw stdin/stdout, no shell framing)."""
        log.debug("opening a transfer channel on %s for %s", self.target, command_for_log)
        return self._new_channel(f"a transfer ({command_for_log})")

    def _tar_flavour(self) -> transfer.TarFlavour:
        """What the remote tar supports, asked once per session."""
        if self._tar is None:
            self._tar = transfer.TarFlavour.parse(self._execute(transfer.DETECT_TAR).stdout)
        return self._tar

    def _send(self, pairs: Sequence[tuple[Path, str]]) -> None:
        """All paths as one tar stream into ``tar -xf -`` at the remote root (merging, never deleting)."""
        targets = self._absolute_many([dest for _src, dest in pairs])
        if "/" in targets:
            raise SessionError("cannot put over the resource's root directory")
        flavour = self._tar_flavour()
        channel = self._exec_channel("tar -x")  # its failure to open says so itself
        with self._cut_off(f"sending files to {self.target}"):
            transfer.send(channel, flavour, [(src, t) for (src, _d), t in zip(pairs, targets)], self.target)

    def _fetch(self, staged: Sequence[tuple[str, Path]]) -> None:
        """All paths as one ``tar -cf - -T -`` stream, names on its stdin, unpacked into the staged paths."""
        sources = self._absolute_many([src for src, _path in staged])
        flavour = self._tar_flavour()
        channel = self._exec_channel("tar -c")
        with self._cut_off(f"fetching files from {self.target}"):
            transfer.fetch(channel, flavour, [(src, path) for src, (_s, path) in zip(sources, staged)], self.target)

    @contextlib.contextmanager
    def _cut_off(self, doing: str) -> Iterator[None]:
        """A transfer whose connection went away fails saying so, not as tar's exit status.

        A server that stops answering is given up by the keep-alive, which
        closes the connection: the tar channel then ends without an exit
        status (paramiko's -1), which said nothing true ("tar exited with -1",
        and core's advice to look for a full disk).
        """
        try:
            yield
        except (SessionError, EOFError, paramiko.SSHException) as exc:
            # paramiko's own (a channel closed before its command started) never reaches the user raw.
            if self.connected:
                if isinstance(exc, SessionError):
                    raise
                raise SessionError(f"{doing} failed: {' '.join(str(exc).split()) or type(exc).__name__}") from None
            raise ResourceConnectionError(f"{doing} was cut off: {self._why_closed()}",
                                          hint="Nothing is re-run; the next call reconnects.") from None

    # -- interactive --------------------------------------------------------------------
    def _interactive(self, command: str | None = None) -> int:
        """Attach this terminal to a pty on the host, over the session's own connection.

        Reusing the connection (rather than exec'ing the ``ssh`` client) means
        no second authentication, the same host-key policy and ssh_config
        handling as every other call, and no dependency on an ``ssh`` binary.
        """
        from reproman_backend_ssh.terminal import forward_terminal

        channel = self._new_channel("a terminal")
        try:
            return forward_terminal(channel, self.terminal_command(command))
        finally:
            channel.close()

    def terminal_command(self, command: str | None, env: dict[str, str] | None = None) -> str | None:
        """What a pty channel runs for ``login`` (None: the login shell itself)."""
        env = env if env is not None else (self._env or None)
        if command is None and not env:
            return None
        return wrap_command(command if command is not None else 'exec "${SHELL:-/bin/sh}" -l', env or None)

    def open_terminal_channel(self, command: str | None, columns: int, lines: int, *,
                              env: dict[str, str] | None = None, term: str | None = None) -> paramiko.Channel:
        """A pty channel running ``command`` (or the login shell), for a session host relaying ``login``."""
        channel = self._new_channel("a terminal")
        channel.get_pty(term=term or os.environ.get("TERM", "xterm"), width=columns, height=lines)
        line = self.terminal_command(command, env)
        if line is None:
            channel.invoke_shell()
        else:
            channel.exec_command(line)
        return channel


def _sftp_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError) or exc.errno == 2:
        return "no such file or directory"
    return exc.strerror or " ".join(str(exc).split()) or type(exc).__name__

