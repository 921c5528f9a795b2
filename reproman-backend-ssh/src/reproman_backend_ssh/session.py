"""The SSH session: one connection, one long-lived remote shell, tar for trees.

Why a persistent shell: opening an SSH channel per command costs about 90 ms
even on an open connection (sshd forks, sets up a session, runs the login
shell), which makes a job that stats a few hundred paths take half a
minute. Instead every command goes through one ``/bin/sh`` started once on
one channel. Each command still runs the way ``sh -c`` would run it (its own
``/bin/sh -c`` child, so ``exit`` or ``cd`` in it affect nothing after it)
with its own standard input (``/dev/null`` or the given bytes), and random
per-command markers printed on both streams after it exits delimit its
stdout and stderr exactly and carry its exit status.

Trees go as one tar stream over one extra channel (``tar -xf -`` fed from a
local ``tarfile`` writer, ``tar -chf -`` read back), never one SFTP round trip
per file. Single files use SFTP on the same connection.

Connections are made with Fabric so ``~/.ssh/config`` (HostName, Port, User,
IdentityFile, IdentitiesOnly, ProxyJump, ConnectTimeout) is honoured, but
host keys are checked here: Fabric itself accepts any host key.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import posixpath
import select
import shlex
import socket
import sys
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko

from reproman.errors import ConfigError, ResourceConnectionError, SessionError
from reproman.resources.session import CommandResult, Session, extract_to_staging, wrap_command

if TYPE_CHECKING:
    from fabric import Connection

# Under "reproman" so the CLI's -l/--log-level and handler apply to this plugin too.
log = logging.getLogger("reproman.backend_ssh")

#: Used when neither the caller nor ssh_config's ConnectTimeout says otherwise.
DEFAULT_CONNECT_TIMEOUT = 10
#: Standard input up to this size travels inline in the command line (as a
#: ``printf`` of octal escapes); larger input is uploaded over SFTP first.
INLINE_STDIN_LIMIT = 64 * 1024
_CHUNK = 256 * 1024
#: Bytes that ``printf`` passes through literally inside single quotes.
_PRINTF_SAFE = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !\"#&()*+,-./:;<=>?@[]^_`{|}~$"
)


class UnknownHostKeyError(paramiko.SSHException):
    """The server's key is not in known_hosts and accepting new keys was not asked for."""

    def __init__(self, hostname: str, key: paramiko.PKey, known_hosts: str) -> None:
        super().__init__(f"host key for {hostname} not in {known_hosts}")
        self.hostname = hostname
        self.key = key
        self.known_hosts = known_hosts


