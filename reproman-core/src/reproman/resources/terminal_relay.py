"""``login`` through a session host: this terminal on one side, the host's pty channel on the other.

The host holds the connection (and so the only authentication); this
process owns the terminal. Keys go to the host as they are typed (the
terminal in raw mode, so Ctrl-C reaches the remote side), output comes back
to file descriptors 1 and 2, window-size changes follow.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from types import FrameType
from typing import Any, Protocol

from reproman.errors import SessionError
from reproman.resources import wire
from reproman.resources.endpoint import Endpoint

_CHUNK = 64 * 1024


class HostedSession(Protocol):
    """What the relay needs of a session served by a host: a :class:`reproman.resources.persistent.PersistentSession`."""

    @property
    def endpoint(self) -> Endpoint: ...

    def get_envvars(self) -> dict[str, str]: ...

    def connect_request(self, op: str, args: Mapping[str, Any],
                        stdin: bytes | None = None) -> tuple[socket.socket, Any]: ...


def relay_terminal(session: HostedSession, command: str | None) -> int:
    """Run ``command`` (or the login shell) on a pty through the host; return its exit status."""
    size = shutil.get_terminal_size((80, 24))
    env = session.get_envvars() or None
    sock, reader = session.connect_request("login", {"command": command, "env": env, "columns": size.columns,
                                                     "lines": size.lines, "term": os.environ.get("TERM", "xterm")})
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()  # what Python buffered must come before the remote output
        except (OSError, ValueError):
            pass
    outcome: dict[str, Any] = {}

    def pump_output() -> None:
        try:
            while True:
                frame = wire.receive(reader)
                if frame is None:
                    return
                kind, payload = frame
                if kind in (wire.STDOUT, wire.STDERR):
                    _write(1 if kind == wire.STDOUT else 2, payload)
                elif kind == wire.RESULT:
                    outcome["message"] = wire.loads(payload)
                    return
        except (OSError, wire.ProtocolError) as exc:
            outcome["broken"] = exc

    output = threading.Thread(target=pump_output, name="reproman-login-output", daemon=True)
    output.start()
    stdin_fd = 0
    try:
        tty_in = os.isatty(stdin_fd)
    except OSError:
        tty_in = False
    saved: Any = None
    old_winch: Any = None
    resized = threading.Event()
    if tty_in:
        import termios
        import tty

        saved = termios.tcgetattr(stdin_fd)
        tty.setraw(stdin_fd, termios.TCSADRAIN)
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGWINCH"):
        def on_winch(signum: int, frame: FrameType | None) -> None:
            resized.set()

        old_winch = signal.signal(signal.SIGWINCH, on_winch)
    stdin_open = True
    try:
        while output.is_alive():
            if resized.is_set():
                resized.clear()
                size = shutil.get_terminal_size((80, 24))
                wire.send_json(sock, wire.WINDOW, {"columns": size.columns, "lines": size.lines})
            if not stdin_open:
                output.join(0.2)
                continue
            try:
                ready, _, _ = select.select([stdin_fd], [], [], 0.2)
            except (OSError, ValueError):
                stdin_open = False
                continue
            if ready:
                try:
                    data = os.read(stdin_fd, _CHUNK)
                except OSError:
                    data = b""
                wire.send(sock, wire.STDIN, data)
                stdin_open = bool(data)
    except OSError:
        pass  # the host went away; the outcome says so below
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        output.join(5)
        sock.close()
    message = outcome.get("message")
    if message is None:
        raise SessionError(f"the persistent connection process for {session.endpoint.label} ended during login")
    if not message.get("ok"):
        raise wire.decode_error(message.get("error") or {})
    return int(message["result"]["returncode"])


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
