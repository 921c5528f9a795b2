"""Sessions that outlive one command: a host process per resource, shared by all of the user's ReproMan calls.

Opening a session can be the expensive part of a short command (an SSH
handshake, and on clusters a password or a two-factor code). So a backend
may, instead of opening its session in every CLI call, :func:`attach` to a
*session host*: a small background process (:mod:`reproman.resources.sessionhost`)
that holds one open session and serves the primitives of the session
contract to any number of client processes over a Unix socket. The first
call that needs it starts it; later calls, from any process of the same
user, reuse it; it exits after an idle time, on :func:`shutdown` (backends
call it from ``stop``/``delete``), or on SIGTERM. A host that died leaves a
socket nobody listens on; the next call replaces it transparently.

Safety:

* sockets live in a private directory (0700, owned by the user; checked
  before every use, never trusted when it is not) - ``$XDG_RUNTIME_DIR/reproman``,
  else ``/tmp/reproman-<uid>``, or ``[sessions] control_dir``;
* the host accepts connections only from processes of its own user;
* one host serves one set of session parameters for one HOME, agent
  socket, interpreter and protocol version: anything that could change how
  it authenticates or what code runs gives another host;
* questions for the user (passwords, passphrases, two-factor codes) are
  relayed to the terminal of the command that needs the connection; the
  answers stay in the host's memory only.

Any session type can be hosted: the host creates it from its registered
name and JSON-able keyword arguments. A hosted session may have an
``asker`` attribute (a callable returning the function that asks the user
a question, or None); the host replaces it to relay questions. For
``login`` it may have ``open_terminal_channel(command, columns, lines, env)``
returning a channel with paramiko's ``Channel`` interface.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import select
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from reproman.errors import ConfigError, ResourceError, SessionError
from reproman.resources import wire
from reproman.resources.session import CommandResult, OutputCallback, Session

lgr = logging.getLogger(__name__)

#: Seconds a host waits without requests before it exits (``[<section>] idle_timeout``).
DEFAULT_IDLE = 600.0
#: Seconds a host has to acknowledge a request before it is taken for hung and replaced.
ACCEPT_TIMEOUT = 15.0
#: Seconds a new host has to start listening.
START_TIMEOUT = 30.0
HOST_MODULE = "reproman.resources.sessionhost"

_warned: set[str] = set()


# -- configuration ---------------------------------------------------------------------
def enabled(section: str, override: bool | None = None) -> bool:
    """Whether sessions of a backend persist: its resource parameter, else ``[section] persistent`` (default yes)."""
    if override is not None:
        return bool(override)
    from reproman.config import get_config

    return get_config().getbool(section, "persistent", True)


def idle_seconds(section: str) -> float:
    """``[section] idle_timeout``: seconds an unused host stays (default 600)."""
    from reproman.config import get_config

    raw = get_config().get(section, "idle_timeout")
    if raw is None or not raw.strip():
        return DEFAULT_IDLE
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"[{section}] idle_timeout must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"[{section}] idle_timeout must be positive, got {raw!r}",
                          hint=f"To keep no connection open, set [{section}] persistent = no.")
    return value


def control_dir() -> Path:
    """The private directory holding host sockets, created if missing; ConfigError if it is not private."""
    from reproman.config import get_config

    configured = get_config().get("sessions", "control_dir")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if configured:
        path = Path(configured).expanduser()
    elif runtime and os.path.isdir(runtime):
        path = Path(runtime) / "reproman"
    else:
        path = Path("/tmp") / f"reproman-{os.geteuid()}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot create {path} for persistent connections: {exc.strerror or exc}") from None
    check_private(path)
    return path


def check_private(path: Path) -> None:
    """Refuse a directory another user could plant a socket in or read ours from."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise ConfigError(f"cannot use {path} for persistent connections: {exc.strerror or exc}") from None
    problem = None
    if stat.S_ISLNK(st.st_mode):
        problem = "it is a symbolic link"
    elif not stat.S_ISDIR(st.st_mode):
        problem = "it is not a directory"
    elif st.st_uid != os.geteuid():
        problem = f"it belongs to uid {st.st_uid}, not to you (uid {os.geteuid()})"
    elif st.st_mode & 0o077:
        problem = f"its mode is {stat.S_IMODE(st.st_mode):o}, not 700"
    if problem:
        raise ConfigError(
            f"not using {path} for persistent connections: {problem}",
            hint=f"Remove it or fix it (chmod 700 {path}); or set [sessions] control_dir to a private directory.",
        )