def fingerprint(key: paramiko.PKey) -> str:
    """The ``SHA256:...`` fingerprint OpenSSH prints, so users can compare."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


class _RejectUnknownPolicy(paramiko.MissingHostKeyPolicy):
    """Default policy: an unknown host is refused (OpenSSH's StrictHostKeyChecking=yes)."""

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise UnknownHostKeyError(hostname, key, self.known_hosts)


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Opt-in policy: trust an unknown host once and remember it (StrictHostKeyChecking=accept-new).

    The key is appended to known_hosts rather than rewriting the file, so the
    user's comments and hashed entries survive. A key that *differs* from a
    recorded one never reaches a policy: paramiko raises BadHostKeyException.
    """

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        path = Path(self.known_hosts)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with path.open("a") as handle:
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        except OSError as exc:
            log.warning("accepted host key for %s but could not record it in %s: %s", hostname, path, exc)
            return
        log.warning("accepted new host key for %s (%s), recorded in %s", hostname, fingerprint(key), path)


def printf_literal(data: bytes) -> str:
    """A single-quoted ``printf`` format that prints exactly ``data`` (NULs included)."""
    return "'" + "".join(chr(b) if b in _PRINTF_SAFE else f"\\{b:03o}" for b in data) + "'"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class _ChannelWriter(io.RawIOBase):
    """Write-only file over a channel's stdin, in large chunks (for ``tarfile`` ``w|``)."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        if len(self.buffer) >= _CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            self.channel.sendall(bytes(self.buffer))
            self.buffer.clear()


class SSHSession(Session):
    """A session on a host reached over SSH, with one connection for all calls.

    ``host`` may be a name, an address or a ``Host`` alias of the SSH config.
    ``ssh_config`` replaces the default files (``~/.ssh/config`` and
    ``/etc/ssh/ssh_config``) with one file; ``known_hosts`` replaces the
    user's known-hosts file (default: ssh_config's UserKnownHostsFile, else
    ``~/.ssh/known_hosts``). Unknown host keys are refused unless
    ``accept_new_host_key`` is true (or ssh_config says
    ``StrictHostKeyChecking accept-new``); a changed key always fails.
    A password or key passphrase is asked with :func:`getpass.getpass` when
    stdin is a terminal (``interactive``), kept in memory for reconnecting,
    and never written anywhere.

    The connection opens on first use (or :meth:`open`) and is re-opened on
    the next call after it drops. A command interrupted by a drop is *not*
    re-run: it may have had effects, so the call raises :class:`SessionError`.
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
        self.host = host
        self.port = int(port) if port else None
        self.user = user or None
        self.key_filename = os.path.expanduser(key_filename) if key_filename else None
        self.connect_timeout = connect_timeout
        self.accept_new_host_key = bool(accept_new_host_key)
        self.ssh_config = os.path.expanduser(os.fspath(ssh_config)) if ssh_config else None
        self.known_hosts = os.path.expanduser(os.fspath(known_hosts)) if known_hosts else None
        self.interactive = interactive
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._shell: paramiko.Channel | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._secrets: dict[str, str] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"SSHSession(host={self.host!r}, port={self.port!r}, user={self.user!r})"

    # -- connection ---------------------------------------------------------------
    @property
    def target(self) -> str:
        """``host:port`` as resolved through ssh_config, for messages."""
        if self._conn is not None:
            resolved = f"{self._conn.host}:{self._conn.port}"
            return resolved if self._conn.host == self.host else f"{self.host} ({resolved})"
        return f"{self.host}:{self.port or 22}"

    def open(self) -> SSHSession:
        """Connect now (instead of on first use); raise ResourceConnectionError on failure."""
        self._transport()
        return self

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
                self._connect()
            assert self._conn is not None and self._conn.transport is not None
            return self._conn.transport

    def _build_connection(self) -> Connection:
        from fabric import Config, Connection

        if self.ssh_config is not None and not os.path.isfile(self.ssh_config):
            raise ConfigError(f"ssh_config file {self.ssh_config} does not exist")
        config = Config(runtime_ssh_path=self.ssh_config) if self.ssh_config else Config()
        connect_kwargs: dict[str, Any] = {}
        if self.key_filename:
            connect_kwargs["key_filename"] = [self.key_filename]
        connect_kwargs.update(self._secrets)
        conn = Connection(
            self.host,
            user=self.user,
            port=self.port,
            config=config,
            connect_kwargs=connect_kwargs,
            connect_timeout=int(self.connect_timeout) if self.connect_timeout else None,
        )
        # Fabric accepts any host key (AutoAddPolicy); check them on every hop.
        hop: Any = conn
        while hop is not None and not isinstance(hop, (str, bool)):
            self._secure(hop)
            hop = hop.gateway
        return conn

    def _secure(self, conn: Connection) -> None:
        """Known-hosts checking, timeout and IdentitiesOnly for one hop."""
        client = conn.client
        system = "/etc/ssh/ssh_known_hosts"
        if os.path.isfile(system):
            client.load_system_host_keys(system)
        known = self.known_hosts or _first(conn.ssh_config.get("userknownhostsfile"))
        known = os.path.expanduser(known or "~/.ssh/known_hosts")
        if os.path.isfile(known):
            try:
                client.load_host_keys(known)
            except (OSError, paramiko.SSHException) as exc:
                raise ConfigError(f"cannot read known_hosts file {known}: {exc}") from exc
        accept = self.accept_new_host_key or conn.ssh_config.get("stricthostkeychecking") == "accept-new"
        client.set_missing_host_key_policy(_AcceptNewPolicy(known) if accept else _RejectUnknownPolicy(known))
        if conn.connect_timeout is None:
            conn.connect_timeout = DEFAULT_CONNECT_TIMEOUT
        # A port that accepts but never speaks SSH must fail as fast as one that refuses.
        conn.connect_kwargs.setdefault("banner_timeout", conn.connect_timeout)
        conn.connect_kwargs.setdefault("auth_timeout", max(conn.connect_timeout, 30))
        if conn.ssh_config.get("identitiesonly") == "yes":
            conn.connect_kwargs.update(look_for_keys=False, allow_agent=False)

    def _connect(self) -> None:
        """Open the connection, asking for a password or passphrase once if that is what is missing."""
        for attempt in range(2):
            conn = self._build_connection()
            try:
                conn.open()
                conn.transport.set_keepalive(30)
                self._conn = conn
                return
            except paramiko.PasswordRequiredException as exc:
                _close_quietly(conn)
                if attempt or not self._may_prompt():
                    raise self._connection_error(conn, exc) from None
                self._ask("passphrase", f"Passphrase for the SSH key of {conn.user}@{conn.host}: ")
            except paramiko.BadHostKeyException as exc:
                _close_quietly(conn)
                raise ResourceConnectionError(
                    f"host key of {exc.hostname} does NOT match the one recorded in known_hosts "
                    f"(got {fingerprint(exc.key)}, expected {fingerprint(exc.expected_key)}): "
                    "someone may be intercepting the connection, or the host was reinstalled",
                    hint=f"If the change is expected, remove the old key: ssh-keygen -R '{exc.hostname}'.",
                ) from None
            except UnknownHostKeyError as exc:
                _close_quietly(conn)
                raise ResourceConnectionError(
                    f"host key of {exc.hostname} ({fingerprint(exc.key)}) is not in {exc.known_hosts}",
                    hint="Verify it and add it (ssh-keyscan), or pass -b accept_new_host_key=yes to trust it once.",
                ) from None
            except paramiko.AuthenticationException as exc:
                _close_quietly(conn)
                if attempt or not self._may_prompt():
                    raise self._connection_error(conn, exc) from None
                self._ask("password", f"Password for {conn.user}@{conn.host}: ")
            except (OSError, EOFError, paramiko.SSHException) as exc:
                _close_quietly(conn)
                raise self._connection_error(conn, exc) from None

    def _connection_error(self, conn: Connection, exc: BaseException) -> ResourceConnectionError:
        where = f"{conn.host}:{conn.port}"
        if conn.host != self.host:
            where = f"{self.host} ({where})"
        if conn.gateway:
            where += " via ProxyJump" if not isinstance(conn.gateway, str) else " via ProxyCommand"
        if isinstance(exc, paramiko.AuthenticationException):
            return ResourceConnectionError(
                f"SSH authentication as {conn.user!r} to {where} failed: {_one_line(exc)}",
                hint="Check user and key_filename (or IdentityFile in ~/.ssh/config).",
            )
        if isinstance(exc, (socket.timeout, TimeoutError)):
            reason = f"timed out after {conn.connect_timeout} s"
        elif isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            reason = "; ".join(sorted({e.strerror or str(e) for e in exc.errors.values()})) or "connection refused"
        elif isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror
        else:
            reason = _one_line(exc) or type(exc).__name__
        return ResourceConnectionError(f"cannot reach SSH host {where}: {reason}")

    def _may_prompt(self) -> bool:
        if self.interactive is not None:
            return self.interactive
        try:
            return sys.stdin is not None and sys.stdin.isatty()
        except (ValueError, OSError):
            return False

    def _ask(self, what: str, prompt: str) -> None:
        import getpass

        self._secrets[what] = getpass.getpass(prompt)

    def _drop(self) -> None:
        """Forget the connection and everything opened on it (after a drop or on close)."""
        for thing in (self._shell, self._sftp):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing a dead channel may fail any way
                    pass
        self._shell = None
        self._sftp = None
        if self._conn is not None:
            _close_quietly(self._conn)
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()
            self._closed = True

    # -- commands ---------------------------------------------------------------------
    def _shell_channel(self) -> paramiko.Channel:
        transport = self._transport()
        shell = self._shell
        if shell is None or shell.closed or shell.eof_received or shell.exit_status_ready():
            if shell is not None:
                shell.close()
            shell = transport.open_session()
            # No pty: stdout and stderr stay two streams. ``exec`` makes the
            # long-lived shell sh itself whatever the login shell is.
            shell.exec_command("exec /bin/sh")
            self._shell = shell
        return shell

    def _execute(self, command: str, stdin: bytes | None = None) -> CommandResult:
        tag = os.urandom(12).hex()
        begin, end = f"__RM_B_{tag}", f"__RM_E_{tag}"
        quoted = shlex.quote(command)
        with self._lock:
            cleanup = ""
            if stdin is None:
                run = f"/bin/sh -c {quoted} </dev/null"
            elif len(stdin) <= INLINE_STDIN_LIMIT:
                run = f"printf {printf_literal(stdin)} | /bin/sh -c {quoted}"
            else:
                staged = f"/tmp/reproman-stdin-{tag}"
                self._sftp_client().putfo(io.BytesIO(stdin), staged)
                run = f"/bin/sh -c {quoted} <{staged}"
                cleanup = f"rm -f {staged}; "
            line = (
                f"printf %s {begin}; printf %s {begin} >&2; {run}; __rm_rc=$?; {cleanup}"
                f"printf '%s %d\\n' {end} \"$__rm_rc\"; printf '%s\\n' {end} >&2\n"
            )
            try:
                shell = self._shell_channel()
                shell.sendall(line.encode("utf-8", "surrogateescape"))
            except (OSError, EOFError, paramiko.SSHException):
                # Not delivered, so not run: reconnect and send it once more.
                self._drop()
                shell = self._shell_channel()
                shell.sendall(line.encode("utf-8", "surrogateescape"))
            try:
                out, err, code = self._read_framed(shell, begin.encode(), end.encode())
            except SessionError:
                self._shell = None
                if not self.connected:
                    self._drop()
                raise
        return CommandResult(
            command=command,
            returncode=code,
            stdout_bytes=bytes(out),
            stderr_bytes=bytes(err),
        )

    def _read_framed(self, shell: paramiko.Channel, begin: bytes, end: bytes) -> tuple[bytes, bytes, int]:
        """Collect both streams until each shows the end marker; parse the exit status."""
        out = bytearray()
        err = bytearray()
        out_end = err_end = -1
        out_seen = err_seen = 0
        code: int | None = None

        def take_out(data: bytes) -> None:
            out.extend(data)

        def take_err(data: bytes) -> None:
            err.extend(data)

        def done() -> bool:
            nonlocal out_end, err_end, out_seen, err_seen, code
            if code is None:
                start = max(0, out_seen - len(end) - 32)
                out_seen = len(out)
                index = out.find(end, start)
                if index >= 0:
                    newline = out.find(b"\n", index)
                    if newline < 0:
                        out_seen = index  # rescan once the status line is complete
                    else:
                        out_end = index
                        code = int(out[index + len(end) : newline].strip())
            if err_end < 0:
                start = max(0, err_seen - len(end) - 2)
                err_seen = len(err)
                err_end = err.find(end + b"\n", start)
            return code is not None and err_end >= 0

        self._pump(shell, take_out, take_err, done)
        assert code is not None
        return _after(out[:out_end], begin), _after(err[:err_end], begin), code

    def _pump(
        self,
        channel: paramiko.Channel,
        on_out: Callable[[bytes], None],
        on_err: Callable[[bytes], None],
        done: Callable[[], bool],
    ) -> None:
        """Feed a channel's two streams to callbacks until ``done()`` or end of file.

        Both streams are drained as they arrive so a command that writes much
        to one while the other is unread cannot stall on the SSH window.
        """
        while True:
            if _read_available(channel, on_out, on_err):
                if done():
                    return
                continue
            if channel.closed or channel.eof_received or not channel.get_transport().is_active():
                if channel.recv_ready() or channel.recv_stderr_ready():
                    continue
                if done():
                    return
                raise SessionError(
                    f"connection to {self.target} lost while a command was running; it may or may not "
                    "have completed (it is not re-run). The next call reconnects."
                )
            select.select([channel], [], [], 1.0)

    # -- files ----------------------------------------------------------------------
    def _sftp_client(self) -> paramiko.SFTPClient:
        with self._lock:
            self._transport()
            sftp = self._sftp
            if sftp is None or sftp.get_channel() is None or sftp.get_channel().closed:  # type: ignore[union-attr]
                assert self._conn is not None
                sftp = self._conn.client.open_sftp()
                self._sftp = sftp
            return sftp

    def _put_file(self, local: Path, remote: str) -> None:
        with self._lock:
            sftp = self._sftp_client()
            try:
                sftp.put(str(local), remote)
                sftp.chmod(remote, local.stat().st_mode & 0o7777)
            except OSError as exc:
                raise SessionError(f"cannot put {local} to {remote} on {self.target}: {_sftp_reason(exc)}") from None

    def _get_file(self, remote: str, local: Path) -> None:
        with self._lock:
            sftp = self._sftp_client()
            try:
                mode = sftp.stat(remote).st_mode
                sftp.get(remote, str(local))
            except OSError as exc:
                raise SessionError(f"cannot get {remote} from {self.target}: {_sftp_reason(exc)}") from None
        if mode is not None:
            os.chmod(local, mode & 0o7777)

    def put_text(self, text: str, path: str, mode: int | None = None) -> None:
        """One round trip: ``cat`` fed the text through the persistent shell."""
        quoted = shlex.quote(path)
        parent = posixpath.dirname(path)
        script = (f"mkdir -p -- {shlex.quote(parent)} && " if parent else "") + f"cat > {quoted}"
        if mode is not None:
            script += f" && chmod {mode:o} -- {quoted}"
        self.execute_command(script, check=True, stdin=text.encode("utf-8"))

    def _exec_channel(self, command: str) -> paramiko.Channel:
        """A fresh channel running ``command`` (only for transfers that need a raw stdin/stdout)."""
        with self._lock:
            channel = self._transport().open_session()
        channel.exec_command(command)
        return channel

    def _run_checked(self, script: str) -> str:
        return self._execute(script).check().stdout

    def put_many(self, items: Iterable[tuple[str | os.PathLike[str], str]]) -> None:
        """Send all paths as one tar stream over one channel, then move them into place.

        Members are numbered (``0``, ``1``...) so each can land at any
        destination; ownership in the archive is reset so the remote user
        owns what it receives.
        """
        pairs = [(Path(src), dest) for src, dest in items]
        if not pairs:
            return
        for src, _dest in pairs:
            if not src.exists() and not src.is_symlink():
                raise SessionError(f"cannot put {src}: no such file or directory")
        stage = self._run_checked('mktemp -d "${TMPDIR:-/tmp}/reproman-put.XXXXXX"').strip()
        try:
            channel = self._exec_channel(f"tar -xf - -C {shlex.quote(stage)}")
            errors = bytearray()
            try:
                writer = _ChannelWriter(channel)
                with tarfile.open(fileobj=writer, mode="w|") as tar:
                    for i, (src, _dest) in enumerate(pairs):
                        tar.add(str(src), arcname=str(i), filter=_owned_by_receiver)
                writer.flush()
                channel.shutdown_write()
                _drain(channel, _ignore, errors.extend)
                status = channel.recv_exit_status()
            except (OSError, EOFError, paramiko.SSHException) as exc:
                while channel.recv_stderr_ready():
                    errors.extend(channel.recv_stderr(_CHUNK))
                detail = errors.decode("utf-8", "replace").strip() or _one_line(exc)
                raise SessionError(f"cannot put files on {self.target}: {detail}") from None
            finally:
                channel.close()
            if status != 0:
                raise SessionError(
                    f"cannot put files on {self.target}: tar exited {status}: {errors.decode('utf-8', 'replace').strip()}"
                )
            moves = [f"S={shlex.quote(stage)}"]
            for i, (_src, dest) in enumerate(pairs):
                q = shlex.quote(dest)
                moves.append(f'mkdir -p -- "$(dirname -- {q})" && rm -rf -- {q} && mv -- "$S/{i}" {q} || exit 1')
            self._run_checked("\n".join(moves))
        finally:
            self._execute(f"rm -rf -- {shlex.quote(stage)}")

    def _fetch(self, staged: Sequence[tuple[str, Path]]) -> None:
        """Bring all paths back as one ``tar -ch`` stream over one channel."""
        pairs = list(staged)
        if not pairs:
            return
        lines = ['S=$(mktemp -d "${TMPDIR:-/tmp}/reproman-get.XXXXXX") || exit 1']
        for i, (src, _dest) in enumerate(pairs):
            q = shlex.quote(src)
            target = q if posixpath.isabs(src) else f'"$PWD"/{q}'
            lines.append(
                f'if [ -e {target} ] || [ -L {target} ]; then ln -s -- {target} "$S/{i}"; '
                f"else printf 'cannot get %s: no such file or directory\\n' {q} >&2; rm -rf -- \"$S\"; exit 2; fi"
            )
        lines.append('printf %s "$S"')
        result = self._execute("\n".join(lines))
        if result.returncode != 0:
            raise SessionError(result.stderr.strip() or f"cannot get {', '.join(s for s, _ in pairs)}")
        stage = result.stdout.strip()
        try:
            with tempfile.TemporaryDirectory(prefix="reproman-") as tmp:
                archive = Path(tmp) / "get.tar"
                errors = bytearray()
                channel = self._exec_channel(f"tar -chf - -C {shlex.quote(stage)} .")
                try:
                    with archive.open("wb") as handle:
                        _drain(channel, handle.write, errors.extend)
                    status = channel.recv_exit_status()
                except (OSError, EOFError, paramiko.SSHException) as exc:
                    raise SessionError(f"cannot get files from {self.target}: {_one_line(exc)}") from None
                finally:
                    channel.close()
                if status != 0:
                    detail = errors.decode("utf-8", "replace").strip()
                    raise SessionError(f"cannot get files from {self.target}: tar exited {status}: {detail}")
                extract_to_staging(archive, [(str(i), dest) for i, (_src, dest) in enumerate(pairs)])
        finally:
            self._execute(f"rm -rf -- {shlex.quote(stage)}")

    # -- interactive --------------------------------------------------------------------
    def _interactive(self, command: str | None = None) -> int:
        """Attach this terminal to a pty on the host, over the session's own connection.

        Reusing the connection (rather than exec'ing the ``ssh`` client) means
        no second authentication or password prompt, the same host-key policy
        and ssh_config handling as every other call, and no dependency on an
        ``ssh`` binary. The local terminal is put in raw mode so keys such as
        Ctrl-C reach the remote side; window-size changes are forwarded.
        """
        from reproman_backend_ssh.terminal import forward_terminal

        with self._lock:
            channel = self._transport().open_session()
        try:
            env = self._env or None
            if command is None and env is None:
                return forward_terminal(channel, None)
            line = wrap_command(command if command is not None else 'exec "${SHELL:-/bin/sh}" -l', env)
            return forward_terminal(channel, line)
        finally:
            channel.close()


def _read_available(channel: paramiko.Channel, on_out: Callable[[bytes], Any], on_err: Callable[[bytes], Any]) -> bool:
    """Hand whatever is buffered on either stream to its callback; whether anything was."""
    got = False
    if channel.recv_ready():
        data = channel.recv(_CHUNK)
        if data:
            on_out(data)
            got = True
    if channel.recv_stderr_ready():
        data = channel.recv_stderr(_CHUNK)
        if data:
            on_err(data)
            got = True
    return got


def _drain(channel: paramiko.Channel, on_out: Callable[[bytes], Any], on_err: Callable[[bytes], Any]) -> None:
    """Read a channel's two streams to end of file."""
    while True:
        if _read_available(channel, on_out, on_err):
            continue
        if channel.eof_received or channel.closed:
            if not (channel.recv_ready() or channel.recv_stderr_ready()):
                return
            continue
        select.select([channel], [], [], 1.0)


def _ignore(data: bytes) -> None:
    """Discard a stream (tar -x says nothing on stdout)."""


def _after(data: bytearray, begin: bytes) -> bytes:
    """What follows the begin marker (anything before it is stray output of earlier background jobs)."""
    index = data.find(begin)
    return bytes(data[index + len(begin) :] if index >= 0 else data)


def _owned_by_receiver(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _sftp_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError) or exc.errno == 2:
        return "no such file or directory"
    return exc.strerror or _one_line(exc) or type(exc).__name__


def _first(value: Any) -> str | None:
    """The first of ssh_config's (possibly several, space-separated) file names."""
    if isinstance(value, list):
        value = value[0] if value else None
    words = str(value).split() if value else []
    return words[0] if words else None


def _close_quietly(conn: Connection) -> None:
    hop: Any = conn
    while hop is not None and not isinstance(hop, (str, bool)):
        try:
            hop.close()
        except Exception:  # a half-open connection may fail to close any way
            pass
        hop = hop.gateway
