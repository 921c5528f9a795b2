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
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reproman.errors import ConfigError, SessionError
from reproman.resources import wire
from reproman.resources.endpoint import (  # noqa: F401 - re-exported: the module's public surface
    DEFAULT_IDLE,
    Endpoint,
    check_private,
    control_dir,
    host_pid,
)
from reproman.resources.session import CommandResult, OutputCallback, Session

lgr = logging.getLogger(__name__)

#: Seconds a host has to acknowledge a request before it is taken for hung and replaced.
ACCEPT_TIMEOUT = 15.0

#: Longest socket path the kernel takes (sun_path holds 108 bytes on Linux, 104 on BSDs).
UNIX_PATH_MAX = 100

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
    from reproman.config import config_number, get_config

    return config_number(get_config().get(section, "idle_timeout"), f"[{section}] idle_timeout", default=DEFAULT_IDLE,
                         above=True, seconds=True, hint=f"To keep no connection open, set [{section}] persistent = no.")


class _NotServed(Exception):
    """The host did not take the request (gone, or hung): safe to start another and retry."""


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
    def place(self) -> str:
        return self.endpoint.label

    @property
    def connected(self) -> bool:
        return not self._closed

    def close(self) -> None:
        self._closed = True

    def open(self) -> PersistentSession:
        """Make sure the host is connected (authenticating now, asking here if it must)."""
        self._call("open")
        return self

    def check_answers(self, timeout: float | None = None) -> None:
        """The host asks its connection's server (an open connection alone proves nothing)."""
        self._call("check_answers", timeout=timeout)

    # -- primitives ---------------------------------------------------------------------
    def _execute(self, command: str, stdin: bytes | None = None,
                 on_output: OutputCallback | None = None) -> CommandResult:
        chunks: dict[int, list[bytes]] = {1: [], 2: []}
        emit = on_output or (lambda stream, data: chunks[stream].append(data))
        result = self._call("execute", command=command, stdin=stdin, on_output=emit)
        return CommandResult(command=command, returncode=int(result["returncode"]),
                             stdout_bytes=b"".join(chunks[1]), stderr_bytes=b"".join(chunks[2]))

    def _execute_grouped(self, line: str, pgfile: str, stdin: bytes | None,
                         on_output: OutputCallback | None) -> CommandResult:
        chunks: dict[int, list[bytes]] = {1: [], 2: []}
        emit = on_output or (lambda stream, data: chunks[stream].append(data))
        result = self._call("execute", command=line, pgfile=pgfile, stdin=stdin, on_output=emit)
        return CommandResult(command=line, returncode=int(result["returncode"]),
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
                # A hung host must not hang us: bounded sending (a second per 10 MB of input) and waiting.
                sock.settimeout(ACCEPT_TIMEOUT + (len(stdin) / 10e6 if stdin else 0))
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
        ended = SessionError(
            f"the persistent connection process for {self.endpoint.label} ended during {op}; "
            "a command it ran may or may not have completed (it is not re-run)",
            hint=f"See {self.endpoint.log_path}. The next call starts a new one.",
        )
        try:
            while True:
                try:
                    frame = wire.receive(reader)
                except (wire.Truncated, ConnectionResetError):
                    frame = None  # killed while it wrote: the same as ending between frames
                if frame is None:
                    raise ended from None
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
    not private, or cannot hold a host's files: a full file system); the
    reason is logged once and the caller connects directly. The host is
    started here if none runs; one that cannot start for another reason
    raises its one-line ResourceError.
    """
    try:
        directory = control_dir()
        endpoint = Endpoint.for_session(directory, type_name, params, idle=idle, label=label)
        if len(os.fsencode(endpoint.socket_path)) > UNIX_PATH_MAX:
            raise ConfigError(f"not using {directory} for persistent connections: its path is too long for a "
                              "Unix socket", hint="Set [sessions] control_dir to a shorter directory.")
        # Started now (if none runs): a directory that cannot hold a host (a full disk) is found here,
        # while connecting directly is still possible.
        sock = endpoint.connect()
        if sock is not None:
            sock.close()
    except ConfigError as exc:
        if str(exc) not in _warned:
            _warned.add(str(exc))
            text = str(exc)
            lgr.warning("%s%s", text, " Connecting directly." if text.endswith(".") else "; connecting directly")
        return None
    return PersistentSession(endpoint, interactive)


def shutdown(type_name: str, params: Mapping[str, Any]) -> bool:
    """Make the host for these parameters exit, if one runs; whether one did."""
    try:
        directory = control_dir()
    except ConfigError:
        return False
    endpoint = Endpoint.for_session(directory, type_name, params)
    running = endpoint.request_shutdown()
    endpoint.remove_leftovers()  # unless it still finishes requests of other commands
    return running


def shutdown_all(directory: Path | None = None) -> int:
    """Stop every host in ``directory`` (default: the control directory); how many were running."""
    directory = directory or control_dir()
    stopped = 0
    for path in sorted(directory.glob("*.sock")):
        stopped += Endpoint(directory, path.stem).request_shutdown()
    for pid_path in directory.glob("*.pid"):
        pid = host_pid(pid_path)
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
    return stopped
