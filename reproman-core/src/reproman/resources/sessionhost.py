"""The session host: one open session, served to the user's ReproMan processes over a Unix socket.

Started by :mod:`reproman.resources.persistent` as
``python -m reproman.resources.sessionhost`` with a JSON spec on stdin. It
creates the session, listens (the socket appears by an atomic rename, so
it replaces a dead host's socket without a gap), prints ``ready``, and then
serves each connection in a thread of its own: concurrent commands run
side by side on the one session. It exits when no request has been served
for its idle time, on a ``shutdown`` request (once the requests in flight are
done; it takes no new ones), or on SIGTERM (at once), removing its
socket only if that socket is still its own.

What it writes to stderr (its log file in the control directory) is for
diagnosis; questions for the user go to the client that made the request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from reproman.errors import SessionError, reason
from reproman.resources import wire
from reproman.resources.session import Session

lgr = logging.getLogger("reproman.resources.sessionhost")

_ACCEPT_POLL = 0.5


class _Client:
    """One connection: writes are serialised (output and questions may come from two threads)."""

    def __init__(self, conn: socket.socket, reader: BinaryIO) -> None:
        self.conn = conn
        self.reader = reader
        self.lock = threading.Lock()

    def send(self, kind: bytes, payload: bytes = b"") -> None:
        with self.lock:
            wire.send(self.conn, kind, payload)

    def send_json(self, kind: bytes, value: Any) -> None:
        self.send(kind, json.dumps(value).encode("ascii"))

    def output(self, stream: int, data: bytes) -> None:
        if data:
            self.send(wire.STDOUT if stream == 1 else wire.STDERR, data)

    def ask(self, prompt: str, echo: bool) -> str:
        """Put a question to the user at the client's terminal and wait for the answer."""
        self.send_json(wire.QUESTION, {"prompt": prompt, "echo": echo})
        frame = wire.receive(self.reader)
        if frame is None or frame[0] != wire.ANSWER:
            raise SessionError("the command that needed the answer went away")
        answer = wire.loads(frame[1]).get("answer")
        if answer is None:
            raise SessionError("the question could not be asked (no terminal)")
        return str(answer)


class _ClientWatch:
    """Calls ``on_gone`` once if the client's end of ``conn`` closes before :meth:`done`.

    A client killed with ``kill -9`` cannot ask for its command to be
    stopped, and a command that prints nothing would never notice the
    closed connection: without this it runs on, orphaned, on the resource.
    The client sends nothing while a command runs (but answers to
    questions), so a readable socket with nothing to peek is its end closing.
    """

    def __init__(self, conn: socket.socket, on_gone: Any) -> None:
        self._conn = conn
        self._on_gone = on_gone
        self._done = threading.Event()
        threading.Thread(target=self._run, name="reproman-host-watch", daemon=True).start()

    def done(self) -> None:
        self._done.set()

    def _run(self) -> None:
        import select

        while not self._done.is_set():
            try:
                readable, _, _ = select.select([self._conn], [], [], 0.5)
            except (OSError, ValueError):
                return
            if self._done.is_set() or not readable:
                continue
            try:
                peeked = self._conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                peeked = b""
            if peeked:
                time.sleep(0.2)  # an answer to a question, for the thread that asked
                continue
            if not self._done.is_set():
                lgr.info("the client went away while its request was served")
                self._on_gone()
            return


