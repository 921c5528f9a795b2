"""The frames a persistent session host and its clients exchange over a Unix socket.

A frame is one kind byte, a 4-byte big-endian length and that many bytes.
Control messages are JSON (``ensure_ascii``, so file names that are not
UTF-8, carried as surrogate-escaped text, survive); bulk data (standard
input, output, terminal bytes) travels raw. One connection carries one
request: the client sends a request and its data, the host acknowledges
it at once (so a client can tell a hung host from a long command), streams
output and questions for the user, and ends with a result or an error.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any, BinaryIO

from reproman import errors

#: Bumped whenever a frame or request changes; hosts of other versions are never reused.
PROTOCOL = 1

REQUEST = b"Q"  # client: JSON {"op": ..., ...}
STDIN = b"I"  # client: standard input (or terminal input; an empty frame is end of file)
WINDOW = b"W"  # client: JSON {"columns": c, "lines": l}, the terminal's new size
ANSWER = b"R"  # client: JSON {"answer": text}, to a question
ACCEPTED = b"A"  # host: the request was read and is being served
STDOUT = b"1"  # host: output on the command's stdout
STDERR = b"2"  # host: output on the command's stderr
QUESTION = b"P"  # host: JSON {"prompt": text, "echo": bool}, to ask the user
RESULT = b"J"  # host: JSON {"ok": true, "result": ...} or {"ok": false, "error": {...}}

_HEADER = struct.Struct(">cI")
MAX_FRAME = 1 << 30


class ProtocolError(Exception):
    """The other side broke off or sent something that is not a frame."""


class Truncated(ProtocolError):
    """The stream ended inside a frame: the other side went away (killed) while it wrote."""


def send(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    sock.sendall(_HEADER.pack(kind, len(payload)))
    if payload:
        sock.sendall(payload)


def send_json(sock: socket.socket, kind: bytes, value: Any) -> None:
    send(sock, kind, json.dumps(value).encode("ascii"))


def receive(stream: BinaryIO) -> tuple[bytes, bytes] | None:
    """The next frame from a buffered reader of the socket; None at a clean end of the stream."""
    header = stream.read(_HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise Truncated("the connection ended inside a frame")
    kind, size = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes is too large")
    payload = stream.read(size) if size else b""
    if len(payload) < size:
        raise Truncated("the connection ended inside a frame")
    return kind, payload


def loads(payload: bytes) -> Any:
    return json.loads(payload.decode("ascii"))


def encode_error(exc: BaseException) -> dict[str, Any]:
    """An exception as data: ReproMan errors keep their class, message and hint; others become SessionError."""
    if isinstance(exc, errors.ReproManError):
        data: dict[str, Any] = {"type": type(exc).__name__, "message": exc.args[0] if exc.args else "",
                                "hint": exc.hint}
        if isinstance(exc, errors.CommandError):
            data.update(command=str(exc.command) if exc.command is not None else None,
                        returncode=exc.returncode, stdout=exc.stdout, stderr=exc.stderr)
        return data
    # A foreign exception keeps its class name when it has words of its own ("ValueError: boom"); one
    # without (EOFError()) is said plainly ("the connection closed"), never "EOFError: EOFError".
    said = errors.reason(exc)
    name = type(exc).__name__
    plain = " ".join(str(exc).split()) in ("", name, f"{name}()")
    return {"type": "SessionError", "message": said if plain else f"{name}: {said}", "hint": None}


def decode_error(data: dict[str, Any]) -> errors.ReproManError:
    """The exception :func:`encode_error` described, as the same class where it is a ReproMan error."""
    cls = getattr(errors, str(data.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.ReproManError)):
        cls = errors.SessionError
    message, hint = str(data.get("message", "")), data.get("hint")
    if issubclass(cls, errors.CommandError):
        return cls(message, hint=hint, command=data.get("command"), returncode=data.get("returncode"),
                   stdout=data.get("stdout") or "", stderr=data.get("stderr") or "")
    try:
        return cls(message, hint=hint)
    except TypeError:  # a subclass with another signature
        return errors.SessionError(message, hint=hint)