# -- one host ---------------------------------------------------------------------------
class _NotServed(Exception):
    """The host did not take the request (gone, or hung): safe to start another and retry."""


class Endpoint:
    """Where the host for one session type and parameters listens, and how to start it."""

    @classmethod
    def for_session(cls, directory: Path, type_name: str, params: Mapping[str, Any], *, idle: float = DEFAULT_IDLE,
                    label: str = "") -> Endpoint:
        return cls(directory, _key(type_name, params), type_name=type_name, params=params, idle=idle, label=label)

    def __init__(self, directory: Path, key: str, *, type_name: str = "", params: Mapping[str, Any] | None = None,
                 idle: float = DEFAULT_IDLE, label: str = "") -> None:
        self.directory = directory
        self.key = key
        self.type_name = type_name
        self.params = dict(params or {})
        self.idle = idle
        self.label = label or f"{type_name or 'a'} session"
        self.socket_path = directory / f"{self.key}.sock"
        self.pid_path = directory / f"{self.key}.pid"
        self.log_path = directory / f"{self.key}.log"
        self.lock_path = directory / f"{self.key}.lock"

    def connect(self, *, start: bool = True) -> socket.socket | None:
        """A connection to the running host, starting one when ``start`` (None when none runs and not started)."""
        sock = self._try_connect()
        if sock is not None or not start:
            return sock
        with self._start_lock():
            sock = self._try_connect()  # another process may have started it meanwhile
            if sock is None:
                self._spawn()
                sock = self._try_connect()
        if sock is None:
            raise ResourceError(f"the persistent connection process for {self.label} does not accept connections",
                                hint=f"See {self.log_path}; set persistent=no to connect directly.")
        return sock

    def _try_connect(self) -> socket.socket | None:
        try:
            st = os.lstat(self.socket_path)
        except FileNotFoundError:
            return None
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
            lgr.warning("removing %s: not a socket of yours", self.socket_path)
            self.socket_path.unlink(missing_ok=True)
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.socket_path))
        except (ConnectionRefusedError, FileNotFoundError):
            sock.close()
            return None  # a host that died: its socket is replaced by the next one
        except OSError:
            sock.close()
            raise
        return sock

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        """One process at a time starts a host for this key (others wait, then use it)."""
        import fcntl

        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ResourceError(f"another process has been starting the connection for {self.label} "
                                            f"for {START_TIMEOUT:.0f} s", hint=f"See {self.log_path}.") from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)

    def _spawn(self) -> None:
        """Start the host and wait until it listens."""
        import subprocess

        spec = {"type": self.type_name, "params": self.params, "socket": str(self.socket_path),
                "pid_file": str(self.pid_path), "idle": self.idle, "label": self.label}
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", HOST_MODULE],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_fd,
                cwd="/", start_new_session=True, close_fds=True,
            )
        finally:
            os.close(log_fd)
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(spec).encode("ascii") + b"\n")
            process.stdin.close()
            ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
            line = process.stdout.readline().decode("utf-8", "replace").strip() if ready else ""
        finally:
            process.stdout.close()
        if line != "ready":
            with contextlib.suppress(OSError):
                process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(START_TIMEOUT)  # the starter; a host that started has detached from it
        if line != "ready":
            said = line[len("error: "):] if line.startswith("error: ") else (
                _last_line(self.log_path) or "it did not start listening")
            raise ResourceError(f"cannot start the persistent connection process for {self.label}: {said}",
                                hint="Set persistent=no on the resource (or [ssh] persistent = no) to connect directly.")
        lgr.debug("started session host %s (pid %s) for %s", self.key, process.pid, self.label)

    def stop_hung(self) -> None:
        """Kill a host that took no request in time (it is ours: its pid file and command line say so)."""
        pid = _host_pid(self.pid_path)
        if pid is not None:
            lgr.warning("the persistent connection process for %s (pid %d) does not answer; replacing it",
                        self.label, pid)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.socket_path.unlink(missing_ok=True)

    def request_shutdown(self, wait: float = 5.0) -> bool:
        """Ask a running host to exit, and wait (up to ``wait`` seconds) until it has; whether one was running."""
        sock = self.connect(start=False)
        if sock is None:
            return False
        pid = _host_pid(self.pid_path)
        try:
            wire.send_json(sock, wire.REQUEST, {"op": "shutdown"})
            sock.settimeout(ACCEPT_TIMEOUT)
            reader = sock.makefile("rb")
            while wire.receive(reader) is not None:
                pass
        except (OSError, wire.ProtocolError):
            self.stop_hung()
        finally:
            sock.close()
        deadline = time.monotonic() + wait
        while pid is not None and _running(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        return True


def _key(type_name: str, params: Mapping[str, Any]) -> str:
    """Which host serves these parameters: anything that changes how it connects or what code runs."""
    from reproman import __version__

    material = {
        "type": type_name, "params": params, "protocol": wire.PROTOCOL, "version": __version__,
        "python": os.path.realpath(sys.executable), "home": os.environ.get("HOME", ""),
        "agent": os.environ.get("SSH_AUTH_SOCK", ""), "uid": os.geteuid(),
    }
    blob = json.dumps(material, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _host_pid(pid_path: Path) -> int | None:
    """The pid in a host's pid file, if that process is a session host."""
    try:
        pid = int(pid_path.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if HOST_MODULE.encode() in cmdline else None


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


# -- the client side of the contract ------------------------------------------------------
class PersistentSession(Session):
    """A session whose primitives run in a session host; closing it leaves the host running.

    Every call is one short-lived connection to the host, so calls from
    several threads, or processes, run side by side.
    """

    def __init__(self, endpoint: Endpoint, interactive: bool | None = None) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.interactive = interactive
        self._closed = False

    def __repr__(self) -> str:
        return f"PersistentSession({self.endpoint.label!r}, key={self.endpoint.key})"

    @property
    def connected(self) -> bool:
        return not self._closed

    def close(self) -> None:
        self._closed = True

    def open(self) -> PersistentSession:
        """Make sure the host is connected (authenticating now, asking here if it must)."""
        self._call("open")
        return self

    # -- primitives ---------------------------------------------------------------------
    def _execute(self, command: str, stdin: bytes | None = None,
                 on_output: OutputCallback | None = None) -> CommandResult:
        chunks: dict[int, list[bytes]] = {1: [], 2: []}
        emit = on_output or (lambda stream, data: chunks[stream].append(data))
        result = self._call("execute", command=command, stdin=stdin, on_output=emit)
        return CommandResult(command=command, returncode=int(result["returncode"]),
                             stdout_bytes=b"".join(chunks[1]), stderr_bytes=b"".join(chunks[2]))

    def _execute_aside(self, command: str) -> CommandResult:
        chunks: dict[int, list[bytes]] = {1: [], 2: []}
        result = self._call("aside", command=command, on_output=lambda stream, data: chunks[stream].append(data))
        return CommandResult(command=command, returncode=int(result["returncode"]),
                             stdout_bytes=b"".join(chunks[1]), stderr_bytes=b"".join(chunks[2]))

    def _put_file(self, local: Path, remote: str) -> None:
        self._call("put_file", local=os.path.abspath(local), remote=remote)

    def _get_file(self, remote: str, local: Path) -> None:
        self._call("get_file", remote=remote, local=os.path.abspath(local))

    def _send(self, pairs: Sequence[tuple[Path, str]]) -> None:
        self._call("send", pairs=[[os.path.abspath(src), dest] for src, dest in pairs])

    def _fetch(self, staged: Sequence[tuple[str, Path]]) -> None:
        self._call("fetch", staged=[[src, os.path.abspath(path)] for src, path in staged])

    def put_text(self, text: str, path: str, mode: int | None = None) -> None:
        self._call("put_text", text=text, path=path, mode=mode)

    def _interactive(self, command: str | None = None) -> int:
        from reproman.resources.terminal_relay import relay_terminal

        return relay_terminal(self, command)

    # -- one request --------------------------------------------------------------------
    def _asker(self) -> Any:
        """This process's way of asking the user (None: no terminal)."""
        if self.interactive is False:
            return None
        if self.interactive is None:
            try:
                if not sys.stdin or not sys.stdin.isatty():
                    return None
            except (OSError, ValueError):
                return None
        return ask_on_terminal

    def connect_request(self, op: str, args: Mapping[str, Any], stdin: bytes | None = None
                        ) -> tuple[socket.socket, Any]:
        """Send a request and wait until the host took it; replaces a dead or hung host once."""
        if self._closed:
            raise SessionError(f"the session to {self.endpoint.label} is closed")
        request = {"op": op, "interactive": self._asker() is not None, "stdin": stdin is not None, **args}
        for attempt in range(2):
            sock = self.endpoint.connect()
            assert sock is not None
            try:
                wire.send_json(sock, wire.REQUEST, request)
                if stdin is not None:
                    wire.send(sock, wire.STDIN, stdin)
                sock.settimeout(ACCEPT_TIMEOUT)
                reader = sock.makefile("rb")
                frame = wire.receive(reader)
                if frame is None or frame[0] != wire.ACCEPTED:
                    raise _NotServed()
                sock.settimeout(None)
                return sock, reader
            except (_NotServed, OSError, wire.ProtocolError) as exc:
                sock.close()
                if attempt:
                    raise SessionError(f"the persistent connection process for {self.endpoint.label} does not "
                                       f"take requests ({type(exc).__name__})",
                                       hint=f"See {self.endpoint.log_path}.") from None
                self.endpoint.stop_hung()
            except BaseException:
                sock.close()
                raise
        raise AssertionError("unreachable")

    def _call(self, op: str, *, stdin: bytes | None = None, on_output: OutputCallback | None = None,
              **args: Any) -> Any:
        sock, reader = self.connect_request(op, args, stdin)
        try:
            while True:
                frame = wire.receive(reader)
                if frame is None:
                    raise SessionError(
                        f"the persistent connection process for {self.endpoint.label} ended during {op}; "
                        "a command it ran may or may not have completed (it is not re-run)",
                        hint=f"See {self.endpoint.log_path}. The next call starts a new one.",
                    )
                kind, payload = frame
                if kind in (wire.STDOUT, wire.STDERR):
                    if on_output is not None:
                        on_output(1 if kind == wire.STDOUT else 2, payload)
                elif kind == wire.QUESTION:
                    question = wire.loads(payload)
                    ask = self._asker()
                    answer = ask(str(question["prompt"]), bool(question.get("echo"))) if ask else None
                    wire.send_json(sock, wire.ANSWER, {"answer": answer})
                elif kind == wire.RESULT:
                    message = wire.loads(payload)
                    if message.get("ok"):
                        return message.get("result")
                    raise wire.decode_error(message.get("error") or {})
        except wire.ProtocolError as exc:
            raise SessionError(f"broken reply from the persistent connection process for "
                               f"{self.endpoint.label}: {exc}") from None
        finally:
            sock.close()


_prompt_lock = threading.Lock()


def ask_on_terminal(prompt: str, echo: bool = False) -> str:
    """Ask the user one question on the controlling terminal, one question at a time per process.

    Sessions opened in parallel (``ls --refresh`` over several hosts) may
    all need a password at once; the lock keeps their prompts apart.
    """
    import getpass

    with _prompt_lock:
        if not echo:
            return getpass.getpass(prompt)
        try:
            with open("/dev/tty", "r+") as tty:
                tty.write(prompt)
                tty.flush()
                return tty.readline().rstrip("\n")
        except OSError:
            return input(prompt)


# -- what backends call -------------------------------------------------------------------
def attach(type_name: str, params: Mapping[str, Any], *, idle: float = DEFAULT_IDLE, label: str = "",
           interactive: bool | None = None) -> PersistentSession | None:
    """A session served by the host for these parameters (started on first use), or None.

    None means persistence cannot be used here (the control directory is
    not private); the reason is logged once and the caller connects directly.
    """
    try:
        directory = control_dir()
    except ConfigError as exc:
        if str(exc) not in _warned:
            _warned.add(str(exc))
            lgr.warning("%s; connecting directly", exc)
        return None
    return PersistentSession(Endpoint.for_session(directory, type_name, params, idle=idle, label=label), interactive)


def shutdown(type_name: str, params: Mapping[str, Any]) -> bool:
    """Make the host for these parameters exit, if one runs; whether one did."""
    try:
        directory = control_dir()
    except ConfigError:
        return False
    return Endpoint.for_session(directory, type_name, params).request_shutdown()


def shutdown_all(directory: Path | None = None) -> int:
    """Stop every host in ``directory`` (default: the control directory); how many were running."""
    directory = directory or control_dir()
    stopped = 0
    for path in sorted(directory.glob("*.sock")):
        stopped += Endpoint(directory, path.stem).request_shutdown()
    for pid_path in directory.glob("*.pid"):
        pid = _host_pid(pid_path)
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
    return stopped