class Host:
    """Serves one session until idle, told to stop, or terminated."""

    def __init__(self, spec: dict[str, Any], session: Session) -> None:
        self.session = session
        self.socket_path = Path(spec["socket"])
        self.pid_path = Path(spec["pid_file"]) if spec.get("pid_file") else None
        self.idle = float(spec.get("idle") or 600)
        self.label = str(spec.get("label") or spec.get("type"))
        self.stopping = threading.Event()
        #: Set by a shutdown request: exit once the requests being served are done.
        self.draining = threading.Event()
        #: Set by SIGTERM: exit now, even while draining.
        self.stopping_now = threading.Event()
        self._lock = threading.Lock()
        #: Notified whenever a request ends (see :meth:`wait_for_requests`).
        self._finished = threading.Condition(self._lock)
        self._active = 0
        self._last = time.monotonic()
        self._local = threading.local()
        self._inode: int | None = None
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if hasattr(session, "asker"):
            session.asker = self._asker

    # -- lifecycle --------------------------------------------------------------------
    def bind(self) -> None:
        """Listen on a fresh socket and move it into place (replacing a dead host's) in one rename."""
        fresh = self.socket_path.with_name(f"{self.socket_path.name}.{os.getpid()}.new")
        fresh.unlink(missing_ok=True)
        mask = os.umask(0o077)
        try:
            self.listener.bind(str(fresh))
        finally:
            os.umask(mask)
        self.listener.listen(64)
        os.rename(fresh, self.socket_path)
        self._inode = os.stat(self.socket_path).st_ino

    def write_pid_file(self) -> None:
        """Record this process, so a client can tell a hung host from a stranger before killing it."""
        if self.pid_path is not None:
            fd = os.open(self.pid_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{os.getpid()}\n")

    def stop(self) -> None:
        """Exit now (SIGTERM): requests being served are cut off."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)

    def retire(self) -> None:
        """Take no more requests, but exit only when those being served have finished (a shutdown request).

        ``reproman stop`` or ``delete`` of an SSH host closes its persistent
        connection; a command running through it in another terminal must
        not die of that (its remote side would run on, its output lost). The
        socket goes at once, so a new command starts a new connection meanwhile.
        """
        self.draining.set()
        self._unlink_socket()
        self.stop()

    def wait_for_requests(self) -> None:
        """Until no request is being served (or SIGTERM says to stop waiting)."""
        with self._finished:
            while self._active and not self.stopping_now.is_set():
                self._finished.wait(1.0)

    def _unlink_socket(self) -> None:
        with contextlib.suppress(OSError):
            if self._inode is not None and os.stat(self.socket_path).st_ino == self._inode:
                self.socket_path.unlink()

    def serve(self) -> None:
        self.listener.settimeout(_ACCEPT_POLL)
        lgr.info("serving %s on %s (idle timeout %.0f s)", self.label, self.socket_path, self.idle)
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                if self._idle_for() >= self.idle:
                    lgr.info("no request for %.0f s: exiting", self.idle)
                    break
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                raise
            conn.settimeout(None)
            if not _same_user(conn):
                lgr.warning("refused a connection from another user")
                conn.close()
                continue
            threading.Thread(target=self._serve_one, args=(conn,), name="reproman-host-request", daemon=True).start()

    def cleanup(self) -> None:
        """Remove the socket if it is still ours (a replacement host may own the name now), close the session."""
        self._unlink_socket()
        with contextlib.suppress(OSError, ValueError):
            if self.pid_path is not None and int(self.pid_path.read_text().split()[0]) == os.getpid():
                self.pid_path.unlink()
        with contextlib.suppress(Exception):
            self.session.close()
        lgr.info("stopped")

    def _idle_for(self) -> float:
        with self._lock:
            return 0.0 if self._active else time.monotonic() - self._last

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                self._last = time.monotonic()
                self._finished.notify_all()

    def _asker(self) -> Any:
        """The session asks the user through the client of the request being served (if it said it can)."""
        return getattr(self._local, "client", None) and self._local.client.ask

    # -- requests ---------------------------------------------------------------------
    def _serve_one(self, conn: socket.socket) -> None:
        with self._busy(), conn:
            reader = conn.makefile("rb")
            client = _Client(conn, reader)
            try:
                frame = wire.receive(reader)
                if frame is None or frame[0] != wire.REQUEST:
                    return
                request = wire.loads(frame[1])
                stdin = None
                if request.get("stdin"):
                    data = wire.receive(reader)
                    if data is None or data[0] != wire.STDIN:
                        return
                    stdin = data[1]
                client.send(wire.ACCEPTED)
            except (OSError, wire.ProtocolError, ValueError):
                return
            self._local.client = client if request.get("interactive") else None
            try:
                result = self._dispatch(str(request.get("op")), request, stdin, client)
                client.send_json(wire.RESULT, {"ok": True, "result": result})
            except Exception as exc:
                if not isinstance(exc, (OSError, wire.ProtocolError)):
                    lgr.info("%s failed: %s", request.get("op"), reason(exc))
                with contextlib.suppress(OSError):
                    client.send_json(wire.RESULT, {"ok": False, "error": wire.encode_error(exc)})
            finally:
                self._local.client = None

    def _dispatch(self, op: str, request: dict[str, Any], stdin: bytes | None, client: _Client) -> Any:
        session = self.session
        if op == "open":
            session.open()
            return None
        if op == "check_answers":
            timeout = request.get("timeout")
            session.check_answers(float(timeout) if timeout is not None else None)
            return None
        if op == "execute":
            pgfile = request.get("pgfile")
            watch = _ClientWatch(client.conn, lambda: session.stop_interrupted(str(pgfile), "HUP")) if pgfile else None
            try:
                result = session._execute(request["command"], stdin=stdin, on_output=client.output)
            finally:
                if watch is not None:
                    watch.done()
            return {"returncode": result.returncode}
        if op == "aside":
            result = session._execute_aside(request["command"])
            client.output(1, result.stdout_bytes)
            client.output(2, result.stderr_bytes)
            return {"returncode": result.returncode}
        if op == "put_file":
            session._put_file(Path(request["local"]), request["remote"])
            return None
        if op == "get_file":
            session._get_file(request["remote"], Path(request["local"]))
            return None
        if op == "send":
            session._send([(Path(src), dest) for src, dest in request["pairs"]])
            return None
        if op == "fetch":
            return self._fetch(request, client)
        if op == "put_text":
            session.put_text(request["text"], request["path"], request.get("mode"))
            return None
        if op == "login":
            return self._login(request, client)
        if op == "hello":
            return {"pid": os.getpid(), "label": self.label, "protocol": wire.PROTOCOL}
        if op == "shutdown":
            with self._lock:
                others = self._active - 1
            lgr.info("shutdown requested%s", f": exiting after {others} request(s) in flight" if others else "")
            self.retire()
            return {"in_flight": others}
        raise SessionError(f"unknown request {op!r} (a newer ReproMan?)")

    def _fetch(self, request: dict[str, Any], client: _Client) -> Any:
        """Fill the client's staging directory, which outlives the client if it is killed or interrupted.

        The directory is held while it is written (nobody removes a tree
        being written: that would leave directories recreated without their
        marker, never to be removed); if the client went away meanwhile,
        nobody will land what arrived, so the host removes the directory.
        """
        from reproman.resources.landing import remove_staging, writing_into

        staged = [(str(src), Path(path)) for src, path in request["staged"]]
        stages = sorted({path.parent for _src, path in staged})
        gone = threading.Event()
        watch = _ClientWatch(client.conn, gone.set)
        try:
            with contextlib.ExitStack() as held:
                for stage in stages:
                    held.enter_context(writing_into(stage))
                try:
                    self.session._fetch(staged)
                finally:
                    watch.done()
                    if not gone.is_set() and _peer_closed(client.conn):
                        gone.set()
        finally:
            watch.done()
            if gone.is_set():
                for stage in stages:
                    if remove_staging(stage):
                        lgr.info("removed %s: the command that asked for it went away", stage)
        return None

    def _login(self, request: dict[str, Any], client: _Client) -> Any:
        """Relay the client's terminal to a pty channel of the session until the remote side exits."""
        opener = getattr(self.session, "open_terminal_channel", None)
        if opener is None:
            raise SessionError(f"{type(self.session).__name__} cannot log in through a persistent connection")
        channel = opener(request.get("command"), int(request.get("columns") or 80), int(request.get("lines") or 24),
                         env=request.get("env"), term=request.get("term"))

        def forward_input() -> None:
            try:
                while True:
                    frame = wire.receive(client.reader)
                    if frame is None:
                        channel.close()  # the terminal went away: hang up
                        return
                    kind, payload = frame
                    if kind == wire.STDIN:
                        if payload:
                            channel.sendall(payload)
                        else:
                            channel.shutdown_write()
                    elif kind == wire.WINDOW:
                        size = wire.loads(payload)
                        channel.resize_pty(width=int(size["columns"]), height=int(size["lines"]))
            except Exception:  # the channel or the client is gone; the output side ends too
                with contextlib.suppress(Exception):
                    channel.close()

        threading.Thread(target=forward_input, name="reproman-login-input", daemon=True).start()
        try:
            while True:
                got = False
                if channel.recv_ready():
                    client.output(1, channel.recv(65536))
                    got = True
                if channel.recv_stderr_ready():
                    client.output(2, channel.recv_stderr(65536))
                    got = True
                if got:
                    continue
                if channel.exit_status_ready() or channel.closed:
                    if channel.recv_ready() or channel.recv_stderr_ready():
                        continue
                    break
                import select

                select.select([channel], [], [], 0.5)
            return {"returncode": channel.recv_exit_status()}
        finally:
            channel.close()


def _peer_closed(conn: socket.socket) -> bool:
    """Whether the client's end of ``conn`` is closed now (it sends nothing while a request is served)."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _same_user(conn: socket.socket) -> bool:
    """Whether the peer runs as our user (Linux; elsewhere the 0700 directory is the only guard)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return True
    try:
        _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    except OSError:
        return False
    return uid == os.geteuid()


def _make_session(spec: dict[str, Any]) -> Session:
    from reproman.plugins.manager import get_plugin_manager

    cls = get_plugin_manager().session_type(str(spec["type"])).load()
    session: Session = cls(**spec.get("params") or {})
    return session


def _unusable(what: str, exc: OSError) -> int:
    """Tell the starter the control directory cannot hold a host (a full disk): it then connects directly.

    Said on stdout, not only in the log: the log is in that directory, and
    on a full file system it stays empty.
    """
    message = f"{what}: {exc.strerror or exc}"
    lgr.error("cannot start: %s", message)
    print(f"unusable: {message}", flush=True)
    return 1


def main() -> int:
    """Read the spec, listen, detach, say ``ready`` on stdout, then serve until done."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    try:
        spec = json.loads(sys.stdin.readline())
        host = Host(spec, _make_session(spec))
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        lgr.error("cannot start: %s", message)
        print(f"error: {message}", flush=True)
        return 1
    try:
        host.bind()
    except OSError as exc:
        return _unusable(f"cannot create {host.socket_path.name}", exc)
    # Fork once more and let the starter's child exit: the host is then nobody's child but init's,
    # so the command that started it never keeps a zombie when the host exits later.
    if os.fork():
        os._exit(0)
    try:
        host.write_pid_file()
    except OSError as exc:
        host._unlink_socket()
        if host.pid_path is not None:
            host.pid_path.unlink(missing_ok=True)  # ours, written in part
        _unusable(f"cannot write {host.pid_path.name if host.pid_path else 'its pid file'}", exc)
        os._exit(1)
    def terminate(signum: int, frame: Any) -> None:
        host.stopping_now.set()
        host.stop()

    signal.signal(signal.SIGTERM, terminate)
    print("ready", flush=True)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        host.serve()
        if host.draining.is_set():
            host.wait_for_requests()
    finally:
        host.cleanup()
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
