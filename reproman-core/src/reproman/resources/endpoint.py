"""Where a session host listens, and how a client finds, starts, replaces or stops it.

The mechanics behind :mod:`reproman.resources.persistent`: the private
control directory (checked before every use), one socket, pid file, log and
start lock per host key, starting a host under that lock so that concurrent
first commands start one, and telling a dead host (a socket nobody listens
on) or a hung one (its pid file names a session host that takes no request)
from a live one.
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
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from reproman.errors import ConfigError, ResourceError
from reproman.resources import wire

lgr = logging.getLogger(__name__)

#: Seconds a host waits without requests before it exits, unless told otherwise.
DEFAULT_IDLE = 600.0
#: Seconds a new host has to start listening (and a stopping one to answer).
START_TIMEOUT = 30.0
HOST_MODULE = "reproman.resources.sessionhost"


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
        # Only the last component is created: a missing parent is likely a typo, not ours to make.
        if isinstance(exc, FileNotFoundError):
            problem, fix = (f"its parent directory {path.parent} does not exist",
                            f"Create it (mkdir -p {path.parent}), {_ELSEWHERE}")
        else:
            problem, fix = (f"it cannot be created ({exc.strerror or exc})",
                            f"Check that you may write in {path.parent}, {_ELSEWHERE}")
        raise ConfigError(f"not using {path} for persistent connections: {problem}", hint=fix) from None
    check_private(path)
    return path


#: How every refused control directory's hint ends.
_ELSEWHERE = "or set [sessions] control_dir to a private directory of yours."


class ControlDirUnusable(ConfigError):
    """The control directory cannot hold a host's files (a full or read-only file system): connect directly."""


def unusable(directory: Path, problem: str) -> ControlDirUnusable:
    return ControlDirUnusable(f"not using {directory} for persistent connections: {problem}",
                              hint=f"Free space there (or fix what the error names), {_ELSEWHERE}")


def check_private(path: Path) -> None:
    """Refuse a directory another user could plant a socket in or read ours from."""
    elsewhere = _ELSEWHERE
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise ConfigError(f"not using {path} for persistent connections: {exc.strerror or exc}",
                          hint=f"Check that you may read {path.parent}, {elsewhere}") from None
    problem = fix = None
    if stat.S_ISLNK(st.st_mode):
        # chmod would change what it points to, not the link.
        problem, fix = "it is a symbolic link", f"Remove the link (rm {path}), {elsewhere}"
    elif not stat.S_ISDIR(st.st_mode):
        problem, fix = "it is not a directory", f"Move it away, {elsewhere}"
    elif st.st_uid != os.geteuid():
        # Only its owner (or root) can change it: chmod is no fix.
        problem = f"it belongs to uid {st.st_uid}, not to you (uid {os.geteuid()})"
        fix = f"Ask its owner or an administrator to remove it, {elsewhere}"
    elif st.st_mode & 0o077:
        problem, fix = f"its mode is {stat.S_IMODE(st.st_mode):o}, not 700", f"Run 'chmod 700 {path}', {elsewhere}"
    if problem:
        raise ConfigError(f"not using {path} for persistent connections: {problem}", hint=fix)


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

        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise unusable(self.directory, f"cannot create {self.lock_path.name}: {exc.strerror or exc}") from None
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    if not _same_file(fd, self.lock_path):
                        # Removed by remove_leftovers() between our open and our lock: lock the current file.
                        os.close(fd)
                        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                        continue
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
        # Appended to, never truncated: a host being replaced (told to stop while a request runs) may still
        # write its last lines, and a writer at an offset past a truncation fills the gap with NUL bytes.
        try:
            log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise unusable(self.directory, f"cannot create {self.log_path.name}: {exc.strerror or exc}") from None
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
        if line.startswith("unusable: "):
            # The host could not write its socket or pid file here: no host can, so the caller connects directly.
            raise unusable(self.directory, line[len("unusable: "):])
        if line != "ready":
            said = line[len("error: "):] if line.startswith("error: ") else (
                _last_line(self.log_path) or "it did not start listening")
            raise ResourceError(f"cannot start the persistent connection process for {self.label}: {said}",
                                hint="Set persistent=no on the resource (or [ssh] persistent = no) to connect directly.")
        lgr.debug("started session host %s (pid %s) for %s", self.key, process.pid, self.label)

    def remove_leftovers(self) -> None:
        """Remove the files of a host that is gone (after stop/delete): its log, lock, pid file and dead socket.

        Left alone while a host runs or one is being started (the lock is
        held then). Without this, every resource ever deleted, and every
        first connection that failed, left its files in the control directory.
        """
        import fcntl

        try:
            fd = os.open(self.lock_path, os.O_RDWR)
        except OSError:
            fd = None
        try:
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return
            if host_pid(self.pid_path) is not None:
                return
            sock = self._try_connect()
            if sock is not None:
                sock.close()
                return
            for path in (self.socket_path, self.pid_path, self.log_path, self.lock_path):
                with contextlib.suppress(OSError):
                    path.unlink()
        finally:
            if fd is not None:
                os.close(fd)

    def stop_hung(self) -> None:
        """Kill a host that took no request in time (it is ours: its pid file and command line say so)."""
        pid = host_pid(self.pid_path)
        if pid is not None:
            lgr.warning("the persistent connection process for %s (pid %d) does not answer; replacing it",
                        self.label, pid)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.socket_path.unlink(missing_ok=True)

    def request_shutdown(self, wait: float = 5.0) -> bool:
        """Ask a running host to exit, and wait (up to ``wait`` seconds) until it has; whether one was running.

        A host serving requests of other commands takes no new ones and exits
        once those are done (nothing to wait for here: its socket is gone already).
        """
        sock = self.connect(start=False)
        if sock is None:
            return False
        pid = host_pid(self.pid_path)
        in_flight = 0
        try:
            wire.send_json(sock, wire.REQUEST, {"op": "shutdown"})
            sock.settimeout(START_TIMEOUT)
            reader = sock.makefile("rb")
            while (frame := wire.receive(reader)) is not None:
                if frame[0] == wire.RESULT:
                    result = wire.loads(frame[1]).get("result")
                    in_flight = int(result.get("in_flight") or 0) if isinstance(result, dict) else 0
        except (OSError, wire.ProtocolError, ValueError):
            self.stop_hung()
        finally:
            sock.close()
        deadline = time.monotonic() + wait
        while not in_flight and pid is not None and _running(pid) and time.monotonic() < deadline:
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


def host_pid(pid_path: Path) -> int | None:
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


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (not removed or replaced since it was opened)."""
    try:
        st, now = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""
