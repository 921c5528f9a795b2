"""Commands in a container as Engine exec instances, their output read as it arrives.

The SDK's ``exec_start`` does not serve here, for two measured reasons:

* without ``stream``, its demultiplexer concatenates each frame onto the
  bytes received so far, so output costs quadratic time (50 MB took 28.5 s
  where ``docker exec`` needs well under one);
* it reads the hijacked connection from the raw socket, bypassing the
  buffered reader that parsed the response headers: whatever output arrived
  in the same read as the headers would be skipped.

So the connection is read here through that buffered reader, frame by frame
(an 8-byte header: stream number, three zero bytes, big-endian payload
size), each payload handed on once. Standard input, when there is any, is
fed by a thread while the output is read: a command may write more than the
pipes hold before it has read all of its input.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from reproman.plugins import SessionError
from reproman_backend_docker.engine import short_reason

if TYPE_CHECKING:
    import docker

lgr = logging.getLogger("reproman.backend_docker.execstream")

STDOUT, STDERR = 1, 2
_HEADER_SIZE = 8
#: Reads and stdin writes are done in pieces of this size.
_PIECE = 1 << 20
#: How long the Engine may take to record an exit status after the output ended.
_EXIT_STATUS_WAIT = 5.0
_PEER_GONE = (32, 104)  # EPIPE, ECONNRESET: the command exited without reading all its input


class ConsumerFailed(Exception):
    """The caller's ``on_output`` raised (its reader went away, say): ``error`` is what it raised.

    Kept apart so that a broken pipe on the caller's side is not taken for
    a lost connection to the Engine.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _RecvReader(io.RawIOBase):
    """A readable file over an object with ``recv`` (a paramiko channel, for ``ssh://`` engines)."""

    def __init__(self, channel: Any) -> None:
        super().__init__()
        self._channel = channel

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._channel.recv(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class ExecStream:
    """One started exec instance: its output frames to read, its input being fed.

    Use as a context manager; leaving it (normally, or by an exception such
    as :class:`KeyboardInterrupt`) shuts the connection down, which also
    stops the stdin feeder. The command itself is not stopped by that: the
    Engine lets an exec run on after its client went away. With ``watch``
    (and no ``stdin``) the command's input is attached but never written:
    the Engine closes it when the connection ends, however this process
    ends, which is what :func:`reproman.plugins.stdin_watch_wrapper` waits for.
    """

    def __init__(
        self,
        api: docker.APIClient,
        container_id: str,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        user: str | None = None,
        watch: bool = False,
    ) -> None:
        self._api = api
        self.exec_id: str = api.exec_create(
            container_id, list(argv), stdout=True, stderr=True, stdin=stdin is not None or watch, user=user or ""
        )["Id"]
        hijacked = api.exec_start(self.exec_id, socket=True)
        self._socket: Any = getattr(hijacked, "_sock", hijacked)
        self._hijacked = hijacked
        response = getattr(hijacked, "_response", None)
        self._response = response
        if hasattr(self._socket, "settimeout"):
            self._socket.settimeout(None)  # a command may be silent for longer than the client's timeout
        buffered = getattr(getattr(getattr(response, "raw", None), "_fp", None), "fp", None)
        if isinstance(buffered, io.BufferedReader):
            self._reader: io.BufferedIOBase = buffered
        elif isinstance(hijacked, io.RawIOBase):
            self._reader = io.BufferedReader(hijacked, _PIECE)
        else:
            self._reader = io.BufferedReader(_RecvReader(self._socket), _PIECE)
        self._closing = False
        self._feed_errors: list[BaseException] = []
        self._feeder: threading.Thread | None = None
        if stdin is not None:
            self._feeder = threading.Thread(target=self._feed, args=(stdin,), name="reproman-docker-stdin", daemon=True)
            self._feeder.start()

    def __enter__(self) -> ExecStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _feed(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            for start in range(0, len(view), _PIECE):
                self._socket.sendall(view[start : start + _PIECE])
            self._socket.shutdown(socket.SHUT_WR)
        except OSError as exc:
            if not self._closing and exc.errno not in _PEER_GONE:
                self._feed_errors.append(exc)

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """``(stream, payload)`` pairs until the command closed its outputs (1 stdout, 2 stderr)."""
        read = self._reader.read
        while True:
            header = read(_HEADER_SIZE)
            if not header:
                return
            if len(header) < _HEADER_SIZE:
                raise SessionError("the Docker Engine cut a command's output short (broken frame header)")
            size = int.from_bytes(header[4:8], "big")
            if not size:
                continue
            payload = read(size)
            if len(payload) < size:
                raise SessionError("the Docker Engine cut a command's output short (broken frame)")
            yield header[0], payload

    def exit_code(self, label: str = "the container") -> int:
        """The exec's exit status, once its output has ended; waits briefly for the Engine to record it.

        The output stream ends when the process closes its outputs, which
        can be a moment before the Engine has reaped it.
        """
        if self._feeder is not None:
            self._feeder.join()
            if self._feed_errors:
                raise SessionError(f"cannot pass input to the command: {short_reason(self._feed_errors[0])}")
        deadline = time.monotonic() + _EXIT_STATUS_WAIT
        while True:
            info = self._api.exec_inspect(self.exec_id)
            code = info.get("ExitCode")
            if not info.get("Running") and code is not None:
                return int(code)
            if time.monotonic() > deadline:
                raise SessionError(f"the Docker Engine did not report the exit status of a command in {label}")
            time.sleep(0.01)

    def close(self) -> None:
        """Shut the connection down (waking a blocked stdin feeder) and release it."""
        self._closing = True
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        for closable in (self._reader, self._hijacked, self._response):
            try:
                if closable is not None:
                    closable.close()
            except Exception:  # already closed, or the engine is gone: nothing left to release
                pass
        if self._feeder is not None:
            self._feeder.join(timeout=5)


def run_exec(
    api: docker.APIClient,
    container_id: str,
    argv: Sequence[str],
    *,
    stdin: bytes | None = None,
    on_output: Callable[[int, bytes], None] | None = None,
    label: str = "the container",
) -> tuple[int, bytes, bytes]:
    """Run ``argv`` to completion: exit status, stdout and stderr (both empty when streamed to ``on_output``).

    Time and memory are linear in the output's size: each frame is copied
    once into a list that is joined at the end, or handed to ``on_output``
    and forgotten.
    """
    out: list[bytes] = []
    err: list[bytes] = []
    with ExecStream(api, container_id, argv, stdin=stdin) as execution:
        if on_output is None:
            for stream, payload in execution.frames():
                (err if stream == STDERR else out).append(payload)
        else:
            for stream, payload in execution.frames():
                try:
                    on_output(STDERR if stream == STDERR else STDOUT, payload)
                except Exception as exc:
                    raise ConsumerFailed(exc) from exc
        code = execution.exit_code(label)
    return code, b"".join(out), b"".join(err)
